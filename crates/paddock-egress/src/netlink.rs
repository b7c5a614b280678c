//! Netfilter's netlink socket, shared by the nftables writer (`nft`) and
//! the NFLOG reader (`nflog`): message framing, a request/acknowledgement
//! exchange, and entering a box's network namespace to open one.
//!
//! Only paddock writes these messages and only the kernel answers them;
//! nothing a box sends is parsed here (the packets NFLOG copies are read
//! by `nflog::parse_packet`).

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use crate::EgressError;

pub(crate) const NETLINK_NETFILTER: libc::c_int = 12;
const NLMSG_ERROR: u16 = 2;
pub(crate) const NLM_F_REQUEST: u16 = 0x1;
pub(crate) const NLM_F_ACK: u16 = 0x4;
const NLA_F_NESTED: u16 = 0x8000;
/// How long the kernel may take to answer before the exchange fails; it
/// answers in microseconds, so this only bounds a kernel that never does.
const ANSWER_TIMEOUT_SECS: libc::time_t = 5;

/// One netfilter message: the netlink header, the netfilter generic header
/// (family, version, resource id) and attributes. Lengths are filled in as
/// attributes are added, so a message is always well-formed.
pub(crate) struct Message {
    buf: Vec<u8>,
    nests: Vec<usize>,
}

impl Message {
    /// `kind` is `subsystem << 8 | message`; `res_id` is big-endian on the
    /// wire (a group for NFLOG, the subsystem for a batch's bounds).
    pub(crate) fn new(kind: u16, flags: u16, family: u8, res_id: u16) -> Self {
        let mut buf = Vec::with_capacity(256);
        buf.extend_from_slice(&0u32.to_ne_bytes()); // length, set by finish
        buf.extend_from_slice(&kind.to_ne_bytes());
        buf.extend_from_slice(&(flags | NLM_F_REQUEST).to_ne_bytes());
        buf.extend_from_slice(&0u32.to_ne_bytes()); // sequence, set on send
        buf.extend_from_slice(&0u32.to_ne_bytes()); // port: the kernel's
        buf.push(family);
        buf.push(0); // NFNETLINK_V0
        buf.extend_from_slice(&res_id.to_be_bytes());
        Self {
            buf,
            nests: Vec::new(),
        }
    }

    pub(crate) fn bytes(&mut self, kind: u16, payload: &[u8]) -> &mut Self {
        let len = 4 + payload.len();
        self.buf.extend_from_slice(&(len as u16).to_ne_bytes());
        self.buf.extend_from_slice(&kind.to_ne_bytes());
        self.buf.extend_from_slice(payload);
        self.pad();
        self
    }

    /// A NUL-terminated string, as the kernel's string attributes expect.
    pub(crate) fn string(&mut self, kind: u16, value: &str) -> &mut Self {
        let mut payload = Vec::with_capacity(value.len() + 1);
        payload.extend_from_slice(value.as_bytes());
        payload.push(0);
        self.bytes(kind, &payload)
    }

    pub(crate) fn u8(&mut self, kind: u16, value: u8) -> &mut Self {
        self.bytes(kind, &[value])
    }

    pub(crate) fn u16_be(&mut self, kind: u16, value: u16) -> &mut Self {
        self.bytes(kind, &value.to_be_bytes())
    }

    pub(crate) fn u32_be(&mut self, kind: u16, value: u32) -> &mut Self {
        self.bytes(kind, &value.to_be_bytes())
    }

    pub(crate) fn u64_be(&mut self, kind: u16, value: u64) -> &mut Self {
        self.bytes(kind, &value.to_be_bytes())
    }

    /// Opens a nested attribute; everything added until `end` is inside it.
    pub(crate) fn begin(&mut self, kind: u16) -> &mut Self {
        self.nests.push(self.buf.len());
        self.buf.extend_from_slice(&0u16.to_ne_bytes());
        self.buf
            .extend_from_slice(&(kind | NLA_F_NESTED).to_ne_bytes());
        self
    }

    pub(crate) fn end(&mut self) -> &mut Self {
        if let Some(start) = self.nests.pop() {
            let len = (self.buf.len() - start) as u16;
            self.buf[start..start + 2].copy_from_slice(&len.to_ne_bytes());
        }
        self
    }

