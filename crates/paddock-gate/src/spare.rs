//! A spare `git http-backend` for a push's second request.
//!
//! A push over smart HTTP is two requests on one connection: the ref
//! advertisement, then a POST carrying commands and pack. git's client
//! buffers the whole pack before it sends the POST, so whatever the gate
//! does after the POST arrives is on the push's critical path, and
//! starting `http-backend` (which starts `receive-pack`) is most of that.
//! So when the gate has served a push's advertisement it starts the
//! backend for the POST that will follow, on that connection only. The
//! spare is used only by a POST of the same project, principal and
//! protocol whose headers need no environment the spare lacks; anything
//! else drops it (it has read nothing, so it ends without effect) and
//! starts a fresh backend as before.
//!
//! The one thing a spare cannot know in advance is its hook set (decided
//! from the commands). It gets a link that the gate re-points before the
//! first byte of the request reaches it; see `hooks_dir::SpareLink`.

use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::AsyncReadExt;

use crate::cgi::Backend;
use crate::hooks_dir::SpareLink;

/// How long a spare waits for its POST. git sends it as soon as its pack
/// is built; a client that takes longer gets a fresh backend.
const SPARE_TTL: Duration = Duration::from_secs(30);

/// What a POST must match to take the spare: the environment it was
/// started with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SpareKey {
    pub project: String,
    pub principal: String,
    pub protocol: Option<String>,
}

pub(crate) struct Spare {
    pub key: SpareKey,
    pub backend: Backend,
}

/// One connection's spare (at most one).
#[derive(Default)]
pub(crate) struct SpareSlot {
    inner: Mutex<Option<(u64, Spare)>>,
    generation: std::sync::atomic::AtomicU64,
}

impl SpareSlot {
    /// Holds `spare` for the next POST, dropping any earlier one; it is
    /// dropped unused after `SPARE_TTL`.
    pub fn put(self: &Arc<Self>, spare: Spare) {
        let id = self
            .generation
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let old = self.lock().replace((id, spare));
        drop(old);
        let slot = Arc::downgrade(self);
        let expiry = tokio::time::Instant::now() + SPARE_TTL;
        tokio::spawn(async move {
            tokio::time::sleep_until(expiry).await;
            if let Some(slot) = slot.upgrade() {
                let mut inner = slot.lock();
                if inner.as_ref().is_some_and(|(held, _)| *held == id) {
                    let expired = inner.take();
                    drop(inner);
                    drop(expired);
                }
            }
        });
    }

