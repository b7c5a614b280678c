//! MCP through the official Python SDK, a client we did not write.

use crate::common::{GOOD_CODE, Options, Paddock, URL_SECRET, run_python};
use serde_json::json;

#[tokio::test]
async fn lifecycle_through_the_python_mcp_sdk() {
    let p = Paddock::start(Options::default());
    let calls = json!([
        ["create_box", {"project": "demo", "box_id": "mcp-1", "description": "from a chatbot"}],
        ["get_box", {"box_id": "mcp-1"}],
        ["list_boxes", {}],
        ["exec_box", {"box_id": "mcp-1", "command": "echo from-mcp; echo e >&2; exit 2"}],
        ["box_logs", {"box_id": "mcp-1", "tail": 5}],
        ["get_box", {"box_id": "nope"}],
        ["create_box", {"project": "Not Valid"}],
        ["exec_box", {"box_id": "mcp-1", "command": ""}],
    ]);
    let out = run_python(
        "mcp_client.py",
        &json!({"url": format!("{}/mcp", p.url), "token": p.admin_token, "calls": calls}),
    );

    // It introduces itself as paddock, and ends its session as the SDK
    // expects (no "Session termination failed" on close).
    assert_eq!(out["server"]["name"], "paddock", "{}", out["server"]);
    assert_eq!(out["server"]["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(
        out["warnings"],
        json!([]),
        "the SDK warned: {}",
        out["warnings"]
    );

    let tools = out["tools"].as_object().unwrap();
    let mut names: Vec<&str> = tools.keys().map(String::as_str).collect();
    names.sort();
    assert_eq!(
        names,
        [
            "box_logs",
            "create_box",
            "destroy_box",
            "egress_status",
            "exec_box",
            "get_box",
            "list_boxes",
            "read_file",
            "request_egress",
            "start_box",
            "stop_box",
            "write_file"
        ]
    );
    for (name, tool) in tools {
        assert_eq!(
            tool["input"]["type"], "object",
            "{name} has an input schema"
        );
        assert_eq!(
            tool["output"]["type"], "object",
            "{name} has an output schema"
        );
    }
    assert_eq!(tools["create_box"]["input"]["required"], json!(["project"]));

    let r = out["results"].as_array().unwrap();
    let created = &r[0]["structured"];
    assert_eq!(r[0]["is_error"], false);
    assert_eq!(created["box_id"], "mcp-1");
    assert_eq!(created["state"], "pending_activation");
    let activation = created["activation_url"].as_str().unwrap();
    assert!(activation.starts_with(&format!("{}/activate/", p.url)));
    assert_eq!(r[1]["structured"]["description"], "from a chatbot");
    assert_eq!(r[2]["structured"]["boxes"][0]["box_id"], "mcp-1");
    assert_eq!(
        r[3]["structured"],
        json!({"stdout": "from-mcp\n", "stderr": "e\n", "exit_code": 2})
    );
    assert_eq!(r[4]["is_error"], false);
    assert_eq!(r[5]["is_error"], true);
    assert_eq!(r[5]["text"], "not_found: no box with id \"nope\"");
    assert_eq!(r[6]["is_error"], true);
    assert!(r[6]["text"].as_str().unwrap().starts_with("invalid: "));
    assert_eq!(r[7]["is_error"], true);

    // The person activates; the chatbot sees only the state change.
    let done = p
        .http
        .post(activation)
        .form(&[("code", GOOD_CODE)])
        .send()
        .await
        .unwrap();
    assert_eq!(done.status(), 200);
    let out2 = run_python(
        "mcp_client.py",
        &json!({"url": format!("{}/mcp", p.url), "token": p.admin_token, "calls": [
            ["get_box", {"box_id": "mcp-1"}],
            ["write_file", {"box_id": "mcp-1", "path": "/work/notes/plan.md", "content": "# plan\nünïcode ok\n"}],
            ["read_file", {"box_id": "mcp-1", "path": "/work/notes/plan.md"}],
            ["read_file", {"box_id": "mcp-1", "path": "/work/nothing-here"}],
            ["write_file", {"box_id": "mcp-1", "path": "relative.txt", "content": "x"}],
            ["read_file", {"box_id": "mcp-1", "path": "/bin/busybox"}],
            ["stop_box", {"box_id": "mcp-1"}],
            ["read_file", {"box_id": "mcp-1", "path": "/work/notes/plan.md"}],
            ["exec_box", {"box_id": "mcp-1", "command": "true"}],
            ["start_box", {"box_id": "mcp-1"}],
            ["destroy_box", {"box_id": "mcp-1"}],
            ["destroy_box", {"box_id": "mcp-1"}],
        ]}),
    );
    let r2 = out2["results"].as_array().unwrap();
    assert_eq!(r2[0]["structured"]["state"], "ready");
    assert_eq!(
        r2[1]["structured"],
        json!({"box_id": "mcp-1", "path": "/work/notes/plan.md", "bytes": 20})
    );
    assert_eq!(r2[2]["structured"]["content"], "# plan\nünïcode ok\n");
    assert!(
        r2[3]["text"]
            .as_str()
            .unwrap()
            .starts_with("path_not_found: "),
        "{}",
        r2[3]
    );
    assert!(
        r2[4]["text"].as_str().unwrap().starts_with("invalid: "),
        "{}",
        r2[4]
    );
    let binary = r2[5]["text"].as_str().unwrap();
    assert!(
        binary.starts_with("too_large: ") || binary.contains("not UTF-8"),
        "{binary}"
    );
    assert_eq!(r2[6]["structured"]["state"], "stopped");
    assert_eq!(
        r2[7]["structured"]["content"], "# plan\nünïcode ok\n",
        "a stopped box's files can be read"
    );
    assert!(
        r2[8]["text"].as_str().unwrap().starts_with("wrong_state: "),
        "{}",
        r2[8]
    );
    assert_eq!(r2[9]["structured"]["state"], "ready");
    assert_eq!(
        r2[10]["structured"],
        json!({"box_id": "mcp-1", "destroyed": true})
    );
    assert_eq!(r2[11]["is_error"], true);
    assert_eq!(p.docker_objects(), (vec![], vec![]));

    // No secret in anything MCP returned.
    let everything = format!("{out}{out2}");
    assert!(
        !everything.contains(URL_SECRET),
        "authorize URL leaked over MCP"
    );
    assert!(!everything.contains(GOOD_CODE), "code leaked over MCP");
}

#[tokio::test]
async fn docker_down_is_a_tool_error_not_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    let p = Paddock::start(Options {
        docker_host: Some(format!("unix://{}/docker.sock", dir.path().display())),
        ..Options::default()
    });
    let out = run_python(
        "mcp_client.py",
        &json!({"url": format!("{}/mcp", p.url), "token": p.admin_token, "calls": [
            ["create_box", {"project": "demo"}],
            ["list_boxes", {}],
        ]}),
    );
    let r = out["results"].as_array().unwrap();
    assert_eq!(r[0]["is_error"], true);
    assert!(
        r[0]["text"]
            .as_str()
            .unwrap()
            .starts_with("engine_unavailable: "),
        "{}",
        r[0]
    );
    assert_eq!(r[1]["structured"]["boxes"], json!([]));
}
