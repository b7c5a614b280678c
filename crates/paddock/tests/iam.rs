//! IAM on every surface, driven from the operation registry itself: for
//! each registered operation, no credential is 401, a credential lacking
//! the capability is 403, the right one gets through. Plus scoping,
//! long-lived sockets (in-band auth, refresh, revocation closing them), the
//! first admin token and offline token administration.

mod common;

use std::time::Duration;

use common::clients::Streaming;
use common::{Options, Paddock, run_python};
use paddock_iam::{Access, Capability, Surface, registry};
use serde_json::{Value, json};

fn options() -> Options {
    Options {
        login_profile: false,
        ..Options::default()
    }
}

/// Every capability name but one: the token that is one short.
fn all_but(c: Capability) -> Vec<&'static str> {
    Capability::ALL
        .into_iter()
        .filter(|x| *x != c)
        .map(Capability::as_str)
        .collect()
}

/// A concrete request for a registered route: path parameters name things
/// that do not exist, so a call that gets through changes nothing.
fn concrete(name: &str) -> (reqwest::Method, String) {
    let (method, path) = name.split_once(' ').unwrap();
    let path = path
        .replace("/boxes/{id}", "/boxes/absent")
        .replace("/rules/{id}", "/rules/999999")
        .replace("/tokens/{id}", "/tokens/tok_absent")
        .replace("{token}", "not-a-real-activation-token");
    (method.parse().unwrap(), path)
}

