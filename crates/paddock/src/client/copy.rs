//! `paddock box cp`: files between this machine and a box, as `docker cp`
//! moves them — tar archives over REST (`/api/v1/boxes/{id}/files`).
//!
//! Into a box: `cp SRC ID:/DEST` puts SRC inside DEST when DEST is a
//! directory there, else makes DEST itself from SRC. Out of a box:
//! `cp ID:/SRC DEST` the same way round; `-` for DEST writes the archive
//! to stdout, `-` for SRC reads one from stdin.

use std::path::{Path, PathBuf};

use anyhow::{Context, anyhow, bail};
use futures_util::StreamExt;
use reqwest::Method;
use tokio::io::AsyncWriteExt;

use super::boxes::path_id;
use super::http::{ApiFailure, Client, percent_encode};

/// One side of a copy.
#[derive(Debug, PartialEq, Eq)]
enum Place {
    Local(PathBuf),
    Stdio,
    Box { id: String, path: String },
}

/// `ID:/path` is a box's path (ids never hold ':' or '/'); `-` is stdin
/// or stdout; anything else is here (write `./a:b` for a local name with
/// a colon).
fn place(text: &str) -> Place {
    if text == "-" {
        return Place::Stdio;
    }
    if let Some((id, path)) = text.split_once(':')
        && !id.is_empty()
        && !id.contains('/')
        && path.starts_with('/')
    {
        return Place::Box {
            id: id.to_owned(),
            path: path.to_owned(),
        };
    }
    Place::Local(PathBuf::from(text))
}

pub async fn copy(client: &Client, source: &str, dest: &str) -> anyhow::Result<()> {
    match (place(source), place(dest)) {
        (Place::Box { id, path }, Place::Local(to)) => {
            download(client, &id, &path, Some(&to)).await
        }
        (Place::Box { id, path }, Place::Stdio) => download(client, &id, &path, None).await,
        (Place::Local(from), Place::Box { id, path }) => {
            upload_path(client, &from, &id, &path).await
        }
        (Place::Stdio, Place::Box { id, path }) => upload_stdin(client, &id, &path).await,
        (Place::Box { .. }, Place::Box { .. }) => {
            bail!(
                "copy between two boxes through this machine: cp ID:/path DIR, then cp DIR/… ID2:/path"
            )
        }
        _ => bail!("one side must be a box's path, written ID:/absolute/path"),
    }
}

fn files_path(id: &str, path: &str) -> String {
    let query = percent_encode(path, b"/");
    format!("/api/v1/boxes/{}/files?path={query}", path_id(id))
}

/// The box's archive of `path`, to stdout (`to` None) or unpacked at `to`.
async fn download(client: &Client, id: &str, path: &str, to: Option<&Path>) -> anyhow::Result<()> {
    let response = client
        .send(client.request(Method::GET, &files_path(id, path)))
        .await?;
    let mut stream = response.bytes_stream();
    let Some(to) = to else {
        let mut stdout = tokio::io::stdout();
        while let Some(chunk) = stream.next().await {
            stdout
                .write_all(&chunk.context("reading the archive")?)
                .await?;
        }
        stdout.flush().await?;
        return Ok(());
    };
    let mut spooled = tokio::fs::File::from_std(tempfile::tempfile()?);
    while let Some(chunk) = stream.next().await {
        spooled
            .write_all(&chunk.context("reading the archive")?)
            .await?;
    }
    let spooled = spooled.into_std().await;
    let to = to.to_owned();
    tokio::task::spawn_blocking(move || unpack_at(spooled, &to)).await?
}

