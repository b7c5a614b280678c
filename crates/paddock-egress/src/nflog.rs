//! Reading NFLOG inside a box's network namespace. nfnetlink_log is
//! per namespace, so the socket is made by a thread that has entered the
//! box's namespace; the socket stays bound there after the thread leaves.
//! Each logged packet's header says where the box tried to go.

use std::net::IpAddr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use tokio::io::unix::AsyncFd;

use crate::EgressError;

const NETLINK_NETFILTER: libc::c_int = 12;
const NFNL_SUBSYS_ULOG: u16 = 4;
const NFULNL_MSG_PACKET: u16 = 0;
const NFULNL_MSG_CONFIG: u16 = 1;
const NFULA_CFG_CMD: u16 = 1;
const NFULA_CFG_MODE: u16 = 2;
const NFULA_CFG_QTHRESH: u16 = 5;
const NFULNL_CFG_CMD_BIND: u8 = 1;
const NFULNL_COPY_PACKET: u8 = 2;
const NFULA_PAYLOAD: u16 = 9;
const NLMSG_ERROR: u16 = 2;
const NLM_F_REQUEST: u16 = 1;
const NLM_F_ACK: u16 = 4;
/// Enough of each packet for its IP and transport headers.
const COPY_RANGE: u32 = 96;

/// A raw attempt, as far as its headers tell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    pub dest: IpAddr,
    pub port: u16,
    pub proto: u8,
}

pub struct NflogSocket {
    fd: AsyncFd<OwnedFd>,
}

fn os_error(what: &str) -> EgressError {
    EgressError::Firewall(format!("{what}: {}", std::io::Error::last_os_error()))
}

fn attr(kind: u16, payload: &[u8]) -> Vec<u8> {
    let len = 4 + payload.len();
    let mut out = Vec::with_capacity((len + 3) & !3);
    out.extend_from_slice(&(len as u16).to_ne_bytes());
    out.extend_from_slice(&kind.to_ne_bytes());
    out.extend_from_slice(payload);
    out.resize((len + 3) & !3, 0);
    out
}

fn config_message(group: u16, seq: u32, attrs: &[u8]) -> Vec<u8> {
    let len = 16 + 4 + attrs.len();
    let mut msg = Vec::with_capacity(len);
    msg.extend_from_slice(&(len as u32).to_ne_bytes());
    msg.extend_from_slice(&(NFNL_SUBSYS_ULOG << 8 | NFULNL_MSG_CONFIG).to_ne_bytes());
    msg.extend_from_slice(&(NLM_F_REQUEST | NLM_F_ACK).to_ne_bytes());
    msg.extend_from_slice(&seq.to_ne_bytes());
    msg.extend_from_slice(&0u32.to_ne_bytes());
    msg.push(libc::AF_UNSPEC as u8);
    msg.push(0); // NFNETLINK_V0
    msg.extend_from_slice(&group.to_be_bytes());
    msg.extend_from_slice(attrs);
    msg
}

/// Sends one request and reads its acknowledgement.
fn request(fd: &OwnedFd, msg: &[u8]) -> Result<(), EgressError> {
    // SAFETY: fd is a valid socket; msg outlives the call.
    let sent = unsafe { libc::send(fd.as_raw_fd(), msg.as_ptr().cast(), msg.len(), 0) };
    if sent < 0 {
        return Err(os_error("nflog: send"));
    }
    let mut buf = [0u8; 256];
    // SAFETY: buf is writable for its length.
    let got = unsafe { libc::recv(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
    if got < 20 {
        return Err(os_error("nflog: no acknowledgement"));
    }
    let kind = u16::from_ne_bytes([buf[4], buf[5]]);
    let error = i32::from_ne_bytes([buf[16], buf[17], buf[18], buf[19]]);
    if kind == NLMSG_ERROR && error != 0 {
        return Err(EgressError::Firewall(format!(
            "nflog: the kernel refused the group: {}",
            std::io::Error::from_raw_os_error(-error)
        )));
    }
    Ok(())
}

fn open_here(group: u16) -> Result<OwnedFd, EgressError> {
    // SAFETY: plain socket(2); the result is checked and owned at once.
    let raw = unsafe {
        libc::socket(
            libc::AF_NETLINK,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC,
            NETLINK_NETFILTER,
        )
    };
    if raw < 0 {
        return Err(os_error("nflog: socket"));
    }
    // SAFETY: raw is a fresh descriptor we own.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    let bind = [NFULNL_CFG_CMD_BIND];
    request(&fd, &config_message(group, 1, &attr(NFULA_CFG_CMD, &bind)))?;
    let mut mode = COPY_RANGE.to_be_bytes().to_vec();
    mode.extend_from_slice(&[NFULNL_COPY_PACKET, 0]);
    request(&fd, &config_message(group, 2, &attr(NFULA_CFG_MODE, &mode)))?;
    // Deliver each packet at once; the kernel's default batches for a
    // second, far too late for a person watching.
    let one = 1u32.to_be_bytes();
    request(
        &fd,
        &config_message(group, 3, &attr(NFULA_CFG_QTHRESH, &one)),
    )?;
    // SAFETY: fcntl on our own descriptor.
    unsafe {
        let flags = libc::fcntl(fd.as_raw_fd(), libc::F_GETFL);
        libc::fcntl(fd.as_raw_fd(), libc::F_SETFL, flags | libc::O_NONBLOCK);
    }
    Ok(fd)
}

impl NflogSocket {
    /// Binds `group` inside the network namespace of `pid`.
    pub async fn open_in(pid: u32, group: u16) -> Result<Self, EgressError> {
        let fd = tokio::task::spawn_blocking(move || {
            // A thread of its own: setns changes only the calling thread,
            // and this one ends right after, namespace and all.
            std::thread::spawn(move || -> Result<OwnedFd, EgressError> {
                let ns = std::fs::File::open(format!("/proc/{pid}/ns/net"))?;
                // SAFETY: setns on a namespace descriptor we hold open.
                if unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                    return Err(os_error(
                        "cannot enter the box's network namespace (needs root or CAP_SYS_ADMIN)",
                    ));
                }
                open_here(group)
            })
            .join()
            .map_err(|_| EgressError::Firewall("nflog: the setup thread panicked".into()))?
        })
        .await
        .map_err(|e| EgressError::Firewall(format!("nflog: {e}")))??;
        // SAFETY: an OwnedFd always returns the descriptor it owns, and
        // the AsyncFd owns it for its whole life.
        let fd = unsafe { AsyncFd::register(fd) }
            .map_err(|e| EgressError::Firewall(format!("nflog: {e}")))?;
        Ok(Self { fd })
    }

    /// The attempts in the next batch the kernel delivers.
    pub async fn next(&self) -> Result<Vec<Attempt>, EgressError> {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let mut guard = self.fd.readable().await?;
            // SAFETY: buf is writable for its length.
            let got = unsafe {
                libc::recv(
                    self.fd.get_ref().as_raw_fd(),
                    buf.as_mut_ptr().cast(),
                    buf.len(),
                    0,
                )
            };
            if got < 0 {
                let err = std::io::Error::last_os_error();
                if err.kind() == std::io::ErrorKind::WouldBlock {
                    guard.clear_ready();
                    continue;
                }
                // ENOBUFS: the kernel dropped messages; keep reading.
                if err.raw_os_error() == Some(libc::ENOBUFS) {
                    continue;
                }
                return Err(err.into());
            }
            return Ok(parse_messages(&buf[..got as usize]));
        }
    }
}

