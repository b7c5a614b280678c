//! Every escape of ARCHITECTURE.md's list, tried from inside a real box; each must
//! fail, and each that reaches paddock must be reported. The only servers
//! are the test's own, on loopback or the box's gateway; addresses that
//! nothing serves (another box's port, a documentation IPv6 address) are
//! never left by a packet: the box's firewall rejects it in its namespace.

use crate::common::egress_site::*;
use crate::common::{Options, Paddock, docker, wait_for};
use base64::Engine as _;
use paddock_clearance::ClearanceEvent;
use serde_json::{Value, json};
use std::time::Duration;

fn options() -> Options {
    Options {
        login_profile: false,
        extra_toml: "[egress]\nhold_timeout_secs = 2\n\
             [egress.hosts]\n\"tls.test\" = [\"127.0.0.1\"]\n\"meta.test\" = [\"169.254.169.254\"]\n\
             \"rebind.test\" = [\"127.0.0.2\"]\n"
            .into(),
        ..Options::default()
    }
}

fn raw_block(dest: &str, port: u16, proto: i64) -> impl Fn(&ClearanceEvent) -> bool {
    let dest = dest.to_owned();
    move |e| {
        e.kind == "connection_refused"
            && e.request_id.is_empty()
            && e.dest == dest
            && e.port == port as i64
            && e.proto == proto
    }
}

fn failed(out: &Value) -> bool {
    out["exit_code"] != 0
}

/// `CONNECT host:port` followed by a ClientHello naming `sni`, sent from
/// the box with nc; the proxy's answer is printed.
fn connect_with_hello(gateway: &str, host: &str, port: u16, sni: &str) -> String {
    let mut bytes =
        format!("CONNECT {host}:{port} HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n").into_bytes();
    bytes.extend(paddock_egress::sni::client_hello_for(sni));
    let b64 = base64::engine::general_purpose::STANDARD.encode(bytes);
    format!("echo {b64} | base64 -d > /tmp/req && timeout 10 nc {gateway} 3128 < /tmp/req")
}

#[tokio::test(flavor = "multi_thread")]
async fn every_escape_attempt_fails_and_is_reported() {
    escapes_fail_and_are_reported(None).await;
}

/// gVisor's own network stack sends through a packet socket, past the
/// rules in the box's namespace: the host fence alone refuses, and reports,
/// every one of the same attempts (`scripts/ensure-env --runsc` registers
/// the runtime).
#[tokio::test(flavor = "multi_thread")]
async fn every_escape_attempt_fails_and_is_reported_under_gvisor() {
    escapes_fail_and_are_reported(Some("runsc")).await;
}