/// Unpacks an archive whose top entry is the copied file or directory:
/// into `to` when it is a directory here, else as `to` itself. The tar
/// crate refuses entries that would land outside where it unpacks.
fn unpack_at(mut spooled: std::fs::File, to: &Path) -> anyhow::Result<()> {
    use std::io::Seek;
    spooled.rewind()?;
    if to.is_dir() {
        tar::Archive::new(spooled)
            .unpack(to)
            .with_context(|| format!("unpacking into {}", to.display()))?;
        return Ok(());
    }
    let parent = match to.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
        _ => PathBuf::from("."),
    };
    if !parent.is_dir() {
        bail!("{} is not a directory", parent.display());
    }
    // Unpacked beside the destination first, then renamed: nothing half
    // made if the archive is refused.
    let staging = tempfile::Builder::new()
        .prefix(".paddock-cp-")
        .tempdir_in(&parent)?;
    tar::Archive::new(spooled)
        .unpack(staging.path())
        .context("unpacking the archive")?;
    let mut top = std::fs::read_dir(staging.path())?;
    let first = top
        .next()
        .ok_or_else(|| anyhow!("the box sent an empty archive"))??;
    std::fs::rename(first.path(), to).with_context(|| format!("creating {}", to.display()))?;
    Ok(())
}

/// Sends `from` (a file or a directory) as `name` inside the box's `dir`,
/// the archive streamed as it is made: nothing is written here first.
async fn put_tree(
    client: &Client,
    id: &str,
    dir: &str,
    from: &Path,
    name: &str,
) -> anyhow::Result<()> {
    let (from, name) = (from.to_owned(), name.to_owned());
    let (tx, rx) = tokio::sync::mpsc::channel::<std::io::Result<Vec<u8>>>(4);
    let made = tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
        let mut writer = BodyWriter::new(tx.clone());
        let written = (|| -> std::io::Result<()> {
            let mut builder = tar::Builder::new(&mut writer);
            builder.follow_symlinks(false);
            if from.is_dir() {
                builder.append_dir_all(&name, &from)?;
            } else {
                builder.append_path_with_name(&from, &name)?;
            }
            builder.finish()
        })()
        .and_then(|()| std::io::Write::flush(&mut writer));
        if let Err(e) = &written {
            // The body ends in an error, so the upload is not taken as
            // whole.
            let _ = tx.blocking_send(Err(std::io::Error::new(e.kind(), e.to_string())));
        }
        written.with_context(|| format!("reading {}", from.display()))
    });
    let chunks = futures_util::stream::unfold(rx, |mut rx| async {
        rx.recv().await.map(|chunk| (chunk, rx))
    });
    let sent = client
        .send(
            client
                .request(Method::PUT, &files_path(id, dir))
                .header(reqwest::header::CONTENT_TYPE, "application/x-tar")
                .body(reqwest::Body::wrap_stream(chunks)),
        )
        .await;
    match (made.await?, sent) {
        // The server answered before taking it all (a refusal): its
        // reason, not the broken pipe the archive's maker saw.
        (Err(e), Err(refused)) if broken_pipe(&e) => Err(refused),
        // Something here could not be read: that, not what the server
        // made of a body that ended in an error.
        (Err(e), _) => Err(e),
        (Ok(()), sent) => sent.map(drop),
    }
}

fn broken_pipe(e: &anyhow::Error) -> bool {
    e.downcast_ref::<std::io::Error>()
        .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
}

/// Bytes written become the request body, a megabyte at a time.
struct BodyWriter {
    tx: tokio::sync::mpsc::Sender<std::io::Result<Vec<u8>>>,
    pending: Vec<u8>,
}

impl BodyWriter {
    const CHUNK_BYTES: usize = 1024 * 1024;

    fn new(tx: tokio::sync::mpsc::Sender<std::io::Result<Vec<u8>>>) -> Self {
        Self {
            tx,
            pending: Vec::with_capacity(Self::CHUNK_BYTES),
        }
    }

    fn send_pending(&mut self) -> std::io::Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let chunk = std::mem::replace(&mut self.pending, Vec::with_capacity(Self::CHUNK_BYTES));
        self.tx.blocking_send(Ok(chunk)).map_err(|_| {
            std::io::Error::new(
                std::io::ErrorKind::BrokenPipe,
                "the upload ended before the archive did",
            )
        })
    }
}