    /// The spare, if it was started for `key`; any other is dropped.
    pub fn take(&self, key: &SpareKey) -> Option<Backend> {
        let (_, spare) = self.lock().take()?;
        (spare.key == *key).then_some(spare.backend)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<(u64, Spare)>> {
        // A poisoned slot holds at worst a spare nobody will take.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Keeps a spare's hook link until the backend's output has ended.
///
/// Removing the link while `receive-pack` still runs would let it find no
/// hooks at all, and `receive-pack` outlives a killed `http-backend`
/// (when the client goes away mid-push, say). It holds the output pipe to
/// its end, so the link goes only once that pipe has no writer left; if
/// that cannot be watched (no runtime, the process exiting), the link
/// stays, to be swept long after this process is gone.
pub(crate) struct HooksGuard {
    link: Option<SpareLink>,
    /// A second handle on the output pipe's read end, watched for its end
    /// once the first is dropped.
    output: Option<OwnedFd>,
}

impl HooksGuard {
    pub fn new(link: SpareLink, output: &impl AsRawFd) -> Self {
        // SAFETY: dup of a descriptor that is open for as long as `output`
        // lives; the copy is owned from here on.
        let copy = unsafe { libc::fcntl(output.as_raw_fd(), libc::F_DUPFD_CLOEXEC, 0) };
        let output = (copy >= 0).then(|| {
            // SAFETY: `copy` is a fresh descriptor nobody else owns.
            unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(copy) }
        });
        Self {
            link: Some(link),
            output,
        }
    }

    pub fn point(&self, set: &std::path::Path) -> std::io::Result<()> {
        match &self.link {
            Some(link) => link.point(set),
            None => Ok(()),
        }
    }

    /// The output was read to its end: nothing can run a hook any more.
    pub fn release_at_eof(mut self) {
        self.output = None;
        if let Some(link) = self.link.take() {
            link.remove();
        }
    }
}

impl Drop for HooksGuard {
    fn drop(&mut self) {
        // Whatever path does not reach the output's end leaves the link.
        let (Some(link), Some(output)) = (self.link.take(), self.output.take()) else {
            return;
        };
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        DRAINS.spawn_on(
            async move {
                let Ok(mut pipe) = tokio::net::unix::pipe::Receiver::from_owned_fd(output) else {
                    return;
                };
                let mut buf = vec![0u8; 16 * 1024];
                // An hour is far past any push; a writer still there then is
                // left with its link.
                let deadline = tokio::time::Instant::now() + Duration::from_secs(3600);
                loop {
                    match tokio::time::timeout_at(deadline, pipe.read(&mut buf)).await {
                        Ok(Ok(0)) => return link.remove(),
                        Ok(Ok(_)) => {}
                        Ok(Err(_)) | Err(_) => return,
                    }
                }
            },
            &runtime,
        );
    }
}

/// The watches of dropped spares' outputs, so a process about to exit (an
/// inetd gate after its one connection) can let them finish.
static DRAINS: std::sync::LazyLock<tokio_util::task::TaskTracker> =
    std::sync::LazyLock::new(tokio_util::task::TaskTracker::new);

/// Waits up to `limit` for every dropped spare to end and its link to go.
pub async fn settle(limit: Duration) {
    DRAINS.close();
    let _ = tokio::time::timeout(limit, DRAINS.wait()).await;
    DRAINS.reopen();
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::time::{Duration, Instant};

    use super::*;
    use crate::hooks_dir::HooksDir;

    /// `receive-pack` outlives `http-backend`: the link must stay until the
    /// last process holding the output is gone, not just the one we
    /// started. Here a shell leaves behind a child that holds the output
    /// until the test lets it go (through a FIFO).
    #[tokio::test]
    async fn a_spare_link_outlives_every_writer_of_the_output() {
        let Fixture { tmp, hooks } = Fixture::new();
        let link = hooks.spare_link(&hooks.set(true, false)).unwrap();
        let at = link.path().to_owned();
        let fifo = tmp.path().join("go");
        let started = tmp.path().join("started");
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: a NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let env = [
            ("PATH".to_owned(), "/usr/bin:/bin".to_owned()),
            ("FIFO".to_owned(), fifo.display().to_string()),
            ("STARTED".to_owned(), started.display().to_string()),
        ];
        let script =
            "(read x < \"$FIFO\") & echo $! > \"$STARTED.new\"; mv \"$STARTED.new\" \"$STARTED\""
                .to_owned();
        let mut backend = Backend::spawn("/bin/sh", &["-c".into(), script], &env).unwrap();
        backend.keep_hooks(link);
        let deadline = Instant::now() + Duration::from_secs(10);
        while !started.exists() {
            assert!(
                Instant::now() < deadline,
                "the shell never started its child"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        // Dropped while the shell still ran, the handle would end its
        // whole process group, the child too (as it should): wait until
        // the shell has ended and been reaped, as http-backend has by the
        // time receive-pack outlives it.
        let shell = format!("/proc/{}", backend.id());
        let deadline = Instant::now() + Duration::from_secs(10);
        while Path::new(&shell).exists() {
            assert!(Instant::now() < deadline, "the shell never ended");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        drop(backend);

        // The shell is gone; its child still writes (or could).
        let until = Instant::now() + Duration::from_millis(300);
        while Instant::now() < until {
            assert!(at.symlink_metadata().is_ok(), "link removed too early");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        std::fs::write(&fifo, "go\n").unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while at.symlink_metadata().is_ok() {
            assert!(Instant::now() < deadline, "link never removed");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// A hooks directory, and spares that are `cat` (reads until its
    /// input closes, like receive-pack) tied to a link in it.
    struct Fixture {
        tmp: tempfile::TempDir,
        hooks: HooksDir,
    }

    impl Fixture {
        fn new() -> Self {
            let tmp = tempfile::tempdir().unwrap();
            let hooks = HooksDir::create(Path::new("/bin/true"), Some(tmp.path())).unwrap();
            Self { tmp, hooks }
        }

        fn spare(&self, key: &SpareKey) -> Spare {
            let mut backend = Backend::spawn("/bin/cat", &[], &[]).unwrap();
            let set = self.hooks.set(true, false);
            backend.keep_hooks(self.hooks.spare_link(&set).unwrap());
            Spare {
                key: key.clone(),
                backend,
            }
        }
    }

    fn alpha_key() -> SpareKey {
        SpareKey {
            project: "alpha".into(),
            principal: "token:1".into(),
            protocol: None,
        }
    }

    #[tokio::test]
    async fn a_spare_is_taken_only_by_its_own_key() {
        let fixture = Fixture::new();
        let key = alpha_key();
        let slot = Arc::new(SpareSlot::default());
        slot.put(fixture.spare(&key));
        let other = SpareKey {
            principal: "token:2".into(),
            ..key.clone()
        };
        assert!(slot.take(&other).is_none(), "another principal's");
        assert!(slot.take(&key).is_none(), "dropped by the mismatch");
        slot.put(fixture.spare(&key));
        assert!(slot.take(&key).is_some());
    }

    /// Paused time: the timer is the spare's own, nothing else waits.
    #[tokio::test(start_paused = true)]
    async fn a_spare_not_taken_in_time_is_dropped() {
        let fixture = Fixture::new();
        let slot = Arc::new(SpareSlot::default());
        slot.put(fixture.spare(&alpha_key()));
        tokio::time::advance(SPARE_TTL - Duration::from_secs(1)).await;
        assert!(slot.lock().is_some(), "still waiting for its POST");
        tokio::time::advance(Duration::from_secs(2)).await;
        for _ in 0..100 {
            if slot.lock().is_none() {
                return;
            }
            tokio::task::yield_now().await;
        }
        panic!("the spare outlived its wait");
    }
}
