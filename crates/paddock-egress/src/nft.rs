//! nf_tables messages written from the process, so guarding a box costs a
//! netlink exchange instead of spawning `nsenter` and `nft` (see
//! ARCHITECTURE.md for why this small writer and not a crate). Only the
//! handful of objects and expressions paddock uses are here; `nft list`
//! reads them back as the text rules they stand for (tested).

use std::net::Ipv4Addr;

use crate::netlink::{Message, NLM_F_ACK};

const NFNL_SUBSYS_NFTABLES: u16 = 10;
const NFNL_MSG_BATCH_BEGIN: u16 = 0x10;
const NFNL_MSG_BATCH_END: u16 = 0x11;
pub(crate) const NFPROTO_INET: u8 = 1;
const NFPROTO_IPV4: u8 = 2;

const NFT_MSG_NEWTABLE: u16 = 0;
const NFT_MSG_DELTABLE: u16 = 2;
const NFT_MSG_NEWCHAIN: u16 = 3;
const NFT_MSG_GETCHAIN: u16 = 4;
const NFT_MSG_NEWRULE: u16 = 6;
const NFT_MSG_NEWSETELEM: u16 = 12;
const NFT_MSG_DELSETELEM: u16 = 14;

const NLM_F_CREATE: u16 = 0x400;
const NLM_F_APPEND: u16 = 0x800;

const NFTA_LIST_ELEM: u16 = 1;
const NFTA_DATA_VALUE: u16 = 1;
const NFTA_DATA_VERDICT: u16 = 2;
const NFTA_VERDICT_CODE: u16 = 1;
const NF_DROP: u32 = 0;
const NF_ACCEPT: u32 = 1;
const NFT_REG_VERDICT: u32 = 0;
/// The first 16-byte data register; every comparison here fits in it.
const NFT_REG_1: u32 = 1;
/// The output hook, where a box's own packets are seen.
const NF_INET_LOCAL_OUT: u32 = 3;

const IPPROTO_TCP: u8 = 6;
const IPPROTO_UDP: u8 = 17;
const IFNAMSIZ: usize = 16;

/// One expression of a rule, as the kernel names and reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Expr {
    Meta(MetaKey),
    /// Loads `len` bytes at `offset` of the network (`transport = false`)
    /// or transport header.
    Payload {
        transport: bool,
        offset: u32,
        len: u32,
    },
    /// Connection-tracking state bits.
    CtState,
    /// `register = (register & mask) ^ 0` over four bytes.
    And(u32),
    Equals(Vec<u8>),
    NotEquals(Vec<u8>),
    Limit {
        per_second: u64,
        burst: u32,
    },
    Log {
        group: u16,
        prefix: &'static str,
    },
    Accept,
    RejectTcpReset,
    /// ICMP (or ICMPv6) port unreachable, whichever family the packet is.
    RejectPortUnreachable,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum MetaKey {
    OutInterfaceName = 7,
    NetworkFamily = 15,
    TransportProtocol = 16,
}

/// Connection-tracking state bits (`NF_CT_STATE_BIT`).
const CT_ESTABLISHED: u32 = 1 << 1;
const CT_RELATED: u32 = 1 << 2;

impl Expr {
    fn put(&self, m: &mut Message) {
        m.begin(NFTA_LIST_ELEM);
        match self {
            Expr::Meta(key) => {
                m.string(1, "meta").begin(2);
                m.u32_be(1, NFT_REG_1).u32_be(2, *key as u32);
            }
            Expr::Payload {
                transport,
                offset,
                len,
            } => {
                m.string(1, "payload").begin(2);
                m.u32_be(1, NFT_REG_1)
                    .u32_be(2, if *transport { 2 } else { 1 })
                    .u32_be(3, *offset)
                    .u32_be(4, *len);
            }
            Expr::CtState => {
                m.string(1, "ct").begin(2);
                m.u32_be(1, NFT_REG_1).u32_be(2, 0);
            }
            Expr::And(mask) => {
                m.string(1, "bitwise").begin(2);
                m.u32_be(1, NFT_REG_1).u32_be(2, NFT_REG_1).u32_be(3, 4);
                m.begin(4).bytes(NFTA_DATA_VALUE, &mask.to_ne_bytes()).end();
                m.begin(5).bytes(NFTA_DATA_VALUE, &[0; 4]).end();
            }
            Expr::Equals(value) | Expr::NotEquals(value) => {
                let op = u32::from(matches!(self, Expr::NotEquals(_)));
                m.string(1, "cmp").begin(2);
                m.u32_be(1, NFT_REG_1).u32_be(2, op);
                m.begin(3).bytes(NFTA_DATA_VALUE, value).end();
            }
            Expr::Limit { per_second, burst } => {
                m.string(1, "limit").begin(2);
                m.u64_be(1, *per_second)
                    .u64_be(2, 1)
                    .u32_be(3, *burst)
                    .u32_be(4, 0) // packets, not bytes
                    .u32_be(5, 0);
            }
            Expr::Log { group, prefix } => {
                m.string(1, "log").begin(2);
                m.u16_be(1, *group).string(2, prefix);
            }
            Expr::Accept => {
                m.string(1, "immediate").begin(2);
                m.u32_be(1, NFT_REG_VERDICT);
                m.begin(2).begin(NFTA_DATA_VERDICT);
                m.u32_be(NFTA_VERDICT_CODE, NF_ACCEPT);
                m.end().end();
            }
            Expr::RejectTcpReset => {
                m.string(1, "reject").begin(2);
                m.u32_be(1, 1);
            }
            Expr::RejectPortUnreachable => {
                m.string(1, "reject").begin(2);
                m.u32_be(1, 2).u8(2, 1);
            }
        }
        m.end().end();
    }
}

