//! A container's files as tar archives: what `docker cp` does, through
//! the engine's archive endpoints. Paths are resolved by the engine inside
//! the container's own root, so a link in the container cannot lead out.

use std::pin::Pin;

use bollard::query_parameters::{
    ContainerArchiveInfoOptionsBuilder, DownloadFromContainerOptionsBuilder,
    UploadToContainerOptionsBuilder,
};
use bytes::Bytes;
use futures_util::{Stream, StreamExt};

use crate::{Engine, EngineError, Result};

/// Go's `os.ModeDir`, as the engine reports a path's mode.
const GO_MODE_DIR: u32 = 1 << 31;
/// Go's `os.ModeSymlink`.
const GO_MODE_SYMLINK: u32 = 1 << 27;

/// What the engine says of a path in a container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathStat {
    pub is_dir: bool,
    /// A symbolic link (the engine does not follow it here; unpacking
    /// into it does).
    pub is_link: bool,
    pub size_bytes: u64,
}

/// A tar archive on its way into a container.
pub type ArchiveBody = Pin<Box<dyn Stream<Item = std::io::Result<Bytes>> + Send>>;

/// A tar archive on its way out of a container.
pub type ArchiveStream = Pin<Box<dyn Stream<Item = Result<Bytes>> + Send>>;

impl Engine {
    /// The path's kind and size; None when it does not exist.
    pub async fn path_stat(&self, container: &str, path: &str) -> Result<Option<PathStat>> {
        let options = ContainerArchiveInfoOptionsBuilder::default()
            .path(path)
            .build();
        match self
            .client()
            .await?
            .get_container_archive_info(container, Some(options))
            .await
        {
            Ok(stat) => Ok(Some(PathStat {
                is_dir: stat.file_mode & GO_MODE_DIR != 0,
                is_link: stat.file_mode & GO_MODE_SYMLINK != 0,
                size_bytes: u64::try_from(stat.size).unwrap_or(0),
            })),
            Err(e) => match EngineError::from(e) {
                EngineError::NotFound(_) => Ok(None),
                other => Err(other),
            },
        }
    }

    /// Unpacks a tar archive into the directory `dir` of the container.
    pub async fn upload_archive(&self, container: &str, dir: &str, tar: ArchiveBody) -> Result<()> {
        let options = UploadToContainerOptionsBuilder::default().path(dir).build();
        self.client()
            .await?
            .upload_to_container(container, Some(options), bollard::body_try_stream(tar))
            .await?;
        Ok(())
    }

    /// A tar archive of `path` (a file, or a directory and all below it).
    /// The stream is pumped by a task of its own, so it owns nothing of the
    /// engine handle.
    pub async fn download_archive(&self, container: &str, path: &str) -> Result<ArchiveStream> {
        let docker = self.client().await?.clone();
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes>>(8);
        let (container, path) = (container.to_owned(), path.to_owned());
        tokio::spawn(async move {
            let options = DownloadFromContainerOptionsBuilder::default()
                .path(&path)
                .build();
            let mut stream =
                std::pin::pin!(docker.download_from_container(&container, Some(options)));
            while let Some(chunk) = stream.next().await {
                let failed = chunk.is_err();
                if tx.send(chunk.map_err(EngineError::from)).await.is_err() || failed {
                    return;
                }
            }
        });
        Ok(Box::pin(tokio_stream_of(rx)))
    }
}

fn tokio_stream_of<T: Send + 'static>(
    mut rx: tokio::sync::mpsc::Receiver<T>,
) -> impl Stream<Item = T> + Send {
    futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx))
}
