//! Reading NFLOG inside a box's network namespace. nfnetlink_log is
//! per namespace, so the socket is made by a thread that has entered the
//! box's namespace; the socket stays bound there after the thread leaves.
//! Each logged packet's header says where the box tried to go: the one
//! thing here a box's own bytes reach, read with bounds checked.

use std::net::IpAddr;
use std::os::fd::{AsRawFd, OwnedFd};

use tokio::io::unix::AsyncFd;

use crate::EgressError;
use crate::netlink::{Message, NLM_F_ACK, Netfilter, here, in_namespace_of, split};

const NFNL_SUBSYS_ULOG: u16 = 4;
const NFULNL_MSG_PACKET: u16 = 0;
const NFULNL_MSG_CONFIG: u16 = 1;
const NFULA_CFG_CMD: u16 = 1;
const NFULA_CFG_MODE: u16 = 2;
const NFULA_CFG_QTHRESH: u16 = 5;
const NFULNL_CFG_CMD_BIND: u8 = 1;
const NFULNL_COPY_PACKET: u8 = 2;
const NFULA_IFINDEX_INDEV: u16 = 4;
const NFULA_PAYLOAD: u16 = 9;
/// Enough of each packet for its IP and transport headers.
const COPY_RANGE: u32 = 96;

/// A raw attempt, as far as its headers tell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    pub dest: IpAddr,
    pub port: u16,
    pub proto: u8,
    /// The interface the packet came in on (in the host's namespace, a
    /// box network's bridge), when the kernel said.
    pub indev: Option<u32>,
}

pub struct NflogSocket {
    fd: AsyncFd<OwnedFd>,
}

fn config(group: u16) -> Message {
    Message::new(
        NFNL_SUBSYS_ULOG << 8 | NFULNL_MSG_CONFIG,
        NLM_F_ACK,
        libc::AF_UNSPEC as u8,
        group,
    )
}

/// Binds `group` on a socket in the calling thread's namespace.
fn open_here(group: u16) -> Result<OwnedFd, EgressError> {
    let mut socket = Netfilter::open()?;
    let mut bind = config(group);
    bind.bytes(NFULA_CFG_CMD, &[NFULNL_CFG_CMD_BIND]);
    let mut mode = config(group);
    let mut range = COPY_RANGE.to_be_bytes().to_vec();
    range.extend_from_slice(&[NFULNL_COPY_PACKET, 0]);
    mode.bytes(NFULA_CFG_MODE, &range);
    // Deliver each packet at once; the kernel's default batches for a
    // second, far too late for a person watching.
    let mut at_once = config(group);
    at_once.u32_be(NFULA_CFG_QTHRESH, 1);
    socket
        .exchange(vec![bind, mode, at_once])?
        .map_err(|refused| {
            EgressError::Firewall(format!(
                "nflog: the kernel refused the group: {}",
                refused.io()
            ))
        })?;
    let fd = socket.into_fd();
    // SAFETY: fcntl on our own descriptor.
    unsafe {
        let flags = libc::fcntl(fd.as_raw_fd(), libc::F_GETFL);
        libc::fcntl(fd.as_raw_fd(), libc::F_SETFL, flags | libc::O_NONBLOCK);
    }
    Ok(fd)
}

impl NflogSocket {
    /// Binds `group` inside the network namespace of `pid`: nfnetlink_log
    /// is per namespace, and the socket stays bound there.
    pub async fn open_in(pid: u32, group: u16) -> Result<Self, EgressError> {
        let fd = in_namespace_of(pid, move || open_here(group)).await?;
        Self::watch(fd)
    }

