//! The DNS responder a box's resolver forwards to: it answers only names
//! the box's rules allow, with addresses that pass the same checks as the
//! proxy's, and refuses (and reports) every other query.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::UdpSocket;
use tokio_util::sync::CancellationToken;

use crate::gateway::{BoxIdentity, Dest, Egress, NameClearance, address_verdict, clear_name};
use crate::policy::normalise_name;
use crate::shield::Shield;

const TYPE_A: u16 = 1;
const RCODE_FORMERR: u8 = 1;
const RCODE_REFUSED: u8 = 5;
const ANSWER_TTL: u32 = 30;

#[derive(Debug, PartialEq, Eq)]
pub struct Query<'a> {
    pub id: u16,
    pub recursion_desired: bool,
    pub name: String,
    pub qtype: u16,
    /// The question section as received, echoed in the answer.
    pub question: &'a [u8],
}

/// Parses a standard query with one question; anything else is `None`.
pub fn parse_query(packet: &[u8]) -> Option<Query<'_>> {
    if packet.len() < 12 {
        return None;
    }
    let id = u16::from_be_bytes([packet[0], packet[1]]);
    let flags = u16::from_be_bytes([packet[2], packet[3]]);
    let qdcount = u16::from_be_bytes([packet[4], packet[5]]);
    let is_query = flags & 0x8000 == 0 && (flags >> 11) & 0xf == 0;
    if !is_query || qdcount != 1 {
        return None;
    }
    let mut pos = 12;
    let mut labels = Vec::new();
    loop {
        let len = *packet.get(pos)? as usize;
        pos += 1;
        if len == 0 {
            break;
        }
        if len > 63 {
            return None; // compression pointers have no place in a question
        }
        let label = packet.get(pos..pos + len)?;
        labels.push(std::str::from_utf8(label).ok()?.to_owned());
        pos += len;
    }
    let qtype = u16::from_be_bytes([*packet.get(pos)?, *packet.get(pos + 1)?]);
    packet.get(pos + 2..pos + 4)?; // class
    let question = &packet[12..pos + 4];
    Some(Query {
        id,
        recursion_desired: flags & 0x0100 != 0,
        name: labels.join("."),
        qtype,
        question,
    })
}

pub fn answer(query: &Query<'_>, rcode: u8, addrs: &[std::net::Ipv4Addr]) -> Vec<u8> {
    let answers = if query.qtype == TYPE_A { addrs } else { &[] };
    let mut out = Vec::with_capacity(12 + query.question.len() + answers.len() * 16);
    out.extend_from_slice(&query.id.to_be_bytes());
    let flags: u16 =
        0x8000 | 0x0080 | if query.recursion_desired { 0x0100 } else { 0 } | rcode as u16;
    out.extend_from_slice(&flags.to_be_bytes());
    out.extend_from_slice(&1u16.to_be_bytes());
    out.extend_from_slice(&(answers.len() as u16).to_be_bytes());
    out.extend_from_slice(&[0, 0, 0, 0]);
    out.extend_from_slice(query.question);
    for addr in answers {
        out.extend_from_slice(&[0xc0, 12]); // the name in the question
        out.extend_from_slice(&TYPE_A.to_be_bytes());
        out.extend_from_slice(&1u16.to_be_bytes());
        out.extend_from_slice(&ANSWER_TTL.to_be_bytes());
        out.extend_from_slice(&4u16.to_be_bytes());
        out.extend_from_slice(&addr.octets());
    }
    out
}

impl Egress {
    /// The IPv4 addresses a box may learn for `name`, or why not.
    pub async fn resolve_for_box(
        &self,
        who: &BoxIdentity,
        name: &str,
    ) -> Result<Vec<std::net::Ipv4Addr>, String> {
        if let Some(why) = self.audit_failure() {
            return Err(format!("paddock cannot record decisions right now ({why})"));
        }
        let policy = self.policy_of(who);
        let shield = policy.shield;
        if shield == Shield::Block {
            return Err("the box's shield blocks all egress".into());
        }
        let set = policy.rules(who);
        match clear_name(set.for_name_any_port(name), &shield) {
            NameClearance::Cleared { .. } => {}
            NameClearance::Denied(_) | NameClearance::Undecided => {
                return Err(format!("{name} is not an allowed name"));
            }
        }
        let ips = self.resolve_name(name).await?;
        Ok(ips
            .into_iter()
            .filter(|ip| {
                let rule = set
                    .for_address(*ip, 0)
                    .or_else(|| set.for_address_any_port(*ip));
                address_verdict(rule, *ip).is_ok()
            })
            .filter_map(|ip| match ip {
                IpAddr::V4(v4) => Some(v4),
                IpAddr::V6(_) => None,
            })
            .collect())
    }
}

