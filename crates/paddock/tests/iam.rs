//! IAM on every surface, driven from the operation registry itself: for
//! each registered operation, no credential is 401, a credential lacking
//! the capability is 403, the right one gets through. Plus malformed
//! credentials, project scoping and the chatbot's token. Sockets are in
//! `iam_sockets.rs`, the token lifecycle in `iam_tokens.rs`.

use crate::common::{Options, Paddock, all_capabilities_but as all_but, run_python};
use paddock_iam::{Access, Surface, registry};
use serde_json::{Value, json};

fn options() -> Options {
    Options {
        login_profile: false,
        ..Options::default()
    }
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
    let client = crate::common::http();
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
        let r = crate::common::http()
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
    // Every tool is called twice, each time in a session of its own: with
    // a token holding every capability but the tool's (refused), and with
    // one holding only the tool's (let through). One interpreter runs all
    // the sessions.
    let mut sessions = Vec::new();
    let mut expected = Vec::new();
    for op in registry::of(Surface::Mcp) {
        let Access::Requires(c) = op.access else {
            panic!("{} has no capability", op.name)
        };
        let args = match op.name {
            "create_box" => json!({"project": "alpha", "box_id": "never"}),
            "list_boxes" => json!({}),
            "exec_box" => json!({"box_id": "absent", "command": "true"}),
            "read_file" => json!({"box_id": "absent", "path": "/etc/hostname"}),
            "write_file" => json!({"box_id": "absent", "path": "/tmp/x", "content": "x"}),
            "request_egress" => {
                json!({"box_id": "absent", "destination": "api.example", "reason": "a test"})
            }
            _ => json!({"box_id": "absent"}),
        };
        let (_, short) = p.mint(&all_but(c), None).await;
        sessions.push(json!({"token": short, "calls": [[op.name, args]]}));
        expected.push((op.name, true));
        if op.name == "create_box" {
            continue; // with its capability it would make a box
        }
        let (_, exact) = p.mint(&[c.as_str()], None).await;
        sessions.push(json!({"token": exact, "calls": [[op.name, args]]}));
        expected.push((op.name, false));
    }
    let out = run_python("mcp_client.py", &json!({"url": mcp, "sessions": sessions}));
    let answers = out["sessions"].as_array().expect("one answer per session");
    assert_eq!(answers.len(), expected.len());
    for ((name, refused), answer) in expected.iter().zip(answers) {
        let result = &answer["results"][0];
        let text = result["text"].as_str().unwrap_or("");
        if *refused {
            assert_eq!(result["is_error"], true, "{name}: {result}");
            assert!(text.starts_with("forbidden:"), "{name}: {result}");
        } else {
            assert!(!text.starts_with("forbidden"), "{name}: {text}");
        }
    }
    // Without a credential the transport itself refuses: the SDK fails.
    let out = std::process::Command::new(crate::common::python())
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
            let r = crate::common::authorised_client(&token)
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
    // Nor may it let traffic through another way: an allow rule, a lowered
    // shield (refused before the box is even looked up).
    let chatbot_client = crate::common::authorised_client(&chatbot);
    let rule = chatbot_client
        .post(format!("{}/api/v1/egress/rules", p.url))
        .json(&json!({"target": "example.com", "action": "allow", "project": "demo"}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        rule.status().as_u16(),
        403,
        "{}",
        rule.text().await.unwrap()
    );
    let shield = chatbot_client
        .put(format!("{}/api/v1/boxes/nobox/shield", p.url))
        .json(&json!({"state": "down", "ttl_secs": 60}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        shield.status().as_u16(),
        403,
        "{}",
        shield.text().await.unwrap()
    );
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
