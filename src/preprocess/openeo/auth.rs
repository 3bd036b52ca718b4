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
}

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
        let file: Vec<(String, String)> = credentials_file()
            .and_then(|p| std::fs::read_to_string(p).ok())
            .map(|text| {
                text.lines()
                    .filter(|l| !l.trim_start().starts_with('#'))
                    .filter_map(|l| l.split_once('=').map(|(k, v)| (k.trim().to_string(), v.trim().trim_matches('"').to_string())))
                    .collect()
            })
            .unwrap_or_default();
        let get = |name: &str| -> Option<String> {
            std::env::var(name).ok().filter(|v| !v.trim().is_empty()).map(|v| v.trim().to_string()).or_else(|| file.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone()).filter(|v| !v.is_empty()))
        };
        Credentials {
            user: get("S2CR_OPENEO_USER"),
            password: get("S2CR_OPENEO_PASSWORD").map(Secret),
            client_id: get("S2CR_OPENEO_CLIENT_ID"),
            client_secret: get("S2CR_OPENEO_CLIENT_SECRET").map(Secret),
            refresh_token: get("S2CR_OPENEO_REFRESH_TOKEN").map(Secret),
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
}
