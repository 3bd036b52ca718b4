//! The `s2cr` binary: everything lives in the library; see `s2cr --help`.

fn main() -> std::process::ExitCode {
    s2cr::cli::main()
}
