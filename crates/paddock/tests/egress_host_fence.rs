//! The host-side fence of box networks: before a box's own firewall is
//! applied (a box's first milliseconds), the host's table for this paddock
//! already lets its bridge reach only the gateway's listeners. Shown by
//! taking the box's own firewall away and trying again; and the table is
//! gone after a clean stop.

use std::process::Command;

use crate::common::egress_site::*;
use crate::common::{Options, Paddock, docker};

fn nft(args: &[&str]) -> std::process::Output {
    Command::new("nft").args(args).output().expect("nft runs")
}

/// Deletes the firewall in a box's own namespace, as it is in the box's
/// first milliseconds, so only the host's fence stands.
fn drop_own_firewall(container: &str) {
    let pid = docker(&["inspect", "-f", "{{.State.Pid}}", container]);
    let pid = String::from_utf8_lossy(&pid.stdout).trim().to_owned();
    let removed = Command::new("nsenter")
        .args([
            &format!("--net=/proc/{pid}/ns/net"),
            "--",
            "nft",
            "delete",
            "table",
            "inet",
            "paddock",
        ])
        .output()
        .unwrap();
    assert!(
        removed.status.success(),
        "{}",
        String::from_utf8_lossy(&removed.stderr)
    );
}

/// The box cannot reach a service on the host beside the listeners.
async fn assert_fenced(p: &Paddock, box_id: &str, gw: &str, host_service: &Upstream) {
    let out = exec(
        p,
        box_id,
        &format!("echo hi | nc -w 3 {gw} {}", host_service.port),
    )
    .await;
    assert_ne!(out["exit_code"], 0, "{out}");
    assert!(
        host_service.connections().is_empty(),
        "the host service was reached without the box's own firewall"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_host_fences_a_box_network_before_its_own_firewall_exists() {
    let host_service = Upstream::start("0.0.0.0:0").await;
    let mut p = Paddock::start(Options {
        login_profile: false,
        ..Options::default()
    });
    create_box(&p, "fenced", "proj").await;
    let gw = gateway_of(&p, "fenced").await;
    let table = paddock_egress::host_guard::table_name(&p.instance);
    let listed = nft(&["list", "table", "inet", &table]);
    assert!(listed.status.success(), "the instance's host table exists");
    let listed = String::from_utf8_lossy(&listed.stdout);
    assert!(listed.contains(&format!("{gw} . tcp . 3128")), "{listed}");

    // Take the box's own firewall away, as in its first milliseconds.
    drop_own_firewall(&p.container("fenced"));
    assert_fenced(&p, "fenced", &gw, &host_service).await;
    // The listeners stay reachable: the proxy answers (its 400 for an
    // origin-form request). wget, not nc: busybox nc half-closes after its
    // input, and the proxy drops a client that hangs up on its request.
    let out = exec(
        &p,
        "fenced",
        &format!("wget -Y off -O /dev/null http://{gw}:3128/ 2>&1"),
    )
    .await;
    assert!(
        out["stdout"].as_str().unwrap().contains("HTTP/1.1 400"),
        "{out}"
    );

    // And it is the fence that held: without it the host service is reached.
    let net = docker(&[
        "inspect",
        "-f",
        "{{range .NetworkSettings.Networks}}{{.NetworkID}}{{end}}",
        &p.container("fenced"),
    ]);
    let bridge = format!("br-{}", &String::from_utf8_lossy(&net.stdout).trim()[..12]);
    let opened = nft(&[
        "delete",
        "element",
        "inet",
        &table,
        "boxnets",
        &format!("{{ \"{bridge}\" }}"),
    ]);
    assert!(
        opened.status.success(),
        "{}",
        String::from_utf8_lossy(&opened.stderr)
    );
    let out = exec(
        &p,
        "fenced",
        &format!("echo hi | nc -w 3 {gw} {}", host_service.port),
    )
    .await;
    assert_eq!(out["exit_code"], 0, "{out}");
    crate::common::wait_for(
        "the host service to see the box",
        std::time::Duration::from_secs(10),
        || {
            let seen = !host_service.connections().is_empty();
            async move { seen.then_some(()) }
        },
    )
    .await;

    // A clean stop takes the table away.
    assert!(p.stop().success());
    assert!(!nft(&["list", "table", "inet", &table]).status.success());
}

/// Two paddocks at their defaults on one machine (no instance configured):
/// each has a fence of its own, so stopping one leaves the other's boxes
/// fenced, and the other's health looks at its fence in the kernel.
#[tokio::test(flavor = "multi_thread")]
async fn two_default_instances_keep_their_own_fences() {
    let host_service = Upstream::start("0.0.0.0:0").await;
    let defaults = Options {
        login_profile: false,
        default_instance: true,
        ..Options::default()
    };
    let first = Paddock::start(defaults.clone());
    let mut second = Paddock::start(defaults);
    assert_ne!(
        first.instance, second.instance,
        "each store made its own instance"
    );
    assert!(
        !first.log().contains('\u{1b}'),
        "a log file gets no colour codes"
    );
    let first_table = paddock_egress::host_guard::table_name(&first.instance);
    let second_table = paddock_egress::host_guard::table_name(&second.instance);
    assert_ne!(first_table, second_table);
    assert!(
        nft(&["list", "table", "inet", &first_table])
            .status
            .success()
    );
    assert!(
        nft(&["list", "table", "inet", &second_table])
            .status
            .success()
    );

    create_box(&first, "fenced-a", "proj").await;
    create_box(&second, "fenced-b", "proj").await;
    assert!(second.stop().success());
    assert!(
        !nft(&["list", "table", "inet", &second_table])
            .status
            .success(),
        "a clean stop removes its own table"
    );
    let (status, health) = first.get("/healthz").await;
    assert_eq!(status, 200, "{health}");

    // The first one's box is still fenced on the host: without its own
    // firewall, it still cannot reach a host service.
    let gw = gateway_of(&first, "fenced-a").await;
    drop_own_firewall(&first.container("fenced-a"));
    assert_fenced(&first, "fenced-a", &gw, &host_service).await;

    // Health is read from the kernel: a table someone removed is reported,
    // and the next box puts it back before it starts.
    assert!(
        nft(&["delete", "table", "inet", &first_table])
            .status
            .success()
    );
    let (status, health) = first.get("/healthz").await;
    assert_eq!(status, 503, "{health}");
    assert!(health["down"].to_string().contains("egress"), "{health}");
    assert!(
        health["components"]["egress"]["error"]
            .as_str()
            .unwrap()
            .contains(&first_table),
        "{health}"
    );
    create_box(&first, "fenced-c", "proj").await;
    let listed = nft(&["list", "table", "inet", &first_table]);
    let listed = String::from_utf8_lossy(&listed.stdout);
    let gw_c = gateway_of(&first, "fenced-c").await;
    assert!(listed.contains(&format!("{gw_c} . tcp . 3128")), "{listed}");
    assert!(
        listed.contains(&format!("{gw} . tcp . 3128")),
        "the others are back too: {listed}"
    );
    let (status, health) = first.get("/healthz").await;
    assert_eq!(status, 200, "{health}");
}

/// What an instance leaves behind once it has no box goes with `paddock
/// purge`; a clean stop already leaves no idle network.
#[tokio::test(flavor = "multi_thread")]
async fn purge_removes_what_an_instance_without_boxes_left() {
    let mut p = Paddock::start(Options {
        login_profile: false,
        default_instance: true,
        ..Options::default()
    });
    create_box(&p, "purged", "proj").await;
    let table = paddock_egress::host_guard::table_name(&p.instance);
    let data = p.dir.path().join("data");
    let purge = |p: &Paddock| {
        Command::new(crate::common::paddock_bin())
            .args(["purge", "--config"])
            .arg(p.dir.path().join("paddock.toml"))
            .arg("--data-dir")
            .arg(&data)
            .arg("--clearance-socket")
            .arg(p.clearance_socket())
            .env("XDG_RUNTIME_DIR", p.runtime_dir())
            .output()
            .unwrap()
    };
    let terok_hub = p
        .runtime_dir()
        .join(format!("terok/clearance/paddock-{}", p.instance));
    let refused = purge(&p);
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("is running"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
    assert!(p.stop().success());
    let refused = purge(&p);
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("still has 1 box"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
    p.restart();
    assert_eq!(p.delete("/api/v1/boxes/purged").await.0, 204);
    assert!(p.stop().success());
    assert_eq!(p.idle_networks(), 0, "a clean stop leaves no idle network");
    assert!(
        !terok_hub.exists(),
        "a clean stop removes terok's hub socket"
    );

    // A killed paddock leaves its socket where terok's clients look.
    p.restart();
    assert!(terok_hub.join("hub.sock").exists());
    p.kill9();
    let done = purge(&p);
    assert!(
        done.status.success(),
        "{}",
        String::from_utf8_lossy(&done.stderr)
    );
    assert!(!nft(&["list", "table", "inet", &table]).status.success());
    assert_eq!(p.docker_objects(), (vec![], vec![]));
    assert_eq!(p.idle_networks(), 0);
    let left: Vec<String> = std::fs::read_dir(&data)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("paddock-gate-hooks-"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
    assert!(!terok_hub.exists(), "purge removes terok's hub socket");
}
