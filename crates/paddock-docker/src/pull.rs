//! Pulling an image, with its progress summed over layers as it goes.

use std::collections::HashMap;

use bollard::auth::DockerCredentials;
use bollard::query_parameters::CreateImageOptionsBuilder;
use futures_util::StreamExt;

use crate::{Engine, EngineError, Result};

/// A registry login, handed to the engine for one pull only (never kept
/// by the engine, never logged).
#[derive(Clone)]
pub struct RegistryLogin {
    pub server: String,
    pub username: String,
    pub password: String,
}

impl std::fmt::Debug for RegistryLogin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegistryLogin")
            .field("server", &self.server)
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

/// How far a pull is, over the layers the engine has named so far.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PullProgress {
    pub layers_total: u32,
    pub layers_done: u32,
    /// Bytes downloaded and to download, over the layers whose size is
    /// known yet.
    pub bytes_done: u64,
    pub bytes_total: u64,
    /// The engine's last words ("Downloading", "Pull complete", …).
    pub status: String,
}

/// Sums the engine's per-layer messages into one reading.
#[derive(Default)]
struct Layers {
    /// Layer id → (bytes done, bytes total, done).
    seen: HashMap<String, (u64, u64, bool)>,
}

impl Layers {
    fn note(&mut self, id: &str, status: &str, current: Option<i64>, total: Option<i64>) {
        let entry = self.seen.entry(id.to_owned()).or_default();
        if status.starts_with("Downloading") {
            entry.0 = current.unwrap_or(0).max(0) as u64;
            entry.1 = total.unwrap_or(0).max(0) as u64;
        }
        if matches!(
            status,
            "Pull complete" | "Already exists" | "Download complete"
        ) {
            entry.0 = entry.1;
        }
        if matches!(status, "Pull complete" | "Already exists") {
            entry.2 = true;
        }
    }

    fn reading(&self, status: &str) -> PullProgress {
        PullProgress {
            layers_total: self.seen.len() as u32,
            layers_done: self.seen.values().filter(|l| l.2).count() as u32,
            bytes_done: self.seen.values().map(|l| l.0).sum(),
            bytes_total: self.seen.values().map(|l| l.1).sum(),
            status: status.to_owned(),
        }
    }
}

impl Engine {
    /// Pulls `image`, calling `progress` with each new reading. An image
    /// the registry does not have is [`EngineError::NotFound`]; a refused
    /// login or an unreachable registry is [`EngineError::Api`] with the
    /// engine's words.
    pub async fn pull_image(
        &self,
        image: &str,
        login: Option<&RegistryLogin>,
        progress: &(dyn Fn(PullProgress) + Send + Sync),
    ) -> Result<()> {
        let options = CreateImageOptionsBuilder::default()
            .from_image(image)
            .build();
        let credentials = login.map(|l| DockerCredentials {
            username: Some(l.username.clone()),
            password: Some(l.password.clone()),
            serveraddress: Some(l.server.clone()),
            ..Default::default()
        });
        let client = self.client().await?;
        let mut stream = client.create_image(Some(options), None, credentials);
        let mut layers = Layers::default();
        while let Some(item) = stream.next().await {
            let info = item.map_err(|e| pull_error(image, e.into()))?;
            if let Some(detail) = info.error_detail {
                let message = detail.message.unwrap_or_default();
                return Err(pull_error(
                    image,
                    EngineError::Api {
                        status: 500,
                        message,
                    },
                ));
            }
            let status = info.status.unwrap_or_default();
            if let Some(id) = &info.id {
                let (current, total) = info
                    .progress_detail
                    .map_or((None, None), |d| (d.current, d.total));
                layers.note(id, &status, current, total);
            }
            progress(layers.reading(&status));
        }
        Ok(())
    }
}

/// A registry that lacks the image or tag says so in many words; all of
/// them are "not found" to the caller.
fn pull_error(image: &str, e: EngineError) -> EngineError {
    let text = e.to_string().to_ascii_lowercase();
    if matches!(e, EngineError::NotFound(_))
        || text.contains("manifest unknown")
        || text.contains("not found")
    {
        EngineError::NotFound(image.to_owned())
    } else {
        e
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layers_add_up_as_they_download_and_complete() {
        let mut layers = Layers::default();
        layers.note("a", "Pulling fs layer", None, None);
        layers.note("b", "Already exists", None, None);
        layers.note("a", "Downloading", Some(50), Some(200));
        let r = layers.reading("Downloading");
        assert_eq!((r.layers_total, r.layers_done), (2, 1));
        assert_eq!((r.bytes_done, r.bytes_total), (50, 200));
        layers.note("a", "Download complete", None, None);
        layers.note("a", "Pull complete", None, None);
        let r = layers.reading("Pull complete");
        assert_eq!((r.layers_done, r.bytes_done, r.bytes_total), (2, 200, 200));
    }

    #[test]
    fn a_login_never_prints_its_password() {
        let login = RegistryLogin {
            server: "127.0.0.1:5000".into(),
            username: "u".into(),
            password: "hunter2-secret".into(),
        };
        assert!(!format!("{login:?}").contains("hunter2"));
    }
}
