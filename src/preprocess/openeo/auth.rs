//! Credentials: from the environment or a file outside every project
//! ([`Credentials::load`]), never printed, logged or written, and the login method they allow:
//! HTTP Basic for development back-ends, OpenID Connect client credentials or refresh token (as
//! CDSE wants). The login itself is the client's.

use std::path::PathBuf;


use super::AuthMethod;

/// A secret: never shown by `Debug`.
#[derive(Clone)]
pub(super) struct Secret(pub(super) String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<hidden>")
    }
}

/// The credentials found for a back-end.
#[derive(Debug, Clone, Default)]
pub struct Credentials {
    pub(super) user: Option<String>,
    pub(super) password: Option<Secret>,
    pub(super) client_id: Option<String>,
    pub(super) client_secret: Option<Secret>,
    pub(super) refresh_token: Option<Secret>,
    /// Where the refresh token came from, to store a rotated one back there.
    pub(super) refresh_token_from: Option<Origin>,
}

/// Where a credential was found.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Origin {
    /// The environment variable of that name.
    Env(&'static str),
    /// A line of the credentials file.
    File(PathBuf),
}

const REFRESH_TOKEN: &str = "S2CR_OPENEO_REFRESH_TOKEN";

/// The file read after the environment: `$XDG_CONFIG_HOME/s2cr/openeo-credentials` (or
/// `~/.config/s2cr/...`), `NAME=value` lines with the variables' names.
pub fn credentials_file() -> Option<PathBuf> {
    let dir = std::env::var_os("XDG_CONFIG_HOME").map(PathBuf::from).or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))?;
    Some(dir.join("s2cr").join("openeo-credentials"))
}

impl Credentials {
    /// From the variables `S2CR_OPENEO_USER`, `S2CR_OPENEO_PASSWORD`, `S2CR_OPENEO_CLIENT_ID`,
    /// `S2CR_OPENEO_CLIENT_SECRET`, `S2CR_OPENEO_REFRESH_TOKEN`, each one falling back to the
    /// same name in [`credentials_file`].
    pub fn load() -> Credentials {
        let path = credentials_file();
        let file: Vec<(String, String)> = path
            .as_ref()
            .and_then(|p| std::fs::read_to_string(p).ok())
            .map(|text| {
                text.lines()
                    .filter(|l| !l.trim_start().starts_with('#'))
                    .filter_map(|l| l.split_once('=').map(|(k, v)| (k.trim().to_string(), v.trim().trim_matches('"').to_string())))
                    .collect()
            })
            .unwrap_or_default();
        let from_env = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty()).map(|v| v.trim().to_string());
        let get = |name: &str| -> Option<String> { from_env(name).or_else(|| file.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone()).filter(|v| !v.is_empty())) };
        let refresh_token = get(REFRESH_TOKEN);
        let refresh_token_from = match (&refresh_token, from_env(REFRESH_TOKEN), &path) {
            (None, ..) => None,
            (Some(_), Some(_), _) => Some(Origin::Env(REFRESH_TOKEN)),
            (Some(_), None, Some(p)) => Some(Origin::File(p.clone())),
            (Some(_), None, None) => None,
        };
        Credentials {
            user: get("S2CR_OPENEO_USER"),
            password: get("S2CR_OPENEO_PASSWORD").map(Secret),
            client_id: get("S2CR_OPENEO_CLIENT_ID"),
            client_secret: get("S2CR_OPENEO_CLIENT_SECRET").map(Secret),
            refresh_token: refresh_token.map(Secret),
            refresh_token_from,
        }
    }

    /// Keeps the refresh token the identity provider gave in place of the one used (providers
    /// that rotate them refuse the old one from now on) and stores it back where that one came
    /// from: the credentials file is rewritten (only that line, owner-only permissions); a
    /// variable cannot be changed from here, so the returned notice says that it is stale.
    pub(super) fn rotate_refresh_token(&mut self, new: String) -> Option<String> {
        if self.refresh_token.as_ref().is_some_and(|t| t.0 == new) {
            return None;
        }
        self.refresh_token = Some(Secret(new.clone()));
        match self.refresh_token_from.clone() {
            Some(Origin::File(path)) => match replace_line(&path, REFRESH_TOKEN, &new) {
                Ok(()) => None,
                Err(why) => Some(format!("the identity provider replaced the refresh token, and the new one could not be stored in {} ({why}): the one there is now stale; get a new one", path.display())),
            },
            Some(Origin::Env(name)) => {
                // Said once: later rotations in this run change nothing for the variable.
                self.refresh_token_from = None;
                let file = credentials_file().map(|p| format!(", or keep it in {} (where s2cr stores a replaced token itself) and unset the variable", p.display())).unwrap_or_default();
                Some(format!("the identity provider replaced the refresh token: {name} is now stale and will be refused next time; get a new one{file}"))
            }
            None => None,
        }
    }

    /// The names of the credentials found (never their values).
    pub fn configured(&self) -> Vec<&'static str> {
        let mut names = Vec::new();
        if self.user.is_some() && self.password.is_some() {
            names.push("user and password");
        }
        if self.client_id.is_some() && self.client_secret.is_some() {
            names.push("OIDC client credentials");
        }
        if self.refresh_token.is_some() {
            names.push("OIDC refresh token");
        }
        names
    }

    pub(super) fn method(&self, asked: AuthMethod) -> AuthMethod {
        match asked {
            AuthMethod::Auto if self.client_id.is_some() && self.client_secret.is_some() => AuthMethod::OidcClientCredentials,
            AuthMethod::Auto if self.refresh_token.is_some() => AuthMethod::OidcRefreshToken,
            AuthMethod::Auto if self.user.is_some() && self.password.is_some() => AuthMethod::Basic,
            AuthMethod::Auto => AuthMethod::None,
            other => other,
        }
    }
}

