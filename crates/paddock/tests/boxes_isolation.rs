//! Stronger isolation on request, on the real engine: a box under gVisor
//! (`runsc`, registered by `scripts/ensure-env --runsc`) with a read-only
//! root filesystem, made through the CLI, resolving through its gateway
//! (Docker's embedded resolver is out of a gVisor box's reach) before and
//! after a stop and start; and a runtime the engine lacks, refused by name
//! before anything is made. The escape tests under gVisor are in
//! `egress_escapes.rs`.

use serde_json::json;

use crate::common::egress_site::{add_rule, exec};
use crate::common::{Options, Paddock, inspect};

fn options() -> Options {
    Options {
        login_profile: false,
        extra_toml: "[egress.hosts]\n\"named.test\" = [\"127.0.0.1\"]\n".into(),
        ..Options::default()
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_gvisor_box_with_a_read_only_root_works_and_resolves_through_its_gateway() {
    let p = Paddock::start(options());
    let created = p.cli_json(&[
        "box",
        "create",
        "--project",
        "proj",
        "--id",
        "sandboxed",
        "--runtime",
        "runsc",
        "--read-only",
        "--json",
    ]);
    assert_eq!(created["runtime"], "runsc", "{created}");
    assert_eq!(created["read_only"], true, "{created}");
    let container = p.container("sandboxed");
    assert_eq!(
        inspect(
            &container,
            "{{.HostConfig.Runtime}} {{.HostConfig.ReadonlyRootfs}}"
        ),
        "runsc true"
    );
    // The box's kernel is gVisor's, not the host's.
    let out = exec(&p, "sandboxed", "dmesg | head -n 1").await;
    assert!(out["stdout"].as_str().unwrap().contains("gVisor"), "{out}");

    // Read-only root; the workspace volume and /tmp are writable.
    let out = exec(&p, "sandboxed", "touch /etc/planted").await;
    assert_ne!(out["exit_code"], 0, "{out}");
    let out = exec(
        &p,
        "sandboxed",
        "echo w > /workspace/f && echo t > /tmp/f && cat /workspace/f /tmp/f",
    )
    .await;
    assert_eq!(out["stdout"], "w\nt\n", "{out}");

    add_rule(
        &p,
        json!({"box_id": "sandboxed", "target": "named.test", "action": "allow"}),
    )
    .await;
    // A loopback answer is given only where a CIDR rule names it.
    add_rule(
        &p,
        json!({"project": "proj", "target": "127.0.0.1/32", "action": "ask"}),
    )
    .await;
    resolves_through_gateway(&p).await;

    // Docker writes the resolver file again at every start.
    p.cli_json(&["box", "stop", "sandboxed", "--json"]);
    let started = p.cli_json(&["box", "start", "sandboxed", "--json"]);
    assert_eq!(started["state"], "ready", "{started}");
    resolves_through_gateway(&p).await;
    let out = exec(&p, "sandboxed", "cat /workspace/f").await;
    assert_eq!(out["stdout"], "w\n", "the workspace outlives a stop: {out}");

    let out = p.cli(&["box", "rm", "sandboxed"]);
    assert!(out.status.success());
    assert_eq!(p.docker_objects().0, Vec::<String>::new());
}

async fn resolves_through_gateway(p: &Paddock) {
    let out = exec(p, "sandboxed", "cat /etc/resolv.conf; nslookup named.test").await;
    let text = out["stdout"].as_str().unwrap();
    assert!(!text.contains("127.0.0.11"), "not Docker's resolver: {out}");
    assert!(
        text.lines()
            .any(|l| l.starts_with("Address") && l.contains("127.0.0.1")),
        "an allowed name resolves: {out}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_runtime_the_engine_lacks_is_named_and_nothing_is_made() {
    let p = Paddock::start(options());
    let (status, body) = p
        .post(
            "/api/v1/boxes",
            json!({"project": "proj", "box_id": "nope", "runtime": "kata-missing"}),
        )
        .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"]["code"], "runtime_not_installed");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("\"kata-missing\""), "{message}");
    assert!(message.contains("runsc"), "names what it knows: {message}");
    assert_eq!(p.get("/api/v1/boxes/nope").await.0, 404);
    assert_eq!(p.docker_objects().0, Vec::<String>::new());
}