    fn pad(&mut self) {
        let padded = (self.buf.len() + 3) & !3;
        self.buf.resize(padded, 0);
    }

    /// The wire form with `seq`; an unclosed nest is closed here.
    pub(crate) fn finish(mut self, seq: u32) -> Vec<u8> {
        while !self.nests.is_empty() {
            self.end();
        }
        let len = self.buf.len() as u32;
        self.buf[0..4].copy_from_slice(&len.to_ne_bytes());
        self.buf[8..12].copy_from_slice(&seq.to_ne_bytes());
        self.buf
    }

    fn wants_ack(&self) -> bool {
        u16::from_ne_bytes([self.buf[6], self.buf[7]]) & NLM_F_ACK != 0
    }
}

/// The kernel refused a message of an exchange with `errno`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Refusal {
    pub errno: i32,
}

impl Refusal {
    pub(crate) fn io(&self) -> std::io::Error {
        std::io::Error::from_raw_os_error(self.errno)
    }
}

/// A netfilter netlink socket, blocking, with a bounded wait for answers.
pub(crate) struct Netfilter {
    fd: OwnedFd,
    next_seq: u32,
}

pub(crate) fn os_error(what: &str) -> EgressError {
    EgressError::Firewall(format!("{what}: {}", std::io::Error::last_os_error()))
}

impl Netfilter {
    /// A socket in the calling thread's network namespace.
    pub(crate) fn open() -> Result<Self, EgressError> {
        // SAFETY: plain socket(2); the result is checked and owned at once.
        let raw = unsafe {
            libc::socket(
                libc::AF_NETLINK,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                NETLINK_NETFILTER,
            )
        };
        if raw < 0 {
            return Err(os_error("netlink: socket"));
        }
        // SAFETY: raw is a fresh descriptor we own.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let timeout = libc::timeval {
            tv_sec: ANSWER_TIMEOUT_SECS,
            tv_usec: 0,
        };
        // SAFETY: setsockopt with a timeval that outlives the call.
        let set = unsafe {
            libc::setsockopt(
                fd.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVTIMEO,
                (&raw const timeout).cast(),
                std::mem::size_of::<libc::timeval>() as libc::socklen_t,
            )
        };
        if set != 0 {
            return Err(os_error("netlink: receive timeout"));
        }
        Ok(Self { fd, next_seq: 1 })
    }

    pub(crate) fn into_fd(self) -> OwnedFd {
        self.fd
    }

    /// Sends `messages` in one datagram (a batch is one transaction only if
    /// it arrives whole) and waits for the answer of every one that asked
    /// for an acknowledgement; the first refusal is returned. (A `GET`'s
    /// answer is not kept: paddock only asks whether an object exists.)
    pub(crate) fn exchange(
        &mut self,
        messages: Vec<Message>,
    ) -> Result<Result<(), Refusal>, EgressError> {
        let first_seq = self.next_seq;
        self.next_seq = first_seq.wrapping_add(messages.len() as u32);
        let mut waiting = Vec::new();
        let mut wire = Vec::new();
        for (index, message) in messages.into_iter().enumerate() {
            let seq = first_seq.wrapping_add(index as u32);
            if message.wants_ack() {
                waiting.push(seq);
            }
            wire.extend(message.finish(seq));
        }
        self.send(&wire)?;
        let mut buf = vec![0u8; 64 * 1024];
        while !waiting.is_empty() {
            let got = self.recv(&mut buf)?;
            for (kind, seq, body) in split(&buf[..got]) {
                if kind != NLMSG_ERROR {
                    continue;
                }
                let errno = body
                    .get(..4)
                    .map(|b| i32::from_ne_bytes([b[0], b[1], b[2], b[3]]))
                    .unwrap_or(-libc::EPROTO);
                waiting.retain(|s| *s != seq);
                // A refusal counts whichever message it names: without
                // CAP_NET_ADMIN the kernel refuses a batch's opening
                // message, which asked for no acknowledgement.
                if errno != 0 {
                    return Ok(Err(Refusal { errno: -errno }));
                }
            }
        }
        Ok(Ok(()))
    }

    fn send(&self, wire: &[u8]) -> Result<(), EgressError> {
        // SAFETY: fd is a valid socket; wire outlives the call.
        let sent = unsafe { libc::send(self.fd.as_raw_fd(), wire.as_ptr().cast(), wire.len(), 0) };
        if sent < 0 || sent as usize != wire.len() {
            return Err(os_error("netlink: send"));
        }
        Ok(())
    }

    fn recv(&self, buf: &mut [u8]) -> Result<usize, EgressError> {
        // SAFETY: buf is writable for its length.
        let got = unsafe { libc::recv(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
        if got < 0 {
            let err = std::io::Error::last_os_error();
            return Err(EgressError::Firewall(
                if err.kind() == std::io::ErrorKind::WouldBlock {
                    format!("netlink: the kernel did not answer within {ANSWER_TIMEOUT_SECS} s")
                } else {
                    format!("netlink: receive: {err}")
                },
            ));
        }
        Ok(got as usize)
    }
}

/// The messages in one datagram: (type, sequence, body after the header).
pub(crate) fn split(mut buf: &[u8]) -> Vec<(u16, u32, &[u8])> {
    let mut out = Vec::new();
    while buf.len() >= 16 {
        let len = u32::from_ne_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
        if len < 16 || len > buf.len() {
            break;
        }
        let kind = u16::from_ne_bytes([buf[4], buf[5]]);
        let seq = u32::from_ne_bytes([buf[8], buf[9], buf[10], buf[11]]);
        out.push((kind, seq, &buf[16..len]));
        buf = &buf[((len + 3) & !3).min(buf.len())..];
    }
    out
}

/// Runs `work` on a thread of its own inside the network namespace of
/// `pid`. setns changes only the calling thread, and this one ends right
/// after, namespace and all; a socket it opens stays bound there.
pub(crate) async fn in_namespace_of<T: Send + 'static>(
    pid: u32,
    work: impl FnOnce() -> Result<T, EgressError> + Send + 'static,
) -> Result<T, EgressError> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("paddock-netns".into())
        .spawn(move || {
            let entered = std::fs::File::open(format!("/proc/{pid}/ns/net"))
                .map_err(|e| match e.kind() {
                    std::io::ErrorKind::NotFound => EgressError::BoxExited,
                    _ => EgressError::Firewall(format!(
                        "cannot open the box's network namespace: {e}"
                    )),
                })
                .and_then(|ns| {
                    // SAFETY: setns on a namespace descriptor we hold open.
                    if unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                        return Err(os_error(
                            "cannot enter the box's network namespace (needs root or CAP_SYS_ADMIN)",
                        ));
                    }
                    Ok(())
                });
            let _ = tx.send(entered.and_then(|()| work()));
        })?;
    rx.await
        .map_err(|_| EgressError::Firewall("the namespace thread ended without an answer".into()))?
}

