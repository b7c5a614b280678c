//! Files into and out of a box: tar archives (what `paddock box cp` and
//! REST move) and single text files (what MCP's `read_file` and
//! `write_file` carry).
//!
//! An archive is checked whole before the engine sees any of it: every
//! entry must stay inside the directory it is unpacked into — no absolute
//! path, no `..`, no link whose target leads out, no device — so a refused
//! archive leaves nothing half-unpacked. The engine then resolves the
//! destination inside the container's own root.

use std::io::{Read, Seek};
use std::path::{Component, Path};

use futures_util::StreamExt;
use paddock_docker::{ArchiveBody, ArchiveStream, EngineError, FileEntry};

use crate::{BoxService, CoreError, Result};

/// The longest path accepted, as Linux's `PATH_MAX`.
const MAX_PATH: usize = 4096;

/// A path in a box: absolute, no NUL, no `..` (the engine would resolve
/// it, but a path that climbs says something is wrong with whoever made
/// it), at most `PATH_MAX`.
pub fn box_path(path: &str) -> Result<&str> {
    let invalid = |why: &str| Err(CoreError::Invalid(format!("path {why}")));
    if path.len() > MAX_PATH {
        return invalid(&format!("is longer than {MAX_PATH} bytes"));
    }
    if path.contains('\0') {
        return invalid("contains a NUL byte");
    }
    if !path.starts_with('/') {
        return invalid(&format!("{path:?} is not absolute (it must start with /)"));
    }
    if Path::new(path)
        .components()
        .any(|c| c == Component::ParentDir)
    {
        return invalid(&format!("{path:?} contains '..'"));
    }
    Ok(path)
}

/// What a checked archive holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ArchiveSummary {
    pub entries: u64,
    pub file_bytes: u64,
}

/// Checks every entry of a tar archive: relative paths that stay inside,
/// links whose targets stay inside, regular files, directories and links
/// only, and no entry cut short by the archive's end. Only headers are
/// read: file contents are skipped by seeking, so checking costs no pass
/// over the data.
pub fn check_archive<R: Read + Seek>(mut reader: R) -> Result<ArchiveSummary> {
    let refuse = |why: String| CoreError::Invalid(format!("archive refused: {why}"));
    let unreadable = |e: std::io::Error| refuse(format!("unreadable ({e})"));
    let length_bytes = reader.seek(std::io::SeekFrom::End(0)).map_err(unreadable)?;
    reader.rewind().map_err(unreadable)?;
    let summary = check_entries(&mut reader)?;
    // Seeking past the end succeeds; a file's data that the archive does
    // not hold is found here instead.
    if reader.stream_position().map_err(unreadable)? > length_bytes {
        return Err(refuse("it ends inside an entry (truncated)".into()));
    }
    Ok(summary)
}

fn check_entries<R: Read + Seek>(reader: R) -> Result<ArchiveSummary> {
    let refuse = |why: String| CoreError::Invalid(format!("archive refused: {why}"));
    let mut archive = tar::Archive::new(reader);
    let mut summary = ArchiveSummary::default();
    let entries = archive
        .entries_with_seek()
        .map_err(|e| refuse(format!("not a tar archive ({e})")))?;
    for entry in entries {
        let entry = entry.map_err(|e| refuse(format!("unreadable entry ({e})")))?;
        let path = entry
            .path()
            .map_err(|e| refuse(format!("unreadable name ({e})")))?
            .into_owned();
        let shown = path.display().to_string();
        let Some(depth) = inside(&path, 0) else {
            return Err(refuse(format!("{shown:?} leads outside the destination")));
        };
        use tar::EntryType as T;
        match entry.header().entry_type() {
            T::Regular | T::Continuous => summary.file_bytes += entry.size(),
            T::Directory => {}
            T::Symlink | T::Link => {
                let target = entry
                    .link_name()
                    .map_err(|e| refuse(format!("{shown:?}: unreadable link ({e})")))?
                    .ok_or_else(|| refuse(format!("{shown:?}: a link without a target")))?;
                // A symbolic link resolves from its own directory; a hard
                // link names a path from the archive's root.
                let from = match entry.header().entry_type() {
                    T::Symlink => depth.saturating_sub(1),
                    _ => 0,
                };
                if inside(&target, from).is_none() {
                    return Err(refuse(format!(
                        "{shown:?} links to {:?}, outside the destination",
                        target.display()
                    )));
                }
            }
            other => {
                return Err(refuse(format!(
                    "{shown:?} is a {other:?}, not a file, directory or link"
                )));
            }
        }
        summary.entries += 1;
    }
    Ok(summary)
}