async fn call(p: &Paddock, token: Option<&str>, name: &str) -> reqwest::Response {
    let (method, path) = concrete(name);
    let client = common::http();
    let mut request = client.request(method.clone(), format!("{}{path}", p.url));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if method != reqwest::Method::GET && method != reqwest::Method::DELETE {
        request = request.json(&json!({}));
    }
    request.send().await.unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn every_registered_http_operation_refuses_the_wrong_caller() {
    let p = Paddock::start(options());
    let mut checked = 0;
    for op in registry::of(Surface::Rest).chain(registry::of(Surface::Page)) {
        // The WebSocket takes its credential in-band too; tested below.
        if op.name == "GET /api/v1/events" || op.name == "GET /mcp" || op.name == "DELETE /mcp" {
            continue;
        }
        let anonymous = call(&p, None, op.name).await;
        match op.access {
            Access::Public | Access::CapabilityUrl => {
                assert!(
                    ![401, 403].contains(&anonymous.status().as_u16()),
                    "{}: open to anyone, got {}",
                    op.name,
                    anonymous.status()
                );
            }
            Access::Authenticated | Access::Requires(_) => {
                assert_eq!(anonymous.status(), 401, "{}: no credential", op.name);
                let challenge = anonymous.headers().get("www-authenticate");
                assert!(
                    challenge.is_some_and(|v| v.to_str().unwrap().starts_with("Bearer")),
                    "{}: 401 without a challenge",
                    op.name
                );
                let forged =
                    call(&p, Some("pdk_forged-token-that-was-never-minted"), op.name).await;
                assert_eq!(forged.status(), 401, "{}: unknown token", op.name);
            }
        }
        if let Access::Requires(c) = op.access {
            let (_, short) = p.mint(&all_but(c), None).await;
            let refused = call(&p, Some(&short), op.name).await;
            assert_eq!(refused.status(), 403, "{}: lacking {c}", op.name);
            let body: Value = refused.json().await.unwrap();
            assert_eq!(body["error"]["code"], "forbidden");

            let (_, exact) = p.mint(&[c.as_str()], None).await;
            let allowed = call(&p, Some(&exact), op.name).await;
            assert!(
                ![401, 403].contains(&allowed.status().as_u16()),
                "{}: holding {c}, got {}",
                op.name,
                allowed.status()
            );
        }
        checked += 1;
    }
    assert!(checked >= 20, "only {checked} operations checked");

    // A method nobody registered on a known path is refused.
    let patch = p
        .http
        .patch(format!("{}/api/v1/boxes", p.url))
        .send()
        .await
        .unwrap();
    assert!(
        [403, 405].contains(&patch.status().as_u16()),
        "{}",
        patch.status()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn malformed_and_oversized_credentials_are_refused_without_echo() {
    let p = Paddock::start(options());
    let url = format!("{}/api/v1/boxes", p.url);
    let huge = format!("pdk_{}", "x".repeat(9000));
    for header in [
        "Basic dXNlcjpwYXNz".to_owned(),
        "Bearer".to_owned(),
        "Bearer ".to_owned(),
        "pdk_no_scheme".to_owned(),
        format!("Bearer {huge}"),
        "Bearer eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.c2ln".to_owned(),
    ] {
        let r = common::http()
            .get(&url)
            .header("authorization", &header)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401, "{header:.40}");
        let text = r.text().await.unwrap();
        assert!(
            !text.contains("xxxxxxxxxx") && !text.contains("c2ln"),
            "echoed: {text}"
        );
    }
    assert!(
        !p.log().contains(&"x".repeat(64)),
        "a credential reached the log"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn every_mcp_tool_refuses_a_token_without_its_capability() {
    let p = Paddock::start(options());
    let mcp = format!("{}/mcp", p.url);
    for op in registry::of(Surface::Mcp) {
        let Access::Requires(c) = op.access else {
            panic!("{} has no capability", op.name)
        };
        let args = match op.name {
            "create_box" => json!({"project": "alpha", "box_id": "never"}),
            "list_boxes" => json!({}),
            "exec_box" => json!({"box_id": "absent", "command": "true"}),
            _ => json!({"box_id": "absent"}),
        };
        let (_, short) = p.mint(&all_but(c), None).await;
        let out = run_python(
            "mcp_client.py",
            &json!({"url": mcp, "token": short, "calls": [[op.name, args]]}),
        );
        let result = &out["results"][0];
        assert_eq!(result["is_error"], true, "{}: {result}", op.name);
        assert!(
            result["text"].as_str().unwrap().starts_with("forbidden:"),
            "{}: {result}",
            op.name
        );
        if op.name == "create_box" {
            continue; // with its capability it would make a box
        }
        let (_, exact) = p.mint(&[c.as_str()], None).await;
        let out = run_python(
            "mcp_client.py",
            &json!({"url": mcp, "token": exact, "calls": [[op.name, args]]}),
        );
        let text = out["results"][0]["text"].as_str().unwrap_or("").to_owned();
        assert!(!text.starts_with("forbidden"), "{}: {text}", op.name);
    }
    // Without a credential the transport itself refuses: the SDK fails.
    let out = std::process::Command::new(common::python())
        .arg(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/mcp_client.py"))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write;
            child
                .stdin
                .take()
                .unwrap()
                .write_all(json!({"url": mcp, "calls": []}).to_string().as_bytes())?;
            child.wait_with_output()
        })
        .unwrap();
    assert!(!out.status.success());
    // (The SDK does not say why; the HTTP matrix shows `POST /mcp` is 401.)
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("error response"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_project_token_sees_and_touches_only_its_projects() {
    let p = Paddock::start(options());
    for (id, project) in [("a-1", "alpha"), ("b-1", "beta")] {
        let (status, body) = p
            .post("/api/v1/boxes", json!({"project": project, "box_id": id}))
            .await;
        assert_eq!(status, 201, "{body}");
    }
    let (_, alpha) = p.mint(&["operator"], Some(&["alpha"])).await;
    let as_alpha = p.client_as(&alpha);
    let listed: Value = as_alpha
        .get(format!("{}/api/v1/boxes", p.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let ids: Vec<&str> = listed["boxes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["box_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["a-1"]);
    let status = |r: reqwest::Response| r.status().as_u16();
    let get = |id: &str| as_alpha.get(format!("{}/api/v1/boxes/{id}", p.url)).send();
    assert_eq!(status(get("a-1").await.unwrap()), 200);
    assert_eq!(
        status(get("b-1").await.unwrap()),
        404,
        "another project's box does not exist"
    );
    let exec = as_alpha
        .post(format!("{}/api/v1/boxes/b-1/exec", p.url))
        .json(&json!({"command": "true"}))
        .send()
        .await
        .unwrap();
    assert_eq!(status(exec), 404);
    let create = as_alpha
        .post(format!("{}/api/v1/boxes", p.url))
        .json(&json!({"project": "beta", "box_id": "b-2"}))
        .send()
        .await
        .unwrap();
    assert_eq!(status(create), 403);
    let rule = as_alpha
        .post(format!("{}/api/v1/egress/rules", p.url))
        .json(&json!({"project": "beta", "target": "example.com", "action": "allow"}))
        .send()
        .await
        .unwrap();
    assert_eq!(status(rule), 403);
    let tokens = as_alpha
        .get(format!("{}/api/v1/tokens", p.url))
        .send()
        .await
        .unwrap();
    assert_eq!(
        status(tokens),
        403,
        "token administration needs every project"
    );
    assert_eq!(
        p.get("/api/v1/boxes/b-1").await.0,
        200,
        "beta's box is untouched"
    );
}

fn ws_url(p: &Paddock) -> String {
    format!("{}/api/v1/events", p.url.replace("http://", "ws://"))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_websocket_authenticates_in_band_refreshes_and_closes_when_revoked() {
    let p = Paddock::start(options());
    let (first_id, first) = p.mint(&["viewer"], None).await;
    let (second_id, second) = p.mint(&["viewer"], None).await;
    let steps = json!([
        {"type": "auth", "token": first},
        {"container": "x", "request_id": "r", "dest": "d", "action": "allow"},
        {"type": "nope"},
        {"type": "auth", "token": second},
    ]);
    let ws = Streaming::start(&["ws_session", &ws_url(&p), &steps.to_string()]);
    let welcome = ws.next_where("welcome", |v| v["type"] == "welcome");
    assert_eq!(welcome["principal"], format!("token:{first_id}"));
    let refused = ws.next_where("an error", |v| v["type"] == "error");
    assert_eq!(
        refused["error"], "forbidden",
        "a viewer decides no egress: {refused}"
    );
    let unknown = ws.next_where("an error", |v| v["type"] == "error");
    assert_eq!(unknown["error"], "invalid", "{unknown}");
    let refreshed = ws.next_where("welcome", |v| v["type"] == "welcome");
    assert_eq!(refreshed["principal"], format!("token:{second_id}"));

    // Revoking the token it no longer uses leaves it open; revoking the
    // one it uses closes it.
    assert_eq!(p.delete(&format!("/api/v1/tokens/{first_id}")).await.0, 200);
    assert_eq!(
        p.delete(&format!("/api/v1/tokens/{second_id}")).await.0,
        200
    );
    let closed = ws.next_where("the close", |v| v.get("closed").is_some());
    assert_eq!(closed["closed"], 4401);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_websocket_with_a_bad_or_no_credential_is_closed() {
    let p = Paddock::start(options());
    let bad = json!([{"type": "auth", "token": "pdk_never-minted"}]);
    let ws = Streaming::start(&["ws_session", &ws_url(&p), &bad.to_string()]);
    let error = ws.next_where("an error", |v| v["type"] == "error");
    assert_eq!(error["error"], "unauthenticated");
    assert_eq!(
        ws.next_where("the close", |v| v.get("closed").is_some())["closed"],
        4401
    );

    let not_auth = json!([{"type": "verdict"}]);
    let ws = Streaming::start(&["ws_session", &ws_url(&p), &not_auth.to_string()]);
    assert_eq!(
        ws.next_where("the close", |v| v.get("closed").is_some())["closed"],
        4401
    );

    // The query string is the other way in, for clients without headers.
    let (_, viewer) = p.mint(&["viewer"], None).await;
    let url = format!("{}?token={viewer}", ws_url(&p));
    let ws = Streaming::start(&["ws_session", &url, "[]"]);
    ws.next_where("welcome", |v| v["type"] == "welcome");
    let (_, no_events) = p.mint(&["box:read"], None).await;
    let url = format!("{}?token={no_events}", ws_url(&p));
    let refused = common::http()
        .get(url.replace("ws://", "http://"))
        .header("connection", "upgrade")
        .header("upgrade", "websocket")
        .header("sec-websocket-version", "13")
        .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==")
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 403, "a token without events:subscribe");
}

/// Removes an instance's Docker objects however the test ends.
struct Sweep(String);

impl Drop for Sweep {
    fn drop(&mut self) {
        common::sweep(&self.0);
    }
}

/// Reads `paddock serve`'s stdout lines until the listening line and the
/// token lines after it, with a deadline.
fn serve_lines(child: &mut std::process::Child) -> Vec<String> {
    use std::io::BufRead;
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            let _ = tx.send(line);
        }
    });
    let mut lines = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while let Ok(line) =
        rx.recv_timeout(deadline.saturating_duration_since(std::time::Instant::now()))
    {
        let done = line.contains("listening on") && lines.is_empty();
        lines.push(line);
        if !done && lines.len() >= 3 {
            break;
        }
        if done {
            // The token lines, if any, follow at once.
            while let Ok(line) = rx.recv_timeout(Duration::from_millis(500)) {
                lines.push(line);
            }
            break;
        }
    }
    lines
}

#[tokio::test(flavor = "multi_thread")]
async fn first_start_prints_an_admin_token_once_and_tokens_work_offline() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let instance = format!("test-iam-first-{}", std::process::id());
    let _sweep = Sweep(instance.clone());
    let config = dir.path().join("paddock.toml");
    std::fs::write(
        &config,
        format!("instance = \"{instance}\"\n[egress]\nenabled = false\n[git]\nenabled = false\n"),
    )
    .unwrap();
    let start = || {
        let mut child = std::process::Command::new(common::paddock_bin())
            .args(["serve", "--listen", "127.0.0.1:0", "--config"])
            .arg(&config)
            .arg("--data-dir")
            .arg(&data)
            .arg("--clearance-socket")
            .arg(dir.path().join("run/clearance.sock"))
            .env_remove("PADDOCK_ADMIN_TOKEN")
            .env_remove("PADDOCK_CONFIG")
            .stdout(std::process::Stdio::piped())
            .stderr(std::fs::File::create(dir.path().join("log")).unwrap())
            .spawn()
            .unwrap();
        let lines = serve_lines(&mut child);
        (child, lines)
    };
    let stop = |mut child: std::process::Child| {
        let _ = child.kill();
        let _ = child.wait();
    };

    let (child, lines) = start();
    let url = lines[0]
        .strip_prefix("paddock: listening on ")
        .unwrap()
        .to_owned();
    let token = lines
        .iter()
        .find_map(|l| l.split("keep it): ").nth(1))
        .unwrap_or_else(|| panic!("no admin token printed: {lines:?}"))
        .trim()
        .to_owned();
    let whoami = common::authorised_client(&token)
        .get(format!("{url}/api/v1/whoami"))
        .send()
        .await
        .unwrap();
    assert_eq!(whoami.status(), 200);
    let log = std::fs::read_to_string(dir.path().join("log")).unwrap();
    assert!(!log.contains(&token), "the admin token reached the log");

    // Offline, against the data dir, while it runs: the new token works.
    let out = std::process::Command::new(common::paddock_bin())
        .args([
            "token",
            "create",
            "--name",
            "ci",
            "-c",
            "box:read",
            "--project",
            "alpha",
            "--json",
            "--data-dir",
        ])
        .arg(&data)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let created: Value = serde_json::from_slice(&out.stdout).unwrap();
    let ci = created["secret"].as_str().unwrap().to_owned();
    let listed = common::authorised_client(&ci)
        .get(format!("{url}/api/v1/boxes"))
        .send()
        .await
        .unwrap();
    assert_eq!(listed.status(), 200);
    let out = std::process::Command::new(common::paddock_bin())
        .args(["token", "ls", "--data-dir"])
        .arg(&data)
        .output()
        .unwrap();
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(table.contains("ci") && table.contains("alpha"), "{table}");
    assert!(
        !table.contains(&ci) && !table.contains(&token),
        "a listing shows no secret"
    );
    stop(child);

    // Second start: nothing printed, the first token still works.
    let (child, lines) = start();
    assert!(
        !lines.iter().any(|l| l.contains("admin token")),
        "{lines:?}"
    );
    let url = lines[0]
        .strip_prefix("paddock: listening on ")
        .unwrap()
        .to_owned();
    let again = common::authorised_client(&token)
        .get(format!("{url}/api/v1/whoami"))
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 200);
    stop(child);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_token_cli_administers_through_the_server() {
    let p = Paddock::start(options());
    let out = p.cli(&[
        "token", "create", "--name", "people", "-c", "operator", "--json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let created: Value = serde_json::from_slice(&out.stdout).unwrap();
    let id = created["token"]["id"].as_str().unwrap().to_owned();
    let secret = created["secret"].as_str().unwrap().to_owned();
    let out = p.cli_as(&secret, &["token", "ls"]);
    assert_eq!(out.status.code(), Some(1), "an operator cannot list tokens");
    assert!(String::from_utf8_lossy(&out.stderr).contains("admin:tokens"));
    let out = p.cli(&["token", "revoke", &id]);
    assert!(out.status.success());
    let out = p.cli_as(&secret, &["box", "ls"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("revoked"));
    let out = p.cli(&["token", "create", "--name", "x", "-c", "root"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown capability"));
}

#[tokio::test(flavor = "multi_thread")]
async fn an_initial_admin_token_can_come_from_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("admin-token");
    let supplied = "an-admin-token-from-a-file-0123456789";
    std::fs::write(&file, format!("{supplied}\n")).unwrap();
    let mut p = Paddock::start(Options {
        login_profile: false,
        extra_toml: format!("[iam]\nadmin_token_file = \"{}\"\n", file.display()),
        // The file wins only when the environment names none.
        env: vec![("PADDOCK_ADMIN_TOKEN".into(), String::new())],
        ..Options::default()
    });
    let me = p
        .client_as(supplied)
        .get(format!("{}/api/v1/whoami", p.url))
        .send()
        .await
        .unwrap();
    assert_eq!(me.status(), 200);
    // A short one is refused at start, with the reason.
    std::fs::write(&file, "short").unwrap();
    p.kill9();
    let out = std::process::Command::new(common::paddock_bin())
        .args(["serve", "--listen", "127.0.0.1:0", "--config"])
        .arg(p.dir.path().join("paddock.toml"))
        .arg("--data-dir")
        .arg(p.dir.path().join("data"))
        .arg("--clearance-socket")
        .arg(p.clearance_socket())
        .env_remove("PADDOCK_ADMIN_TOKEN")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("at least 32 characters"), "{stderr}");
    assert!(
        !stderr.contains("short"),
        "the token itself is not echoed: {stderr}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_token_the_chatbot_uses_over_mcp_decides_no_egress_anywhere() {
    let p = Paddock::start(options());
    let (chatbot_id, chatbot) = p.mint(&["admin"], None).await;
    let (_, person) = p.mint(&["admin"], None).await;
    let verdict = json!({"container": "b", "request_id": "r", "dest": "d", "action": "allow"});
    let verdict_as = |token: String| {
        let verdict = verdict.clone();
        let url = format!("{}/api/v1/egress/verdicts", p.url);
        async move {
            let r = common::authorised_client(&token)
                .post(url)
                .json(&verdict)
                .send()
                .await
                .unwrap();
            (r.status().as_u16(), r.text().await.unwrap())
        }
    };
    // Before MCP, an admin token may decide (the hub knows no such request).
    assert_eq!(verdict_as(chatbot.clone()).await.0, 404);
    let out = run_python(
        "mcp_client.py",
        &json!({"url": format!("{}/mcp", p.url), "token": chatbot, "calls": [["list_boxes", {}]]}),
    );
    assert_eq!(out["results"][0]["is_error"], false, "{out}");
    let (status, body) = verdict_as(chatbot.clone()).await;
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("used over MCP"), "{body}");
    assert_eq!(
        verdict_as(person).await.0,
        404,
        "a person's token still decides"
    );
    let listed = p.cli(&["token", "ls"]);
    let table = String::from_utf8_lossy(&listed.stdout);
    let row = table.lines().find(|l| l.starts_with(&chatbot_id)).unwrap();
    assert!(row.contains("used over MCP"), "{table}");
}