async fn escapes_fail_and_are_reported(runtime: Option<&str>) {
    let upstream = Upstream::start("127.0.0.1:0").await;
    let host_service = Upstream::start("0.0.0.0:0").await;
    let p = Paddock::start(options());
    let jail = create_box_under(&p, "jail", "proj", runtime).await;
    assert_eq!(jail["runtime"].as_str(), runtime, "{jail}");
    create_box(&p, "other", "proj").await;
    add_rule(
        &p,
        json!({"project": "proj", "target": "127.0.0.1/32", "action": "ask"}),
    )
    .await;
    add_rule(&p, json!({"box_id": "jail", "target": "tls.test", "ports": upstream.port.to_string(), "action": "allow"})).await;
    for name in ["meta.test", "rebind.test"] {
        add_rule(
            &p,
            json!({"box_id": "jail", "target": name, "action": "allow"}),
        )
        .await;
    }
    let gw = gateway_of(&p, "jail").await;
    let mut sub = Subscriber::connect(&p).await;
    subscribed(&p, &mut sub, "jail").await;

    // Direct TCP to a host service, bypassing the proxy.
    let out = exec(
        &p,
        "jail",
        &format!("echo hi | nc -w 3 {gw} {}", host_service.port),
    )
    .await;
    assert!(failed(&out), "{out}");
    sub.next_where("raw TCP block", raw_block(&gw, host_service.port, 6))
        .await;
    assert!(
        host_service.connections().is_empty(),
        "nothing reached the host service"
    );

    // The hub's own API.
    let api_port: u16 = p.url.rsplit(':').next().unwrap().parse().unwrap();
    let out = exec(
        &p,
        "jail",
        &format!("printf 'GET /healthz HTTP/1.0\\r\\n\\r\\n' | nc -w 3 {gw} {api_port}"),
    )
    .await;
    assert!(failed(&out), "{out}");
    sub.next_where("API block", raw_block(&gw, api_port, 6))
        .await;

    // UDP out: a DNS query straight to a port that is not the resolver.
    let out = exec(
        &p,
        "jail",
        &format!("timeout 5 nslookup paddock.test {gw}:5353"),
    )
    .await;
    assert!(failed(&out), "{out}");
    sub.next_where("UDP block", raw_block(&gw, 5353, 17)).await;

    // TCP to the DNS port: paddock serves DNS over UDP only, so whatever
    // else listens on TCP 53 of the gateway (here the test's own listener)
    // must not hear from the box.
    let dns_tcp = Upstream::start(&format!("{gw}:53")).await;
    let out = exec(&p, "jail", &format!("echo hi | nc -w 3 {gw} 53")).await;
    assert!(failed(&out), "{out}");
    sub.next_where("TCP 53 block", raw_block(&gw, 53, 6)).await;
    assert!(
        dns_tcp.connections().is_empty(),
        "a listener on TCP 53 of the gateway heard from the box"
    );

    // Another box.
    let inspect = docker(&[
        "inspect",
        "-f",
        "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}",
        &p.container("other"),
    ]);
    let other_ip = String::from_utf8_lossy(&inspect.stdout).trim().to_owned();
    let out = exec(&p, "jail", &format!("echo hi | nc -w 3 {other_ip} 80")).await;
    assert!(failed(&out), "{out}");
    sub.next_where("block towards another box", raw_block(&other_ip, 80, 6))
        .await;

    // IPv6 out.
    let out = exec(&p, "jail", "echo hi | nc -w 3 2001:db8::1 80").await;
    assert!(failed(&out), "{out}");

    // DNS of an arbitrary name: refused and reported; an allowed name answers.
    let out = exec(&p, "jail", "nslookup evil.test").await;
    assert!(
        out["stdout"].as_str().unwrap().contains("REFUSED") || failed(&out),
        "{out}"
    );
    sub.next_where("DNS refusal", |e| {
        e.kind == "connection_refused" && e.domain == "evil.test" && e.port == 53 && e.proto == 17
    })
    .await;
    let out = exec(&p, "jail", "nslookup tls.test").await;
    assert!(
        out["stdout"].as_str().unwrap().contains("127.0.0.1"),
        "{out}"
    );

    // Allowed names that resolve to metadata or loopback addresses.
    for (name, why) in [("meta.test", "metadata"), ("rebind.test", "loopback")] {
        let out = exec(&p, "jail", &format!("wget -q -O - http://{name}/")).await;
        assert!(
            out["stderr"].as_str().unwrap().contains("403"),
            "{name}: {out}"
        );
        let refused = sub
            .next_where("rebinding refusal", |e| {
                e.kind == "connection_refused" && e.dest == name
            })
            .await;
        assert!(refused.reason.contains(why), "{}", refused.reason);
    }

    // CONNECT to the allowed name with a ClientHello for another host.
    let out = exec(
        &p,
        "jail",
        &connect_with_hello(&gw, "tls.test", upstream.port, "evil.test"),
    )
    .await;
    assert!(
        out["stdout"].as_str().unwrap().starts_with("HTTP/1.1 200"),
        "{out}"
    );
    let refused = sub
        .next_where("SNI refusal", |e| {
            e.kind == "connection_refused" && e.reason.contains("evil.test")
        })
        .await;
    assert_eq!(refused.dest, "tls.test");
    wait_for(
        "the tunnel's upstream connection to close",
        Duration::from_secs(10),
        || async {
            upstream
                .connections()
                .first()
                .map(|c| c.is_empty())
                .filter(|empty| *empty)
                .map(|_| ())
        },
    )
    .await;

    // The same with the right name goes through, byte for byte.
    let hello = paddock_egress::sni::client_hello_for("tls.test");
    let _tunnel = exec_later(
        &p,
        "jail",
        &connect_with_hello(&gw, "tls.test", upstream.port, "tls.test"),
    );
    wait_for(
        "the ClientHello at the upstream",
        Duration::from_secs(20),
        || async { upstream.connections().contains(&hello).then_some(()) },
    )
    .await;

    // CONNECT to the allowed name on a port the rule does not name: held
    // (as anything undecided), never through; refused at the deadline.
    let other_port = upstream.port.wrapping_add(1).max(1);
    let out = exec(
        &p,
        "jail",
        &connect_with_hello(&gw, "tls.test", other_port, "tls.test"),
    )
    .await;
    assert!(
        out["stdout"].as_str().unwrap().starts_with("HTTP/1.1 403"),
        "{out}"
    );

    logged(
        &p,
        "jail",
        &["raw_block", "dns_refused", "denied", "timeout"],
    )
    .await;
}