/// The depth `path` reaches below the destination when walked from
/// `depth` levels down; None when it is absolute or climbs above it.
fn inside(path: &Path, mut depth: usize) -> Option<usize> {
    for component in path.components() {
        match component {
            Component::Normal(_) => depth += 1,
            Component::CurDir => {}
            Component::ParentDir => depth = depth.checked_sub(1)?,
            Component::RootDir | Component::Prefix(_) => return None,
        }
    }
    Some(depth)
}

impl BoxService {
    /// Refuses, before any of an upload is read, a destination that is
    /// not a directory in the box (missing: `NoSuchPath`; a file: not a
    /// directory) — so a client that tries "into DEST" first, as `docker
    /// cp` does, learns it at once instead of after sending everything.
    /// A link is left to the engine, which follows it when unpacking.
    pub async fn check_upload_dir(&self, id: &str, dir: &str) -> Result<()> {
        let dir = box_path(dir)?;
        let container = self.container_of(id, false)?;
        match self.engine.path_stat(&container, dir).await? {
            None => Err(CoreError::NoSuchPath(dir.to_owned())),
            Some(stat) if !stat.is_dir && !stat.is_link => Err(CoreError::Invalid(format!(
                "{dir} is not a directory in the box"
            ))),
            Some(_) => Ok(()),
        }
    }

    /// Unpacks a tar archive (spooled by the caller, whole, into `tar`;
    /// read from its start) into the box's directory `dir`, once every
    /// entry is checked.
    pub async fn put_archive(
        &self,
        id: &str,
        dir: &str,
        mut tar: std::fs::File,
    ) -> Result<ArchiveSummary> {
        let dir = box_path(dir)?;
        let container = self.container_of(id, false)?;
        let (summary, tar) = tokio::task::spawn_blocking(move || {
            let reread =
                |e: std::io::Error| CoreError::Invalid(format!("cannot reread the archive: {e}"));
            tar.rewind().map_err(reread)?;
            let summary = check_archive(std::io::BufReader::new(&mut tar))?;
            tar.rewind().map_err(reread)?;
            Ok::<_, CoreError>((summary, tar))
        })
        .await
        .map_err(|e| CoreError::Invalid(format!("checking the archive failed: {e}")))??;
        let checked_at = std::time::Instant::now();
        // Large reads: each read of a tokio file is a trip to the blocking
        // pool, and at the default 4 KiB that trip is the cost.
        let body: ArchiveBody = Box::pin(tokio_util::io::ReaderStream::with_capacity(
            tokio::fs::File::from_std(tar),
            1024 * 1024,
        ));
        self.engine
            .upload_archive(&container, dir, body)
            .await
            .map_err(|e| path_error(e, dir))?;
        tracing::debug!(box_id = %id, engine_ms = checked_at.elapsed().as_millis(), "the engine unpacked an archive");
        self.note_use(id);
        Ok(summary)
    }

    /// A tar archive of the box's `path`, refused up front when the engine
    /// says a file there is larger than `[boxes] copy_max_mib`; the stream
    /// itself ends in an error once it passes the cap (a directory's size
    /// is only known as it streams).
    pub async fn get_archive(&self, id: &str, path: &str) -> Result<ArchiveStream> {
        let path = box_path(path)?;
        let container = self.container_of(id, false)?;
        let limit_bytes = self.config().boxes.copy_max_mib.saturating_mul(1024 * 1024);
        let stat = self
            .engine
            .path_stat(&container, path)
            .await?
            .ok_or_else(|| CoreError::NoSuchPath(path.to_owned()))?;
        if !stat.is_dir && stat.size_bytes > limit_bytes {
            return Err(CoreError::TooLarge {
                what: "the file",
                limit_bytes,
            });
        }
        let stream = self
            .engine
            .download_archive(&container, path)
            .await
            .map_err(|e| path_error(e, path))?;
        self.note_use(id);
        let mut sent = 0u64;
        Ok(Box::pin(stream.map(move |chunk| {
            let chunk = chunk?;
            sent += chunk.len() as u64;
            if sent > limit_bytes.saturating_add(1024 * 1024) {
                return Err(EngineError::Other(format!(
                    "the archive passed the limit of {limit_bytes} bytes; cut off"
                )));
            }
            Ok(chunk)
        })))
    }

