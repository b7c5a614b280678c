//! Varlink subscribers for the clearance figures, all read by one thread
//! of their own that waits on epoll and stamps each read the moment it
//! returns. A hundred of these share two cores with paddock: as tasks of
//! the benchmark's runtime, the last subscriber's arrival also counted
//! scheduling the 99 before it, and the fan-out figure measured the
//! harness more than the hub. Frames are picked apart by hand (two fields,
//! no JSON parser) after the stamp.

use std::io::{ErrorKind, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::thread::JoinHandle;
use std::time::Instant;

use anyhow::Context;
use tokio::sync::mpsc;

/// (arrival, event type, request id) of every event a subscriber reads.
pub type Arrival = (Instant, String, String);

const SUBSCRIBE: &[u8] = b"{\"method\":\"org.terok.Clearance1.Subscribe\",\"more\":true}\0";

/// What the subscribers read, in order. The reader thread hands them over
/// a batch per wake-up: one channel send (and one wake-up of the receiving
/// task) per batch instead of per frame.
pub struct Arrivals {
    batches: mpsc::UnboundedReceiver<Vec<Arrival>>,
    ready: std::collections::VecDeque<Arrival>,
}

impl Arrivals {
    /// The next arrival; `None` once the reader thread has ended.
    pub async fn recv(&mut self) -> Option<Arrival> {
        while self.ready.is_empty() {
            self.ready.extend(self.batches.recv().await?);
        }
        self.ready.pop_front()
    }
}

/// The subscribers and their reader thread; dropping it hangs them all up.
pub struct Subscribers {
    stop: OwnedFd,
    reader: Option<JoinHandle<()>>,
}

fn check(rc: libc::c_int, what: &str) -> std::io::Result<libc::c_int> {
    if rc < 0 {
        let e = std::io::Error::last_os_error();
        return Err(std::io::Error::new(e.kind(), format!("{what}: {e}")));
    }
    Ok(rc)
}

fn watch(epoll: RawFd, fd: RawFd, token: u64) -> std::io::Result<()> {
    let mut event = libc::epoll_event {
        events: libc::EPOLLIN as u32,
        u64: token,
    };
    // SAFETY: both descriptors are open; the kernel copies the event.
    check(
        unsafe { libc::epoll_ctl(epoll, libc::EPOLL_CTL_ADD, fd, &mut event) },
        "epoll_ctl",
    )?;
    Ok(())
}

/// The string value of `"name":"…"`, the first in the frame.
fn field(frame: &[u8], name: &str) -> String {
    let key = format!("\"{name}\":\"");
    frame
        .windows(key.len())
        .position(|w| w == key.as_bytes())
        .map(|at| &frame[at + key.len()..])
        .and_then(|rest| rest.split(|&b| b == b'"').next())
        .map(|v| String::from_utf8_lossy(v).into_owned())
        .unwrap_or_default()
}

impl Subscribers {
    /// Connects `n` subscribers to the hub at `socket`; their events come
    /// out of [`Arrivals`] stamped with the time their bytes were read.
    pub fn start(socket: &Path, n: usize) -> anyhow::Result<(Self, Arrivals)> {
        let (tx, batches) = mpsc::unbounded_channel();
        let mut streams = Vec::with_capacity(n);
        for _ in 0..n {
            let mut s = UnixStream::connect(socket)
                .with_context(|| format!("connecting to {}", socket.display()))?;
            s.write_all(SUBSCRIBE)?;
            s.set_nonblocking(true)?;
            streams.push(s);
        }
        // SAFETY: plain syscalls; each result is owned at once.
        let epoll = unsafe {
            OwnedFd::from_raw_fd(check(
                libc::epoll_create1(libc::EPOLL_CLOEXEC),
                "epoll_create1",
            )?)
        };
        let stop =
            unsafe { OwnedFd::from_raw_fd(check(libc::eventfd(0, libc::EFD_CLOEXEC), "eventfd")?) };
        for (i, s) in streams.iter().enumerate() {
            watch(epoll.as_raw_fd(), s.as_raw_fd(), i as u64)?;
        }
        watch(epoll.as_raw_fd(), stop.as_raw_fd(), u64::MAX)?;
        let reader = std::thread::Builder::new()
            .name("subscribers".into())
            .spawn(move || read_all(epoll, streams, &tx))?;
        let arrivals = Arrivals {
            batches,
            ready: Default::default(),
        };
        Ok((
            Self {
                stop,
                reader: Some(reader),
            },
            arrivals,
        ))
    }
}

fn read_all(
    epoll: OwnedFd,
    mut streams: Vec<UnixStream>,
    tx: &mpsc::UnboundedSender<Vec<Arrival>>,
) {
    let mut pending: Vec<Vec<u8>> = vec![Vec::with_capacity(64 * 1024); streams.len()];
    let mut events = vec![libc::epoll_event { events: 0, u64: 0 }; 256];
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        // SAFETY: `events` has room for the count passed.
        let ready = unsafe {
            libc::epoll_wait(
                epoll.as_raw_fd(),
                events.as_mut_ptr(),
                events.len() as libc::c_int,
                -1,
            )
        };
        if ready < 0 {
            if std::io::Error::last_os_error().kind() == ErrorKind::Interrupted {
                continue;
            }
            return;
        }
        let mut batch = Vec::new();
        for event in &events[..ready as usize] {
            let token = event.u64;
            if token == u64::MAX {
                return;
            }
            let i = token as usize;
            loop {
                match streams[i].read(&mut chunk) {
                    Ok(0) => {
                        // SAFETY: removing a descriptor we added.
                        unsafe {
                            libc::epoll_ctl(
                                epoll.as_raw_fd(),
                                libc::EPOLL_CTL_DEL,
                                streams[i].as_raw_fd(),
                                std::ptr::null_mut(),
                            )
                        };
                        break;
                    }
                    Ok(n) => {
                        let at = Instant::now();
                        let buf = &mut pending[i];
                        buf.extend_from_slice(&chunk[..n]);
                        while let Some(end) = buf.iter().position(|&b| b == 0) {
                            let frame = &buf[..end];
                            let arrival = (at, field(frame, "type"), field(frame, "request_id"));
                            batch.push(arrival);
                            buf.drain(..=end);
                        }
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == ErrorKind::Interrupted => {}
                    Err(_) => break,
                }
            }
        }
        if !batch.is_empty() && tx.send(batch).is_err() {
            return;
        }
    }
}

impl Drop for Subscribers {
    fn drop(&mut self) {
        let one: u64 = 1;
        // SAFETY: an eventfd takes exactly eight bytes.
        unsafe { libc::write(self.stop.as_raw_fd(), (&one as *const u64).cast(), 8) };
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::field;

    #[test]
    fn fields_are_read_from_a_frame() {
        let frame = br#"{"parameters":{"event":{"type":"connection_blocked","container":"b","request_id":"r-1"}},"continues":true}"#;
        assert_eq!(field(frame, "type"), "connection_blocked");
        assert_eq!(field(frame, "request_id"), "r-1");
        assert_eq!(field(frame, "absent"), "");
    }
}
