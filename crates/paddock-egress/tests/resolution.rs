//! No name leaves the machine before it is allowed: the gateway asks its
//! resolvers about a name only after a rule, a lowered shield or a person
//! allowed it. Hermetic: an in-memory store, a real hub, and a stand-in DNS
//! server of the test's own on loopback that records every query.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use paddock_clearance::{EventKind, Hub, HubConfig, Verdict, VerdictScope};
use paddock_egress::policy::{Cidr, PortRange};
use paddock_egress::{Action, BoxIdentity, Decision, Egress, EgressConfig, Host, Scope, Target};
use paddock_store::Store;

/// Answers every A query with 127.0.0.1 and records each name asked.
struct StandInDns {
    addr: SocketAddr,
    asked: Arc<Mutex<Vec<String>>>,
}

impl StandInDns {
    async fn start() -> Self {
        let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = socket.local_addr().unwrap();
        let asked = Arc::new(Mutex::new(Vec::new()));
        let log = asked.clone();
        tokio::spawn(async move {
            let mut buf = vec![0u8; 1500];
            while let Ok((len, peer)) = socket.recv_from(&mut buf).await {
                let Some(query) = paddock_egress::dns::parse_query(&buf[..len]) else {
                    continue;
                };
                log.lock().unwrap().push(query.name.clone());
                let reply = paddock_egress::dns::answer(
                    &query,
                    hickory_proto::op::ResponseCode::NoError,
                    &[Ipv4Addr::LOCALHOST],
                );
                let _ = socket.send_to(&reply, peer).await;
            }
        });
        Self { addr, asked }
    }

    fn asked(&self) -> Vec<String> {
        self.asked.lock().unwrap().clone()
    }
}

fn who() -> BoxIdentity {
    BoxIdentity {
        box_id: "b1".into(),
        project: "p".into(),
    }
}

async fn gateway(dns: &StandInDns) -> (Arc<Egress>, Arc<Hub>) {
    let hub = Hub::new(HubConfig::default());
    let config = EgressConfig {
        resolvers: vec![dns.addr.to_string()],
        hold_timeout_secs: 1,
        ..EgressConfig::default()
    };
    let store = Arc::new(Store::open_in_memory().unwrap());
    let egress = Egress::new(config, store, hub.clone()).unwrap();
    // Loopback is refused unless a CIDR rule names it; the stand-in
    // answers 127.0.0.1, so let that through for this box on port 443.
    egress
        .put_rule(
            Scope::Box("b1".into()),
            Target::Cidr(Cidr::host("127.0.0.1".parse().unwrap())),
            Some(PortRange { lo: 443, hi: 443 }),
            Action::Allow,
            None,
            "test",
        )
        .unwrap();
    (egress, hub)
}

fn name(n: &str) -> Host {
    Host::parse(n).unwrap()
}

#[tokio::test]
async fn an_undecided_name_is_held_without_being_resolved() {
    let dns = StandInDns::start().await;
    let (egress, _hub) = gateway(&dns).await;
    // Data in the labels, a CIDR rule that would allow its addresses, and
    // nobody deciding: held, then refused at the deadline — never asked.
    let got = egress
        .decide(&who(), &name("c2VjcmV0IGRhdGE.attacker.example"), 443)
        .await;
    assert!(matches!(got, Decision::Deny { .. }), "{got:?}");
    assert_eq!(dns.asked(), Vec::<String>::new());

    // A name rule that asks is no different.
    egress
        .put_rule(
            Scope::Project("p".into()),
            Target::Domain("ask.example".into()),
            None,
            Action::Ask,
            None,
            "test",
        )
        .unwrap();
    let got = egress.decide(&who(), &name("ask.example"), 443).await;
    assert!(matches!(got, Decision::Deny { .. }), "{got:?}");
    assert_eq!(dns.asked(), Vec::<String>::new());
}

#[tokio::test]
async fn a_name_is_resolved_once_a_person_allows_it() {
    let dns = StandInDns::start().await;
    let (egress, hub) = gateway(&dns).await;
    let events = hub.subscribe();
    let deciding = egress.clone();
    let decided =
        tokio::spawn(async move { deciding.decide(&who(), &name("later.example"), 443).await });
    let held = loop {
        let e = tokio::time::timeout(Duration::from_secs(5), events.next())
            .await
            .expect("the hold is announced")
            .unwrap();
        if e.event.kind == EventKind::ConnectionBlocked.as_str() && !e.event.request_id.is_empty() {
            break e.event.clone();
        }
    };
    assert_eq!(held.domain, "later.example");
    assert_eq!(dns.asked(), Vec::<String>::new(), "not before the verdict");
    hub.verdict(Verdict {
        container: held.container.clone(),
        request_id: held.request_id.clone(),
        dest: held.dest.clone(),
        action: "allow".into(),
        scope: VerdictScope::Once,
        ttl: None,
        decided_by: "test".into(),
    })
    .await
    .unwrap();
    match decided.await.unwrap() {
        Decision::Allow { addrs } => {
            assert_eq!(addrs, vec!["127.0.0.1:443".parse::<SocketAddr>().unwrap()])
        }
        other => panic!("{other:?}"),
    }
    assert!(
        dns.asked().iter().any(|n| n == "later.example"),
        "{:?}",
        dns.asked()
    );
}

#[tokio::test]
async fn an_allow_rule_on_the_name_resolves_and_address_checks_still_apply() {
    let dns = StandInDns::start().await;
    let (egress, _hub) = gateway(&dns).await;
    egress
        .put_rule(
            Scope::Project("p".into()),
            Target::Domain("*.allowed.example".into()),
            None,
            Action::Allow,
            None,
            "test",
        )
        .unwrap();
    let got = egress
        .decide(&who(), &name("api.allowed.example"), 443)
        .await;
    assert!(matches!(got, Decision::Allow { .. }), "{got:?}");
    assert!(dns.asked().iter().any(|n| n == "api.allowed.example"));
    // On another port no CIDR rule lets the loopback answer through: the
    // name was allowed, its address is still refused.
    match egress
        .decide(&who(), &name("api.allowed.example"), 8443)
        .await
    {
        Decision::Deny { reason } => assert!(reason.contains("127.0.0.1"), "{reason}"),
        other => panic!("{other:?}"),
    }
}
