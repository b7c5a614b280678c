//! The barest relays there are, for the floor of one proxy hop on this
//! machine: for each connection, two threads moving bytes with blocking
//! calls, no policy, no runtime — by splice(2) (no copy through user
//! space, as the gateway) or by a plain read/write copy. What the splice
//! relay loses against a direct connection is what the extra TCP hop
//! costs here, whoever relays.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

const PIPE_BYTES: usize = 1 << 18;

#[derive(Clone, Copy)]
pub enum Mode {
    Splice,
    Copy,
}

/// Accepts connections on loopback and relays each to `target`.
pub fn start(target: SocketAddr, mode: Mode) -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    std::thread::spawn(move || {
        for client in listener.incoming() {
            let Ok(client) = client else { return };
            let Ok(upstream) = TcpStream::connect(target) else {
                continue;
            };
            let (Ok(client2), Ok(upstream2)) = (client.try_clone(), upstream.try_clone()) else {
                continue;
            };
            let pump = match mode {
                Mode::Splice => splice_pump,
                Mode::Copy => copy_pump,
            };
            std::thread::spawn(move || pump(&client, &upstream));
            std::thread::spawn(move || pump(&upstream2, &client2));
        }
    });
    Ok(addr)
}

fn copy_pump(mut from: &TcpStream, mut to: &TcpStream) {
    use std::io::{Read, Write};
    let mut buf = vec![0u8; PIPE_BYTES];
    loop {
        match from.read(&mut buf) {
            Ok(0) | Err(_) => {
                let _ = to.shutdown(std::net::Shutdown::Write);
                return;
            }
            Ok(n) => {
                if to.write_all(&buf[..n]).is_err() {
                    return;
                }
            }
        }
    }
}

/// One blocking splice(2) between a socket and a pipe.
fn splice(from: RawFd, to: RawFd, len: usize) -> isize {
    // SAFETY: plain descriptors, null offsets (a socket and a pipe).
    unsafe {
        libc::splice(
            from,
            std::ptr::null_mut(),
            to,
            std::ptr::null_mut(),
            len,
            libc::SPLICE_F_MOVE,
        )
    }
}

fn splice_pump(from: &TcpStream, to: &TcpStream) {
    let mut fds = [0 as RawFd; 2];
    // SAFETY: pipe2 fills two descriptors, owned at once below.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return;
    }
    // SAFETY: fresh descriptors from pipe2.
    let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    // SAFETY: fcntl on our own descriptor.
    unsafe {
        libc::fcntl(
            write.as_raw_fd(),
            libc::F_SETPIPE_SZ,
            PIPE_BYTES as libc::c_int,
        )
    };
    loop {
        let n = splice(from.as_raw_fd(), write.as_raw_fd(), PIPE_BYTES);
        if n <= 0 {
            let _ = to.shutdown(std::net::Shutdown::Write);
            return;
        }
        let mut left = n as usize;
        while left > 0 {
            let m = splice(read.as_raw_fd(), to.as_raw_fd(), left);
            if m <= 0 {
                return;
            }
            left -= m as usize;
        }
    }
}