/// Rewrites `NAME=value` in the credentials file at `path` (the other lines as they were),
/// through a file beside it with owner-only permissions, renamed over it.
fn replace_line(path: &std::path::Path, name: &str, value: &str) -> std::result::Result<(), String> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let text = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
    let mut found = false;
    let mut out: Vec<String> = text
        .lines()
        .map(|l| match l.split_once('=') {
            Some((k, _)) if k.trim() == name && !l.trim_start().starts_with('#') => {
                found = true;
                format!("{name}={value}")
            }
            _ => l.to_string(),
        })
        .collect();
    if !found {
        out.push(format!("{name}={value}"));
    }
    let tmp = path.with_extension(format!("partial-{}", std::process::id()));
    let result = (|| -> std::io::Result<()> {
        let mut f = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&tmp)?;
        f.write_all((out.join("\n") + "\n").as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    pub(super) fn credentials_pick_a_method_and_hide_their_secrets() {
        let c = Credentials { user: Some("u".into()), password: Some(Secret("pw-secret".into())), ..Credentials::default() };
        assert_eq!(c.method(AuthMethod::Auto), AuthMethod::Basic);
        assert!(!format!("{c:?}").contains("pw-secret"));
        let oidc = Credentials { client_id: Some("id".into()), client_secret: Some(Secret("s".into())), ..c.clone() };
        assert_eq!(oidc.method(AuthMethod::Auto), AuthMethod::OidcClientCredentials);
        assert_eq!(oidc.method(AuthMethod::Basic), AuthMethod::Basic);
        assert_eq!(Credentials::default().method(AuthMethod::Auto), AuthMethod::None);
    }

    /// A rotated refresh token goes back into the file it came from (that line only, owner-only
    /// permissions); one from a variable gives a notice, once, that names the variable and
    /// never a token.
    #[test]
    fn a_rotated_refresh_token_is_stored_back_or_said_stale() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("openeo-credentials");
        std::fs::write(&path, "# mine\nS2CR_OPENEO_CLIENT_ID=cdse-public\nS2CR_OPENEO_REFRESH_TOKEN=old-token-1\n").unwrap();
        let mut c = Credentials { refresh_token: Some(Secret("old-token-1".into())), refresh_token_from: Some(Origin::File(path.clone())), ..Credentials::default() };
        assert_eq!(c.rotate_refresh_token("new-token-2".into()), None);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "# mine\nS2CR_OPENEO_CLIENT_ID=cdse-public\nS2CR_OPENEO_REFRESH_TOKEN=new-token-2\n");
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        assert_eq!(c.refresh_token.as_ref().map(|t| t.0.as_str()), Some("new-token-2"));
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1, "nothing left beside it");
        let mut e = Credentials { refresh_token: Some(Secret("env-token-1".into())), refresh_token_from: Some(Origin::Env(REFRESH_TOKEN)), ..Credentials::default() };
        let notice = e.rotate_refresh_token("env-token-2".into()).unwrap();
        assert!(notice.contains("S2CR_OPENEO_REFRESH_TOKEN is now stale") && !notice.contains("env-token"), "{notice}");
        assert_eq!(e.rotate_refresh_token("env-token-3".into()), None, "said once");
        assert_eq!(e.refresh_token.as_ref().map(|t| t.0.as_str()), Some("env-token-3"), "the newest is used in this run");
    }
}
