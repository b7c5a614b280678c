//! The DNS responder a box's resolver forwards to: it answers only names
//! the box's rules allow, with addresses that pass the same checks as the
//! proxy's, and refuses (and reports) every other query.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use hickory_proto::op::{Edns, Message, MessageType, Metadata, OpCode, ResponseCode};
use hickory_proto::rr::rdata::A;
use hickory_proto::rr::{RData, Record, RecordType};
use std::time::Duration;

use tokio::net::UdpSocket;
use tokio_util::sync::CancellationToken;

use crate::gateway::{BoxIdentity, Dest, Egress, NameClearance, address_verdict, clear_name};
use crate::policy::normalise_name;
use crate::shield::Shield;

const ANSWER_TTL: u32 = 30;

/// A standard query with one question, as the box sent it.
#[derive(Debug, Clone)]
pub struct Query {
    /// The name asked for, without the root's dot, as ASCII (labels that
    /// are not letters, digits and hyphens come escaped, and are then no
    /// valid name).
    pub name: String,
    pub record_type: RecordType,
    request: Message,
}

/// Parses a standard query with one question; anything else is `None`.
/// The parsing is hickory-proto's: a box reaches this with any bytes it
/// likes, and the field's hardened codec is the one to meet them.
pub fn parse_query(packet: &[u8]) -> Option<Query> {
    let request = Message::from_vec(packet).ok()?;
    let header = &request.metadata;
    if header.message_type != MessageType::Query
        || header.op_code != OpCode::Query
        || request.queries.len() != 1
    {
        return None;
    }
    let question = &request.queries[0];
    let name = question.name.to_ascii();
    Some(Query {
        name: name.strip_suffix('.').unwrap_or(&name).to_owned(),
        record_type: question.query_type,
        request,
    })
}

/// The answer to `query`: `response_code`, and for an `A` question the
/// addresses as its records (other types get none: the box connects
/// through the proxy over IPv4).
pub fn answer(query: &Query, response_code: ResponseCode, addrs: &[Ipv4Addr]) -> Vec<u8> {
    let request = &query.request;
    let mut response = Message::response(request.metadata.id, OpCode::Query);
    response.metadata = Metadata::response_from_request(&request.metadata);
    response.metadata.recursion_available = true;
    response.metadata.response_code = response_code;
    response.add_queries(request.queries.iter().cloned());
    if query.record_type == RecordType::A && response_code == ResponseCode::NoError {
        let name = request.queries[0].name.clone();
        response.add_answers(
            addrs
                .iter()
                .map(|ip| Record::from_rdata(name.clone(), ANSWER_TTL, RData::A(A(*ip)))),
        );
    }
    // A query that speaks EDNS gets an answer that does (RFC 6891 6.1.1).
    if request.edns.is_some() {
        response.set_edns(Edns::new());
    }
    response.to_vec().unwrap_or_else(|_| {
        Message::error_msg(request.metadata.id, OpCode::Query, ResponseCode::ServFail)
            .to_vec()
            .unwrap_or_default()
    })
}

/// FORMERR for a message whose header can be read but which is no
/// standard query with one question; `None` for noise (no header, or a
/// response rather than a query).
pub(crate) fn format_error(packet: &[u8]) -> Option<Vec<u8>> {
    if packet.len() < 12 || packet[2] & 0x80 != 0 {
        return None;
    }
    let id = u16::from_be_bytes([packet[0], packet[1]]);
    Message::error_msg(id, OpCode::Query, ResponseCode::FormErr)
        .to_vec()
        .ok()
}

