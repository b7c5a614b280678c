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

/// The barest relay that speaks the gateway's protocol, for the floor of
/// a new connection through any proxy here: read a CONNECT head, connect,
/// answer 200, copy both ways — no policy, no log, no events — on a
/// runtime of its own with as many workers as paddock's, as the gateway
/// has in its process. A thread-per-connection relay would measure
/// thread creation instead.
pub fn start_connect() -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    listener.set_nonblocking(true)?;
    let addr = listener.local_addr()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(std::thread::available_parallelism().map_or(2, |n| n.get()))
        .thread_name("bare-connect-relay")
        .enable_io()
        .build()?;
    std::thread::spawn(move || {
        runtime.block_on(async move {
            let Ok(listener) = tokio::net::TcpListener::from_std(listener) else {
                return;
            };
            while let Ok((client, _)) = listener.accept().await {
                tokio::spawn(relay_connect(client));
            }
        })
    });
    Ok(addr)
}

async fn relay_connect(mut client: tokio::net::TcpStream) -> std::io::Result<()> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    client.set_nodelay(true)?;
    let mut head = Vec::with_capacity(256);
    let mut buf = [0u8; 1024];
    let end = loop {
        let n = client.read(&mut buf).await?;
        if n == 0 || head.len() > 8192 {
            return Ok(());
        }
        head.extend_from_slice(&buf[..n]);
        if let Some(at) = head.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
    };
    let line = String::from_utf8_lossy(&head[..end]);
    let Some(target) = line
        .strip_prefix("CONNECT ")
        .and_then(|rest| rest.split(' ').next())
        .and_then(|t| t.parse::<SocketAddr>().ok())
    else {
        return client.write_all(b"HTTP/1.1 400 Bad Request\r\n\r\n").await;
    };
    let mut upstream = tokio::net::TcpStream::connect(target).await?;
    upstream.set_nodelay(true)?;
    upstream.write_all(&head[end..]).await?;
    client
        .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
        .await?;
    tokio::io::copy_bidirectional(&mut client, &mut upstream).await?;
    Ok(())
}