    /// Writes `content` to the file `path` in the box (its directories
    /// made as needed), replacing what was there.
    pub async fn write_text_file(&self, id: &str, path: &str, content: &str) -> Result<u64> {
        let path = box_path(path)?;
        let limit_bytes = self.text_file_limit_bytes();
        if content.len() as u64 > limit_bytes {
            return Err(CoreError::TooLarge {
                what: "the content",
                limit_bytes,
            });
        }
        if path.ends_with('/') || Path::new(path).file_name().is_none() {
            return Err(CoreError::Invalid(format!(
                "path {path:?} names a directory, not a file"
            )));
        }
        let container = self.container_of(id, false)?;
        let file = FileEntry {
            path: path.to_owned(),
            content: content.as_bytes().to_vec(),
            mode: 0o644,
        };
        self.engine
            .upload_files(&container, std::slice::from_ref(&file))
            .await
            .map_err(|e| path_error(e, path))?;
        self.note_use(id);
        Ok(content.len() as u64)
    }

    /// The text of the file `path` in the box: a regular file, UTF-8, at
    /// most `[boxes] text_file_max_kib`.
    pub async fn read_text_file(&self, id: &str, path: &str) -> Result<String> {
        let path = box_path(path)?;
        let limit_bytes = self.text_file_limit_bytes();
        let container = self.container_of(id, false)?;
        let stat = self
            .engine
            .path_stat(&container, path)
            .await?
            .ok_or_else(|| CoreError::NoSuchPath(path.to_owned()))?;
        if stat.is_dir {
            return Err(CoreError::Invalid(format!(
                "{path:?} is a directory; read_file reads files"
            )));
        }
        if stat.size_bytes > limit_bytes {
            return Err(CoreError::TooLarge {
                what: "the file",
                limit_bytes,
            });
        }
        let mut stream = self
            .engine
            .download_archive(&container, path)
            .await
            .map_err(|e| path_error(e, path))?;
        let mut tar = Vec::new();
        while let Some(chunk) = stream.next().await {
            tar.extend_from_slice(&chunk?);
            if tar.len() as u64 > limit_bytes.saturating_add(64 * 1024) {
                return Err(CoreError::TooLarge {
                    what: "the file",
                    limit_bytes,
                });
            }
        }
        self.note_use(id);
        first_file_text(&tar, path)
    }

    fn text_file_limit_bytes(&self) -> u64 {
        self.config().boxes.text_file_max_kib.saturating_mul(1024)
    }
}

/// The content of the archive's first entry, which must be a regular file
/// of UTF-8 text (a link is followed by the engine only for the path it
/// was asked for, so a link here means the path itself is one).
fn first_file_text(tar: &[u8], path: &str) -> Result<String> {
    let mut archive = tar::Archive::new(tar);
    let not_text = || CoreError::Invalid(format!("{path:?} is not a regular file"));
    let mut entries = archive.entries().map_err(|_| not_text())?;
    let mut entry = entries
        .next()
        .ok_or_else(not_text)?
        .map_err(|_| not_text())?;
    if !entry.header().entry_type().is_file() {
        return Err(not_text());
    }
    let mut bytes = Vec::new();
    entry.read_to_end(&mut bytes).map_err(|_| not_text())?;
    String::from_utf8(bytes).map_err(|_| {
        CoreError::Invalid(format!(
            "{path:?} is not UTF-8 text; copy it as an archive instead (paddock box cp)"
        ))
    })
}

