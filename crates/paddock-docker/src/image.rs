//! What an image says it runs, read before a box is made from it.

use crate::{Engine, EngineError, Result};

/// The image's own `ENTRYPOINT` and `CMD` (empty when it sets none).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImageCommand {
    pub entrypoint: Vec<String>,
    pub cmd: Vec<String>,
}

impl Engine {
    /// The command an image runs. An image the engine does not have is
    /// [`EngineError::NotFound`], so a caller can say so before making
    /// anything.
    pub async fn image_command(&self, image: &str) -> Result<ImageCommand> {
        let inspected =
            self.client().await?.inspect_image(image).await.map_err(
                |e| match EngineError::from(e) {
                    EngineError::NotFound(_) => EngineError::NotFound(image.to_owned()),
                    other => other,
                },
            )?;
        let config = inspected.config.unwrap_or_default();
        Ok(ImageCommand {
            entrypoint: config.entrypoint.unwrap_or_default(),
            cmd: config.cmd.unwrap_or_default(),
        })
    }
}
