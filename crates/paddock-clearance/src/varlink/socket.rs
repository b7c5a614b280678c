//! The clearance socket's file-system side: a 0600 socket in a 0700
//! directory of our own, and no one else's socket taken over.

use std::os::unix::fs::{DirBuilderExt, FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use tokio::net::UnixListener;

#[derive(Debug, thiserror::Error)]
pub enum SocketError {
    #[error("clearance socket {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "clearance socket directory {path} must be owned by uid {uid} and closed to others (mode 0700); it is owned by uid {owner} with mode {mode:o}"
    )]
    UnsafeDirectory {
        path: PathBuf,
        uid: u32,
        owner: u32,
        mode: u32,
    },
    #[error("clearance socket {0} is in use by another running hub")]
    InUse(PathBuf),
    #[error("{0} exists and is not a socket; refusing to replace it")]
    NotASocket(PathBuf),
    /// An interface method without its registry operation, or the other
    /// way round: the socket does not open half-guarded.
    #[error(transparent)]
    Registry(#[from] paddock_iam::RegistryError),
}

pub fn effective_uid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

/// Where the socket goes when nobody says: `/run/paddock` for root,
/// `$XDG_RUNTIME_DIR/paddock` otherwise.
pub fn default_socket_path() -> PathBuf {
    if effective_uid() == 0 {
        return PathBuf::from("/run/paddock/clearance.sock");
    }
    runtime_dir().join("paddock/clearance.sock")
}

/// `$XDG_RUNTIME_DIR`, or `/run/user/<uid>` without it (as terok reads it).
fn runtime_dir() -> PathBuf {
    std::env::var_os("XDG_RUNTIME_DIR")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(format!("/run/user/{}", effective_uid())))
}

/// Where terok's clients find hubs: they watch
/// `$XDG_RUNTIME_DIR/terok/clearance/*/hub.sock` and merge every hub they
/// find. paddock serves one there per instance (`paddock-<instance>`):
/// one subscription carries every box's events, and two instances never
/// share a path. (One per box would let terok's clients see boxes come
/// and go as sockets, at a listener and a subscription per box; the
/// events already say which box each is about.)
pub fn terok_socket_path(instance: &str) -> PathBuf {
    let safe: String = instance
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    runtime_dir()
        .join("terok/clearance")
        .join(format!("paddock-{safe}"))
        .join("hub.sock")
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> SocketError + '_ {
    move |source| SocketError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Creates the directory 0700 when missing; an existing one must already be
/// ours and closed to others (it is never loosened or tightened for us).
fn ensure_private_directory(dir: &Path) -> Result<(), SocketError> {
    if !dir.exists() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(io(dir))?;
    }
    let meta = std::fs::metadata(dir).map_err(io(dir))?;
    let uid = effective_uid();
    let mode = meta.mode() & 0o7777;
    if meta.uid() != uid || mode & 0o077 != 0 {
        return Err(SocketError::UnsafeDirectory {
            path: dir.to_owned(),
            uid,
            owner: meta.uid(),
            mode,
        });
    }
    Ok(())
}

/// Binds the socket, clearing a stale one left by a hub that died.
pub fn bind_private(path: &Path) -> Result<UnixListener, SocketError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    ensure_private_directory(dir)?;
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_socket() => {
            if std::os::unix::net::UnixStream::connect(path).is_ok() {
                return Err(SocketError::InUse(path.to_owned()));
            }
            std::fs::remove_file(path).map_err(io(path))?;
        }
        Ok(_) => return Err(SocketError::NotASocket(path.to_owned())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io(path)(e)),
    }
    let listener = UnixListener::bind(path).map_err(io(path))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(io(path))?;
    Ok(listener)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn makes_a_private_directory_and_socket() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("run/paddock/clearance.sock");
        let _listener = bind_private(&path).unwrap();
        let dir_mode = std::fs::metadata(path.parent().unwrap()).unwrap().mode() & 0o777;
        let sock_mode = std::fs::metadata(&path).unwrap().mode() & 0o777;
        assert_eq!((dir_mode, sock_mode), (0o700, 0o600));
        assert!(matches!(bind_private(&path), Err(SocketError::InUse(_))));
    }

    #[tokio::test]
    async fn refuses_a_shared_directory_and_replaces_a_stale_socket() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let err = bind_private(&tmp.path().join("c.sock")).unwrap_err();
        assert!(matches!(
            err,
            SocketError::UnsafeDirectory { mode: 0o755, .. }
        ));

        std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
        let path = tmp.path().join("c.sock");
        drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
        bind_private(&path).expect("a dead hub's socket is replaced");

        let file = tmp.path().join("f");
        std::fs::write(&file, b"x").unwrap();
        assert!(matches!(
            bind_private(&file),
            Err(SocketError::NotASocket(_))
        ));
    }
}
