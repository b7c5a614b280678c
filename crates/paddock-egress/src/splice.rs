//! Tunnels that move bytes socket → pipe → socket inside the kernel
//! (splice(2)), so an established tunnel costs the gateway no copies
//! through user space. Each direction has its own pipe; an end of stream
//! is passed on as a half-close, and the tunnel ends when both directions
//! have.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use tokio::io::Interest;
use tokio::net::TcpStream;

/// Bytes a pipe may hold; larger pipes mean fewer wake-ups per megabyte.
const PIPE_SIZE: libc::c_int = 1 << 18;
const SPLICE_FLAGS: libc::c_uint = libc::SPLICE_F_MOVE | libc::SPLICE_F_NONBLOCK;

struct Pipe {
    read: OwnedFd,
    write: OwnedFd,
    /// Bytes in the pipe not yet passed on.
    held: usize,
}

/// Empty pipes kept from ended tunnels: a tunnel's set-up then costs no
/// pipe2/fcntl/close calls, which are most of what a short connection
/// spends here. Only a pipe known to be empty comes back.
static SPARE_PIPES: parking_lot::Mutex<Vec<(OwnedFd, OwnedFd)>> =
    parking_lot::Mutex::new(Vec::new());
const MAX_SPARE_PIPES: usize = 64;

impl Pipe {
    fn new() -> io::Result<Self> {
        let spare = SPARE_PIPES.lock().pop();
        if let Some((read, write)) = spare {
            return Ok(Self {
                read,
                write,
                held: 0,
            });
        }
        let mut fds = [0 as RawFd; 2];
        // SAFETY: pipe2 fills two descriptors, owned at once below.
        if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_NONBLOCK | libc::O_CLOEXEC) } != 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: both are fresh descriptors from pipe2.
        let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        // A smaller pipe still works; only slower.
        // SAFETY: fcntl on our own descriptor.
        unsafe { libc::fcntl(write.as_raw_fd(), libc::F_SETPIPE_SZ, PIPE_SIZE) };
        Ok(Self {
            read,
            write,
            held: 0,
        })
    }

    /// Keeps the pipe for another tunnel if nothing is left in it.
    fn recycle(self) {
        if self.held != 0 {
            return;
        }
        let mut spare = SPARE_PIPES.lock();
        if spare.len() < MAX_SPARE_PIPES {
            spare.push((self.read, self.write));
        }
    }
}

fn splice(from: RawFd, to: RawFd, len: usize) -> io::Result<usize> {
    // SAFETY: plain descriptors, null offsets (sockets and pipes).
    let n = unsafe {
        libc::splice(
            from,
            std::ptr::null_mut(),
            to,
            std::ptr::null_mut(),
            len,
            SPLICE_FLAGS,
        )
    };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

/// One direction until its end of stream (then half-closes `to`).
async fn pump(from: &TcpStream, to: &TcpStream) -> io::Result<u64> {
    let (from_fd, to_fd) = (from.as_raw_fd(), to.as_raw_fd());
    let mut pipe = Pipe::new()?;
    let mut total = 0u64;
    loop {
        if pipe.held == 0 {
            let n = loop {
                from.readable().await?;
                match from.try_io(Interest::READABLE, || {
                    splice(from_fd, pipe.write.as_raw_fd(), PIPE_SIZE as usize)
                }) {
                    Ok(n) => break n,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                    Err(e) => return Err(e),
                }
            };
            if n == 0 {
                // SAFETY: shutdown(2) on a socket we hold; the write side
                // only, so the other direction keeps flowing.
                unsafe { libc::shutdown(to_fd, libc::SHUT_WR) };
                pipe.recycle();
                return Ok(total);
            }
            pipe.held = n;
        }
        while pipe.held > 0 {
            to.writable().await?;
            match to.try_io(Interest::WRITABLE, || {
                splice(pipe.read.as_raw_fd(), to_fd, pipe.held)
            }) {
                Ok(n) => {
                    pipe.held -= n;
                    total += n as u64;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => return Err(e),
            }
        }
    }
}

/// Copies both ways until both ends have finished; returns the bytes
/// moved (a→b, b→a).
pub async fn tunnel(a: &TcpStream, b: &TcpStream) -> io::Result<(u64, u64)> {
    tokio::try_join!(pump(a, b), pump(b, a))
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    use super::*;

    #[tokio::test]
    async fn moves_bytes_both_ways_and_passes_half_closes_on() {
        // The second tunnel runs on the pipes the first one left behind.
        for _ in 0..2 {
            one_tunnel().await;
        }
        assert!(
            !SPARE_PIPES.lock().is_empty(),
            "ended tunnels keep their pipes"
        );
    }

    async fn one_tunnel() {
        let upstream = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let front = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let (up_addr, front_addr) = (upstream.local_addr().unwrap(), front.local_addr().unwrap());
        let relay = tokio::spawn(async move {
            let (client, _) = front.accept().await.unwrap();
            let server = TcpStream::connect(up_addr).await.unwrap();
            tunnel(&client, &server).await.unwrap()
        });
        let echo = tokio::spawn(async move {
            let (mut s, _) = upstream.accept().await.unwrap();
            let mut got = Vec::new();
            s.read_to_end(&mut got).await.unwrap();
            s.write_all(&got).await.unwrap();
            s.shutdown().await.unwrap();
            got.len()
        });
        let mut client = TcpStream::connect(front_addr).await.unwrap();
        let payload: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
        let (mut r, mut w) = client.split();
        let send = async {
            w.write_all(&payload).await.unwrap();
            w.shutdown().await.unwrap();
        };
        let mut back = Vec::new();
        let receive = r.read_to_end(&mut back);
        let ((), got) = tokio::join!(send, receive);
        got.unwrap();
        assert_eq!(back, payload);
        assert_eq!(echo.await.unwrap(), payload.len());
        assert_eq!(
            relay.await.unwrap(),
            (payload.len() as u64, payload.len() as u64)
        );
    }
}
