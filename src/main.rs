//! The `s2cr` binary: everything lives in the library; see `s2cr --help`.

fn main() -> std::process::ExitCode {
    // SAFETY: the first thing the process does: no other thread runs yet.
    unsafe {
        s2cr::model::set_default_burn_device();
        s2cr::model::quiet_gpu_probe();
    }
    s2cr::cli::main()
}