impl Egress {
    /// The IPv4 addresses a box may learn for `name`, or why not.
    pub async fn resolve_for_box(
        &self,
        who: &BoxIdentity,
        name: &str,
    ) -> Result<Vec<Ipv4Addr>, String> {
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
        let reply = format_error(packet);
        let reason = if reply.is_some() {
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
        return reply;
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
        Some(answer(&query, ResponseCode::Refused, &[]))
    };
    let Some(name) = normalise_name(&query.name) else {
        return refuse("not a valid name");
    };
    match egress.resolve_for_box(&who, &name).await {
        Ok(addrs) => Some(answer(&query, ResponseCode::NoError, &addrs)),
        Err(reason) => refuse(&reason),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A query as a stub resolver sends it, built by hickory-proto.
    fn query(name: &str, record_type: RecordType, edns: bool) -> Vec<u8> {
        let mut m = Message::new(0x1234, MessageType::Query, OpCode::Query);
        m.metadata.recursion_desired = true;
        m.add_query(hickory_proto::op::Query::query(
            name.parse().unwrap(),
            record_type,
        ));
        if edns {
            m.set_edns(Edns::new());
        }
        m.to_vec().unwrap()
    }

    #[test]
    fn parses_and_answers_a_query() {
        // Case does not matter to DNS; the name comes out in lower case.
        let packet = query("Example.com.", RecordType::A, false);
        let q = parse_query(&packet).unwrap();
        assert_eq!(
            (q.name.as_str(), q.record_type),
            ("example.com", RecordType::A)
        );
        let a = Message::from_vec(&answer(
            &q,
            ResponseCode::NoError,
            &[Ipv4Addr::new(1, 2, 3, 4)],
        ))
        .unwrap();
        assert_eq!(a.metadata.id, 0x1234);
        assert_eq!(a.metadata.message_type, MessageType::Response);
        assert!(a.metadata.recursion_desired, "RD is copied");
        assert_eq!(a.metadata.response_code, ResponseCode::NoError);
        assert_eq!(a.queries, Message::from_vec(&packet).unwrap().queries);
        assert_eq!(a.answers.len(), 1);
        assert_eq!(a.answers[0].data, RData::A(A::new(1, 2, 3, 4)));
        assert_eq!(a.answers[0].ttl, ANSWER_TTL);
        let refused =
            Message::from_vec(&answer(&q, ResponseCode::Refused, &[Ipv4Addr::LOCALHOST])).unwrap();
        assert_eq!(refused.metadata.response_code, ResponseCode::Refused);
        assert!(refused.answers.is_empty(), "a refusal carries no address");
    }

    #[test]
    fn other_types_get_no_addresses_and_edns_is_answered_in_kind() {
        let packet = query("example.com.", RecordType::AAAA, true);
        let q = parse_query(&packet).unwrap();
        let a =
            Message::from_vec(&answer(&q, ResponseCode::NoError, &[Ipv4Addr::LOCALHOST])).unwrap();
        assert!(a.answers.is_empty());
        assert!(a.edns.is_some(), "an EDNS query gets an OPT record back");
    }

    #[test]
    fn malformed_packets_are_format_errors_or_ignored() {
        assert!(parse_query(&[1, 2, 3]).is_none());
        assert!(format_error(&[1, 2, 3]).is_none(), "noise is not answered");
        let mut truncated = query("example.com.", RecordType::A, false);
        truncated.truncate(truncated.len() - 3);
        assert!(parse_query(&truncated).is_none());
        let formerr = Message::from_vec(&format_error(&truncated).unwrap()).unwrap();
        assert_eq!(formerr.metadata.response_code, ResponseCode::FormErr);
        assert_eq!(formerr.metadata.id, 0x1234);
        // A response is not a query, and is not answered either.
        let mut response = query("example.com.", RecordType::A, false);
        response[2] |= 0x80;
        assert!(parse_query(&response).is_none());
        assert!(format_error(&response).is_none());
        // Two questions are not one.
        let mut two = Message::new(7, MessageType::Query, OpCode::Query);
        for n in ["a.example.", "b.example."] {
            two.add_query(hickory_proto::op::Query::query(
                n.parse().unwrap(),
                RecordType::A,
            ));
        }
        assert!(parse_query(&two.to_vec().unwrap()).is_none());
        // A name of bytes that are no hostname comes through escaped, and
        // is then refused as no valid name.
        let mut odd = query("ab.example.", RecordType::A, false);
        odd[13] = b' ';
        let q = parse_query(&odd).unwrap();
        assert!(normalise_name(&q.name).is_none(), "{}", q.name);
    }
}