/// The engine's answers about a path, in the user's terms.
/// The engine's refusals in the user's terms. Engines differ in the
/// status they give the same refusal (Debian's 20.10 answers 500 to a
/// destination that is a file), so its words decide.
fn path_error(e: EngineError, path: &str) -> CoreError {
    match e {
        EngineError::NotFound(_) => CoreError::NoSuchPath(path.to_owned()),
        EngineError::Api { message, .. } if message.contains("not a directory") => {
            CoreError::Invalid(format!("{path} is not a directory in the box"))
        }
        EngineError::Api { message, .. } if message.contains("read-only") => {
            CoreError::Invalid(format!(
                "{path} is on the box's read-only root filesystem; write under its workspace or /tmp"
            ))
        }
        EngineError::Api {
            status: 400,
            message,
        } => CoreError::Invalid(message),
        other => other.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn engine_refusals_are_named_whatever_status_the_engine_gave() {
        let refused = |status, message: &str| EngineError::Api {
            status,
            message: message.into(),
        };
        for status in [400, 500] {
            let e = path_error(
                refused(status, "extraction point is not a directory"),
                "/tmp/f",
            );
            assert!(
                matches!(&e, CoreError::Invalid(m) if m == "/tmp/f is not a directory in the box"),
                "{e:?}"
            );
        }
        let e = path_error(refused(500, "container rootfs is marked read-only"), "/etc");
        assert!(
            matches!(&e, CoreError::Invalid(m) if m.contains("read-only")),
            "{e:?}"
        );
        let e = path_error(refused(500, "something else"), "/x");
        assert!(matches!(e, CoreError::Engine(_)), "{e:?}");
    }

    /// An archive with the given entries: (path, kind, link target). The
    /// names are written raw into the header, as a hostile client would.
    fn archive(entries: &[(&str, tar::EntryType, &str)]) -> Vec<u8> {
        let mut builder = tar::Builder::new(Vec::new());
        for (path, kind, target) in entries {
            let mut header = tar::Header::new_gnu();
            header.as_old_mut().name[..path.len()].copy_from_slice(path.as_bytes());
            header.set_entry_type(*kind);
            header.set_mode(0o644);
            let data: &[u8] = if kind.is_file() { b"hello" } else { b"" };
            header.set_size(data.len() as u64);
            if !target.is_empty() {
                header.as_old_mut().linkname[..target.len()].copy_from_slice(target.as_bytes());
            }
            header.set_cksum();
            builder.append(&header, data).unwrap();
        }
        builder.into_inner().unwrap()
    }

    use tar::EntryType as T;

    #[test]
    fn an_archive_that_stays_inside_passes() {
        let ok = archive(&[
            ("dir/", T::Directory, ""),
            ("dir/a.txt", T::Regular, ""),
            ("dir/link", T::Symlink, "a.txt"),
            ("dir/up", T::Symlink, "../dir/a.txt"),
            ("hard", T::Link, "dir/a.txt"),
            ("./b.txt", T::Regular, ""),
        ]);
        let summary = check_archive(std::io::Cursor::new(ok)).unwrap();
        assert_eq!(
            summary,
            ArchiveSummary {
                entries: 6,
                file_bytes: 10
            }
        );
    }

    #[test]
    fn entries_and_links_leading_out_are_refused() {
        for (entries, says) in [
            (vec![("/etc/passwd", T::Regular, "")], "leads outside"),
            (vec![("a/../../x", T::Regular, "")], "leads outside"),
            (
                vec![("evil", T::Symlink, "/etc")],
                "outside the destination",
            ),
            (
                vec![("d/evil", T::Symlink, "../../etc")],
                "outside the destination",
            ),
            (
                vec![("evil", T::Link, "../outside")],
                "outside the destination",
            ),
            (vec![("dev", T::Char, "")], "not a file, directory or link"),
            (vec![("fifo", T::Fifo, "")], "not a file, directory or link"),
        ] {
            let err = check_archive(std::io::Cursor::new(archive(&entries)))
                .unwrap_err()
                .to_string();
            assert!(err.contains(says), "{entries:?}: {err}");
        }
    }

    #[test]
    fn garbage_is_not_an_archive() {
        let err = check_archive(std::io::Cursor::new(&b"this is not a tar archive at all, and it is long enough to be read as one header block by a naive reader .............................................................................................................................................................................................................................................................................................................................................................................................................................................."[..]));
        assert!(err.is_err());
    }

    #[test]
    fn an_archive_cut_inside_a_file_is_refused() {
        let mut builder = tar::Builder::new(Vec::new());
        let data = vec![7u8; 4096];
        let mut header = tar::Header::new_gnu();
        header.set_size(data.len() as u64);
        header.set_entry_type(T::Regular);
        header.set_mode(0o644);
        header.set_cksum();
        builder
            .append_data(&mut header, "big.bin", data.as_slice())
            .unwrap();
        let whole = builder.into_inner().unwrap();
        assert!(check_archive(std::io::Cursor::new(whole.clone())).is_ok());
        let cut = whole[..512 + 1024].to_vec();
        let err = check_archive(std::io::Cursor::new(cut))
            .unwrap_err()
            .to_string();
        assert!(err.contains("truncated"), "{err}");
    }

    #[test]
    fn box_paths() {
        assert!(box_path("/workspace/a.txt").is_ok());
        for bad in ["relative", "/a/../b", "/a\0b", ""] {
            assert!(box_path(bad).is_err(), "{bad:?}");
        }
        assert!(box_path(&format!("/{}", "a".repeat(MAX_PATH))).is_err());
    }
}