/// Runs blocking netlink `work` in paddock's own namespace, off the
/// async runtime's threads.
pub(crate) async fn here<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, EgressError> + Send + 'static,
) -> Result<T, EgressError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| EgressError::Firewall(format!("netlink: {e}")))?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nests_and_pads_attributes() {
        let mut m = Message::new(0x0a00, NLM_F_ACK, 1, 0);
        m.string(1, "abc").begin(2).u32_be(1, 7).end();
        let wire = m.finish(9);
        assert_eq!(wire.len() % 4, 0);
        assert_eq!(
            u32::from_ne_bytes(wire[0..4].try_into().unwrap()) as usize,
            wire.len()
        );
        assert_eq!(u32::from_ne_bytes(wire[8..12].try_into().unwrap()), 9);
        // "abc\0" fills its four bytes exactly: the nest follows at 20 + 8.
        assert_eq!(&wire[24..28], b"abc\0");
        let nest_len = u16::from_ne_bytes([wire[28], wire[29]]);
        assert_eq!(nest_len, 4 + 8);
        assert_eq!(u16::from_ne_bytes([wire[30], wire[31]]), 2 | NLA_F_NESTED);
        assert_eq!(&wire[36..40], &7u32.to_be_bytes());
    }

    #[test]
    fn splits_a_datagram_and_stops_at_a_bad_length() {
        let mut one = Message::new(2, 0, 0, 0).finish(5);
        one.extend(Message::new(3, 0, 0, 0).finish(6));
        one.extend_from_slice(&[0xff; 16]);
        let parts = split(&one);
        assert_eq!(
            parts.iter().map(|(k, s, _)| (*k, *s)).collect::<Vec<_>>(),
            vec![(2, 5), (3, 6)]
        );
    }
}