pub fn parse_messages(mut buf: &[u8]) -> Vec<Attempt> {
    let mut out = Vec::new();
    while buf.len() >= 16 {
        let len = u32::from_ne_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
        if len < 16 || len > buf.len() {
            break;
        }
        let kind = u16::from_ne_bytes([buf[4], buf[5]]);
        if kind == (NFNL_SUBSYS_ULOG << 8 | NFULNL_MSG_PACKET) && len >= 20 {
            let mut attrs = &buf[20..len];
            while attrs.len() >= 4 {
                let alen = u16::from_ne_bytes([attrs[0], attrs[1]]) as usize;
                let akind = u16::from_ne_bytes([attrs[2], attrs[3]]) & 0x3fff;
                if alen < 4 || alen > attrs.len() {
                    break;
                }
                if akind == NFULA_PAYLOAD
                    && let Some(a) = parse_packet(&attrs[4..alen])
                {
                    out.push(a);
                }
                attrs = &attrs[((alen + 3) & !3).min(attrs.len())..];
            }
        }
        buf = &buf[((len + 3) & !3).min(buf.len())..];
    }
    out
}

/// Destination and protocol from an IPv4 or IPv6 packet's headers.
pub fn parse_packet(p: &[u8]) -> Option<Attempt> {
    let version = p.first()? >> 4;
    let (dest, proto, transport) = match version {
        4 => {
            let ihl = ((p[0] & 0x0f) as usize) * 4;
            let dest: [u8; 4] = p.get(16..20)?.try_into().ok()?;
            (IpAddr::from(dest), *p.get(9)?, p.get(ihl..)?)
        }
        6 => {
            let dest: [u8; 16] = p.get(24..40)?.try_into().ok()?;
            (IpAddr::from(dest), *p.get(6)?, p.get(40..)?)
        }
        _ => return None,
    };
    let port = match proto {
        6 | 17 => u16::from_be_bytes([*transport.get(2)?, *transport.get(3)?]),
        _ => 0,
    };
    Some(Attempt { dest, port, proto })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_destination_from_ip_headers() {
        let mut v4 = vec![
            0x45, 0, 0, 40, 0, 0, 0, 0, 64, 6, 0, 0, 10, 0, 0, 2, 1, 2, 3, 4,
        ];
        v4.extend_from_slice(&[0x9c, 0x40, 0x01, 0xbb]);
        assert_eq!(
            parse_packet(&v4),
            Some(Attempt {
                dest: "1.2.3.4".parse().unwrap(),
                port: 443,
                proto: 6
            })
        );
        let mut v6 = vec![0x60, 0, 0, 0, 0, 8, 17, 64];
        v6.extend_from_slice(&[0; 16]);
        v6.extend_from_slice(
            &"2001:db8::1"
                .parse::<std::net::Ipv6Addr>()
                .unwrap()
                .octets(),
        );
        v6.extend_from_slice(&[0x9c, 0x40, 0, 53]);
        assert_eq!(parse_packet(&v6).map(|a| (a.port, a.proto)), Some((53, 17)));
        assert_eq!(parse_packet(&[0x45, 0, 0]), None);
    }
}
