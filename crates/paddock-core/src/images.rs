//! A box's image, pulled as its policy says before anything is made, and
//! what it runs. Registry logins come from `[[registries]]`, their
//! passwords read from their files at each pull and handed to the engine
//! for that pull alone.

use paddock_docker::{EngineError, PullProgress, RegistryLogin};

use crate::config::PullPolicy;
use crate::lifecycle::image_missing;
use crate::main_process::{self, MainProcess};
use crate::{BoxService, CoreError, Result, options};

impl BoxService {
    /// The box's main process for `image` (from its profile, `[boxes]`, or
    /// what the image runs), once the image is there as `policy` says.
    pub(crate) async fn image_for_box(
        &self,
        image: &str,
        policy: PullPolicy,
        progress: &(dyn Fn(PullProgress) + Send + Sync),
    ) -> Result<MainProcess> {
        let own = match (policy, self.engine.image_command(image).await) {
            (PullPolicy::Always, _) | (PullPolicy::Missing, Err(EngineError::NotFound(_))) => {
                self.pull(image, progress).await?;
                self.engine.image_command(image).await
            }
            (_, found) => found,
        }
        .map_err(|e| image_missing(e, image))?;
        Ok(main_process::choose(self.config().command_for(image), &own))
    }

    async fn pull(
        &self,
        image: &str,
        progress: &(dyn Fn(PullProgress) + Send + Sync),
    ) -> Result<()> {
        let login = self.registry_login(image)?;
        tracing::info!(image, "pulling the box's image");
        self.engine
            .pull_image(image, login.as_ref(), progress)
            .await
            .map_err(|e| match e {
                EngineError::NotFound(_) => CoreError::ImageNotFound(image.to_owned()),
                EngineError::Unavailable(m) => CoreError::EngineUnavailable(m),
                other => CoreError::PullFailed {
                    image: image.to_owned(),
                    reason: other.to_string(),
                },
            })
    }

    /// The configured login for the registry `image` names, its password
    /// read now (a file that cannot be read is named, never shown).
    fn registry_login(&self, image: &str) -> Result<Option<RegistryLogin>> {
        let server = options::registry_of(image);
        let config = self.config();
        let Some(entry) = config.registries.iter().find(|r| r.server == server) else {
            return Ok(None);
        };
        let password =
            std::fs::read_to_string(&entry.password_file).map_err(|e| CoreError::PullFailed {
                image: image.to_owned(),
                reason: format!(
                    "cannot read the password file {} of registry {server}: {e}",
                    entry.password_file.display()
                ),
            })?;
        Ok(Some(RegistryLogin {
            server: server.to_owned(),
            username: entry.username.clone(),
            password: password.trim_end_matches(['\n', '\r']).to_owned(),
        }))
    }
}
