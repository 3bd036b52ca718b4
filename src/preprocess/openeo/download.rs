//! A job's result files downloaded into a folder, resuming a partial download of an earlier
//! attempt, checked against the sizes and checksums the back-end gives.

use std::path::{Path, PathBuf};

use super::client::{Backend, ResultAsset};
use crate::error::{Error, Result};
use crate::job::Progress;

impl Backend {
    /// Downloads one asset into `dir` (resuming a partial download of an earlier attempt or
    /// run); checks its size and checksum when the back-end gave them.
    pub fn download(&mut self, asset: &ResultAsset, dir: &Path, progress: &Progress) -> Result<PathBuf> {
        let dst = dir.join(crate::fsutil::safe_name(&asset.name));
        let opts = crate::fetch::FetchOptions::default();
        for attempt in 0..2 {
            let auth = self.authorization.as_ref().filter(|_| self.same_origin(&asset.href)).map(|a| a.0.clone());
            if let Err(e) = crate::fetch::fetch_file_authorized(&asset.href, &dst, &opts, auth.as_deref(), progress) {
                // A token that expired while the job ran: renewed once (the partial file stays).
                let expired = matches!(&e, Error::Http { message, .. } if message.contains("HTTP 401") || message.contains("HTTP 403"));
                if attempt == 0 && expired && auth.is_some() {
                    self.authenticate()?;
                    continue;
                }
                return Err(e);
            }
            let size = std::fs::metadata(&dst).map(|m| m.len()).unwrap_or(0);
            let bad = match (asset.size, &asset.sha256) {
                (Some(s), _) if s != size => Some(format!("{size} bytes where the back-end announced {s}")),
                (_, Some(sum)) => {
                    let got = crate::fsutil::sha256_file(&dst)?;
                    (got != *sum).then(|| format!("SHA-256 {got} where the back-end announced {sum}"))
                }
                _ => None,
            };
            match bad {
                None => return Ok(dst),
                Some(why) => {
                    let _ = std::fs::remove_file(&dst);
                    if attempt == 1 {
                        return Err(Error::http(asset.href.clone(), format!("the download is damaged: {why}; run the stage again")));
                    }
                    progress.warn(format!("{}: {why}; downloading it again", asset.href));
                }
            }
        }
        Err(Error::http(asset.href.clone(), "the download failed"))
    }
}