impl std::io::Write for BodyWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.pending.extend_from_slice(data);
        if self.pending.len() >= Self::CHUNK_BYTES {
            self.send_pending()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.send_pending()
    }
}

async fn put_archive(
    client: &Client,
    id: &str,
    dir: &str,
    tar: std::fs::File,
) -> anyhow::Result<()> {
    let length = tar.metadata()?.len();
    // Large reads: each read of a tokio file is a trip to the blocking
    // pool, and at the default 4 KiB that trip, not the bytes, is the cost.
    let body = reqwest::Body::wrap_stream(tokio_util::io::ReaderStream::with_capacity(
        tokio::fs::File::from_std(tar),
        1024 * 1024,
    ));
    client
        .send(
            client
                .request(Method::PUT, &files_path(id, dir))
                .header(reqwest::header::CONTENT_TYPE, "application/x-tar")
                .header(reqwest::header::CONTENT_LENGTH, length)
                .body(body),
        )
        .await?;
    Ok(())
}

/// Whether the server said the destination is not a directory there.
fn not_a_directory(e: &anyhow::Error) -> bool {
    e.downcast_ref::<ApiFailure>().is_some_and(|f| {
        f.code == "path_not_found" || (f.code == "invalid" && f.message.contains("not a directory"))
    })
}

async fn upload_path(client: &Client, from: &Path, id: &str, dest: &str) -> anyhow::Result<()> {
    if !from.exists() {
        bail!("{} does not exist", from.display());
    }
    let own_name = from
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .ok_or_else(|| anyhow!("{} names no file or directory", from.display()))?;
    // Into DEST when it is a directory in the box, else as DEST, in its
    // parent. Which one is asked first with an empty archive (it changes
    // nothing), so the tree itself is sent once.
    if dest.ends_with('/') || is_box_dir(client, id, dest).await? {
        return put_tree(client, id, dest, from, &own_name).await;
    }
    let dest_path = Path::new(dest);
    let (Some(parent), Some(name)) = (dest_path.parent(), dest_path.file_name()) else {
        bail!("{dest} names no file or directory");
    };
    put_tree(
        client,
        id,
        &parent.to_string_lossy(),
        from,
        &name.to_string_lossy(),
    )
    .await
}

/// Whether `dir` is a directory in the box: an empty archive unpacks
/// there (changing nothing) only if it is.
async fn is_box_dir(client: &Client, id: &str, dir: &str) -> anyhow::Result<bool> {
    let empty = vec![0u8; 1024];
    let probed = client
        .send(
            client
                .request(Method::PUT, &files_path(id, dir))
                .header(reqwest::header::CONTENT_TYPE, "application/x-tar")
                .body(empty),
        )
        .await;
    match probed {
        Ok(_) => Ok(true),
        Err(e) if not_a_directory(&e) => Ok(false),
        Err(e) => Err(e),
    }
}

async fn upload_stdin(client: &Client, id: &str, dir: &str) -> anyhow::Result<()> {
    let mut spooled = tokio::fs::File::from_std(tempfile::tempfile()?);
    tokio::io::copy(&mut tokio::io::stdin(), &mut spooled).await?;
    let mut spooled = spooled.into_std().await;
    std::io::Seek::rewind(&mut spooled)?;
    put_archive(client, id, dir, spooled).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn places() {
        assert_eq!(
            place("box-1:/tmp/x"),
            Place::Box {
                id: "box-1".into(),
                path: "/tmp/x".into()
            }
        );
        assert_eq!(place("-"), Place::Stdio);
        assert_eq!(place("./a:/b"), Place::Local("./a:/b".into()));
        assert_eq!(place("a:relative"), Place::Local("a:relative".into()));
        assert_eq!(place("notes.txt"), Place::Local("notes.txt".into()));
    }

    #[test]
    fn paths_are_escaped_for_the_query() {
        assert_eq!(percent_encode("/a b/c&d", b"/"), "/a%20b/c%26d");
    }
}