/// Serves one box network's responder until `stop`.
pub async fn serve(
    egress: Arc<Egress>,
    socket: UdpSocket,
    network_id: String,
    stop: CancellationToken,
) {
    let socket = Arc::new(socket);
    let mut buf = vec![0u8; 1500];
    loop {
        let (len, peer) = tokio::select! {
            _ = stop.cancelled() => return,
            got = socket.recv_from(&mut buf) => match got {
                Ok(g) => g,
                Err(e) => {
                    tracing::debug!(error = %e, "dns receive failed");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            },
        };
        let packet = buf[..len].to_vec();
        let egress = egress.clone();
        let socket = socket.clone();
        let network_id = network_id.clone();
        tokio::spawn(async move {
            if let Some(reply) = respond(&egress, &network_id, &packet).await {
                let _ = socket.send_to(&reply, peer).await;
            }
        });
    }
}

async fn respond(egress: &Egress, network_id: &str, packet: &[u8]) -> Option<Vec<u8>> {
    let who = egress.identify(network_id)?;
    let Some(query) = parse_query(packet) else {
        // A header we can read gets FORMERR; noise gets nothing. Either is
        // a refusal, and on the record.
        let formerr = packet.len() >= 12 && packet[2] & 0x80 == 0;
        let reason = if formerr {
            "not a standard query with one question (answered FORMERR)"
        } else {
            "not a DNS query (not answered)"
        };
        egress.record_malformed(
            &who,
            "",
            ("dns", 17),
            &format!("{reason}, {} bytes", packet.len()),
        );
        if formerr {
            let mut reply = packet[..12].to_vec();
            reply[2] |= 0x80;
            reply[3] = (reply[3] & 0xf0) | RCODE_FORMERR;
            reply[4..12].fill(0);
            return Some(reply);
        }
        return None;
    };
    let refuse = |reason: &str| {
        let dest = Dest::dns(&query.name);
        egress.refuse(
            &who,
            dest,
            crate::audit::AuditDecision::DnsRefused,
            "dns",
            &format!("dns: {reason}"),
        );
        Some(answer(&query, RCODE_REFUSED, &[]))
    };
    let Some(name) = normalise_name(&query.name) else {
        return refuse("not a valid name");
    };
    match egress.resolve_for_box(&who, &name).await {
        Ok(addrs) => Some(answer(&query, 0, &addrs)),
        Err(reason) => refuse(&reason),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(name: &str, qtype: u16) -> Vec<u8> {
        let mut q = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
        for label in name.split('.') {
            q.push(label.len() as u8);
            q.extend_from_slice(label.as_bytes());
        }
        q.push(0);
        q.extend_from_slice(&qtype.to_be_bytes());
        q.extend_from_slice(&1u16.to_be_bytes());
        q
    }

    #[test]
    fn parses_and_answers_a_query() {
        let packet = query("Example.com", TYPE_A);
        let q = parse_query(&packet).unwrap();
        assert_eq!(
            (q.id, q.name.as_str(), q.qtype),
            (0x1234, "Example.com", TYPE_A)
        );
        let a = answer(&q, 0, &["1.2.3.4".parse().unwrap()]);
        assert_eq!(&a[..2], &[0x12, 0x34]);
        assert_eq!(a[3] & 0x0f, 0);
        assert_eq!(u16::from_be_bytes([a[6], a[7]]), 1, "one answer");
        assert_eq!(&a[a.len() - 4..], &[1, 2, 3, 4]);
        let refused = answer(&q, RCODE_REFUSED, &[]);
        assert_eq!(refused[3] & 0x0f, RCODE_REFUSED);
    }

    #[test]
    fn ignores_malformed_packets() {
        assert!(parse_query(&[1, 2, 3]).is_none());
        let mut truncated = query("example.com", TYPE_A);
        truncated.truncate(truncated.len() - 3);
        assert!(parse_query(&truncated).is_none());
        let mut pointer = query("example.com", TYPE_A);
        pointer[12] = 0xc0;
        assert!(parse_query(&pointer).is_none());
    }
}