    /// Binds the first group from `first` on that no other socket of the
    /// host's namespace holds (another paddock on this machine may hold
    /// one), trying `tries` groups; returns the socket and its group.
    pub async fn open_on_host(first: u16, tries: u16) -> Result<(Self, u16), EgressError> {
        let (fd, group) = here(move || {
            let mut last = None;
            for group in (0..tries).filter_map(|i| first.checked_add(i)) {
                match open_here(group) {
                    Ok(fd) => return Ok((fd, group)),
                    Err(e) => last = Some(e),
                }
            }
            Err(last.unwrap_or_else(|| {
                EgressError::Firewall("nflog: no group to try on the host".into())
            }))
        })
        .await?;
        Ok((Self::watch(fd)?, group))
    }

    fn watch(fd: OwnedFd) -> Result<Self, EgressError> {
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

/// Hands every attempt `socket` reads to `on`, until `stop` or a read
/// error (logged, naming `whose`).
pub async fn relay_attempts(
    socket: NflogSocket,
    stop: tokio_util::sync::CancellationToken,
    whose: &str,
    mut on: impl FnMut(Attempt),
) {
    loop {
        let attempts = tokio::select! {
            _ = stop.cancelled() => return,
            got = socket.next() => match got {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(error = %e, whose, "stopped reading blocked attempts");
                    return;
                }
            },
        };
        attempts.into_iter().for_each(&mut on);
    }
}

pub fn parse_messages(buf: &[u8]) -> Vec<Attempt> {
    let mut out = Vec::new();
    for (kind, _, body) in split(buf) {
        // After the netfilter header (4 bytes): the packet's attributes.
        let Some(mut attrs) = body.get(4..) else {
            continue;
        };
        if kind != (NFNL_SUBSYS_ULOG << 8 | NFULNL_MSG_PACKET) {
            continue;
        }
        let mut indev = None;
        while attrs.len() >= 4 {
            let alen = u16::from_ne_bytes([attrs[0], attrs[1]]) as usize;
            let akind = u16::from_ne_bytes([attrs[2], attrs[3]]) & 0x3fff;
            if alen < 4 || alen > attrs.len() {
                break;
            }
            let value = &attrs[4..alen];
            if akind == NFULA_IFINDEX_INDEV
                && let Ok(index) = <[u8; 4]>::try_from(value)
            {
                indev = Some(u32::from_be_bytes(index));
            }
            if akind == NFULA_PAYLOAD
                && let Some(a) = parse_packet(value)
            {
                // The kernel sends the interfaces before the payload.
                out.push(Attempt { indev, ..a });
            }
            attrs = &attrs[((alen + 3) & !3).min(attrs.len())..];
        }
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
    Some(Attempt {
        dest,
        port,
        proto,
        indev: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_every_logged_packet_of_a_datagram_and_nothing_else() {
        let mut v4 = vec![
            0x45, 0, 0, 40, 0, 0, 0, 0, 64, 6, 0, 0, 10, 0, 0, 2, 1, 2, 3, 4,
        ];
        v4.extend_from_slice(&[0x9c, 0x40, 0x01, 0xbb]);
        let packet = |port: u8| {
            let mut p = v4.clone();
            p[22] = 0;
            p[23] = port;
            let mut m = Message::new(NFNL_SUBSYS_ULOG << 8 | NFULNL_MSG_PACKET, 0, 2, 7);
            m.bytes(NFULA_IFINDEX_INDEV, &u32::from(port).to_be_bytes());
            m.bytes(NFULA_PAYLOAD, &p);
            m.finish(1)
        };
        let mut datagram = packet(80);
        // A message of another kind between them is skipped.
        datagram.extend(Message::new(NFNL_SUBSYS_ULOG << 8 | NFULNL_MSG_CONFIG, 0, 2, 7).finish(2));
        datagram.extend(packet(22));
        // A truncated tail is not read past.
        datagram.extend_from_slice(&[0xff; 10]);
        let read: Vec<(u16, Option<u32>)> = parse_messages(&datagram)
            .iter()
            .map(|a| (a.port, a.indev))
            .collect();
        assert_eq!(read, vec![(80, Some(80)), (22, Some(22))]);
    }

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
                proto: 6,
                indev: None,
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