fn message(kind: u16, flags: u16) -> Message {
    Message::new(
        NFNL_SUBSYS_NFTABLES << 8 | kind,
        flags | NLM_F_ACK,
        NFPROTO_INET,
        0,
    )
}

/// Wraps `messages` in a batch: the kernel applies all of them or none.
fn batch(messages: Vec<Message>) -> Vec<Message> {
    let bound = |kind| Message::new(kind, 0, 0, NFNL_SUBSYS_NFTABLES);
    let mut out = Vec::with_capacity(messages.len() + 2);
    out.push(bound(NFNL_MSG_BATCH_BEGIN));
    out.extend(messages);
    out.push(bound(NFNL_MSG_BATCH_END));
    out
}

fn table(kind: u16, name: &str) -> Message {
    let mut m = message(
        kind,
        if kind == NFT_MSG_NEWTABLE {
            NLM_F_CREATE
        } else {
            0
        },
    );
    m.string(1, name);
    m
}

fn rule(table: &str, chain: &str, exprs: &[Expr]) -> Message {
    let mut m = message(NFT_MSG_NEWRULE, NLM_F_CREATE | NLM_F_APPEND);
    m.string(1, table).string(2, chain).begin(4);
    for e in exprs {
        e.put(&mut m);
    }
    m.end();
    m
}

fn ifname(name: &str) -> Vec<u8> {
    let mut key = name.as_bytes().to_vec();
    key.resize(IFNAMSIZ, 0);
    key
}

/// `ip daddr <gateway> <proto> dport <port>`, with the family and
/// protocol checks nft itself puts before a header field.
fn to_listener(gateway: Ipv4Addr, proto: u8, port: u16) -> Vec<Expr> {
    vec![
        Expr::Meta(MetaKey::NetworkFamily),
        Expr::Equals(vec![NFPROTO_IPV4]),
        Expr::Payload {
            transport: false,
            offset: 16,
            len: 4,
        },
        Expr::Equals(gateway.octets().to_vec()),
        Expr::Meta(MetaKey::TransportProtocol),
        Expr::Equals(vec![proto]),
        Expr::Payload {
            transport: true,
            offset: 2,
            len: 2,
        },
        Expr::Equals(port.to_be_bytes().to_vec()),
        Expr::Accept,
    ]
}

/// The rules of a box's output chain, in order.
pub(crate) fn box_rules(gateway: Ipv4Addr, tcp_ports: &[u16], group: u16) -> Vec<Vec<Expr>> {
    let mut rules = vec![
        vec![
            Expr::Meta(MetaKey::OutInterfaceName),
            Expr::Equals(ifname("lo")),
            Expr::Accept,
        ],
        vec![
            Expr::CtState,
            Expr::And(CT_ESTABLISHED | CT_RELATED),
            Expr::NotEquals(vec![0; 4]),
            Expr::Accept,
        ],
    ];
    rules.extend(
        tcp_ports
            .iter()
            .map(|port| to_listener(gateway, IPPROTO_TCP, *port)),
    );
    rules.push(to_listener(gateway, IPPROTO_UDP, 53));
    rules.push(vec![
        Expr::Limit {
            per_second: 100,
            burst: 200,
        },
        Expr::Log {
            group,
            prefix: "paddock",
        },
    ]);
    rules.push(vec![
        Expr::Meta(MetaKey::TransportProtocol),
        Expr::Equals(vec![IPPROTO_TCP]),
        Expr::RejectTcpReset,
    ]);
    rules.push(vec![Expr::RejectPortUnreachable]);
    rules
}

/// One transaction that replaces table `name` (whatever an earlier apply
/// left) with an output chain of policy drop holding `rules`.
pub(crate) fn replace_output_table(name: &str, rules: &[Vec<Expr>]) -> Vec<Message> {
    let mut messages = vec![
        table(NFT_MSG_NEWTABLE, name),
        table(NFT_MSG_DELTABLE, name),
        table(NFT_MSG_NEWTABLE, name),
    ];
    let mut chain = message(NFT_MSG_NEWCHAIN, NLM_F_CREATE);
    chain.string(1, name).string(3, "output");
    chain
        .begin(4)
        .u32_be(1, NF_INET_LOCAL_OUT)
        .u32_be(2, 0)
        .end();
    chain.u32_be(5, NF_DROP).string(7, "filter");
    messages.push(chain);
    messages.extend(rules.iter().map(|r| rule(name, "output", r)));
    batch(messages)
}

/// Asks whether chain `chain` of table `table` exists (a refusal with
/// ENOENT says it does not).
pub(crate) fn get_chain(table: &str, chain: &str) -> Vec<Message> {
    let mut m = message(NFT_MSG_GETCHAIN, 0);
    m.string(1, table).string(3, chain);
    vec![m]
}

/// A key of the host fence's `allowed` set: `ifname . ipv4_addr .
/// inet_proto . inet_service`, each field padded to four bytes.
pub(crate) fn listener_key(bridge: &str, gateway: Ipv4Addr, proto: u8, port: u16) -> Vec<u8> {
    let mut key = ifname(bridge);
    key.extend_from_slice(&gateway.octets());
    key.extend_from_slice(&[proto, 0, 0, 0]);
    key.extend_from_slice(&port.to_be_bytes());
    key.extend_from_slice(&[0, 0]);
    key
}

pub(crate) fn interface_key(bridge: &str) -> Vec<u8> {
    ifname(bridge)
}

pub(crate) const TCP: u8 = IPPROTO_TCP;
pub(crate) const UDP: u8 = IPPROTO_UDP;

/// Adds (`add = true`) or deletes set elements, one transaction for all
/// the `(set, keys)` given.
pub(crate) fn set_elements(table: &str, add: bool, sets: &[(&str, Vec<Vec<u8>>)]) -> Vec<Message> {
    let messages = sets
        .iter()
        .map(|(set, keys)| {
            let mut m = if add {
                message(NFT_MSG_NEWSETELEM, NLM_F_CREATE)
            } else {
                message(NFT_MSG_DELSETELEM, 0)
            };
            m.string(1, table).string(2, set).begin(3);
            for key in keys {
                m.begin(NFTA_LIST_ELEM).begin(1);
                m.bytes(NFTA_DATA_VALUE, key);
                m.end().end();
            }
            m.end();
            m
        })
        .collect();
    batch(messages)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_box_may_reach_only_loopback_and_the_listeners() {
        let rules = box_rules(Ipv4Addr::new(10, 213, 0, 1), &[3128, 9418], 7);
        let accepting: Vec<_> = rules
            .iter()
            .filter(|r| r.last() == Some(&Expr::Accept))
            .collect();
        // lo, established, two TCP listeners, DNS over UDP.
        assert_eq!(accepting.len(), 5);
        let dns = &accepting[4];
        assert!(dns.contains(&Expr::Equals(vec![IPPROTO_UDP])));
        assert!(dns.contains(&Expr::Equals(53u16.to_be_bytes().to_vec())));
        assert!(
            !accepting[2..4]
                .iter()
                .any(|r| r.contains(&Expr::Equals(53u16.to_be_bytes().to_vec()))),
            "DNS is served over UDP only; TCP 53 must not reach the host"
        );
        assert_eq!(rules.last(), Some(&vec![Expr::RejectPortUnreachable]));
    }

    #[test]
    fn a_listener_key_pads_every_field_to_four_bytes() {
        let key = listener_key("br-0123456789ab", Ipv4Addr::new(10, 1, 2, 1), TCP, 3128);
        assert_eq!(key.len(), 16 + 4 + 4 + 4);
        assert_eq!(&key[..15], b"br-0123456789ab");
        assert_eq!(key[15], 0);
        assert_eq!(&key[16..20], &[10, 1, 2, 1]);
        assert_eq!(&key[20..24], &[6, 0, 0, 0]);
        assert_eq!(&key[24..28], &[0x0c, 0x38, 0, 0]);
    }
}
