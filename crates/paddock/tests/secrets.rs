//! Secrets that never enter the box, from inside a real one: a box with
//! Debian's curl (a client that verifies certificates) and a read-only
//! root reaches a TLS API the test runs, which sees the real key while
//! the box's environment, files and paddock's log hold only a
//! placeholder. Without paddock's bundle the handshake fails; a
//! placeholder sent to another host is refused and reported; a new value
//! reaches the running box.

use std::io::Write as _;
use std::process::{Command, Stdio};

use crate::common::egress_site::{add_rule, exec, logged};
use crate::common::images::curl_image;
use crate::common::tls_site::TlsApi;
use crate::common::{Options, Paddock, paddock_bin};
use serde_json::json;

const REAL_KEY: &str = "sk-real-key-4b1d";

fn options(api: &TlsApi) -> Options {
    Options {
        login_profile: false,
        extra_toml: format!(
            "[egress]\nupstream_ca_file = \"{}\"\n[egress.hosts]\n\"api.test\" = [\"127.0.0.1\"]\n\"other.test\" = [\"127.0.0.1\"]\n",
            api.ca_file.display()
        ),
        ..Options::default()
    }
}

/// `paddock secret set …` with the value on standard input, as a person
/// pipes it (never in argv).
fn set_secret(p: &Paddock, value: &str, args: &[&str]) {
    let mut child = Command::new(paddock_bin())
        .args(["secret", "set"])
        .args(args)
        .env("PADDOCK_URL", &p.url)
        .env("PADDOCK_TOKEN", &p.admin_token)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(format!("{value}\n").as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "secret set: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn curl(port: u16, host: &str, header: &str) -> String {
    format!("curl -sS --max-time 20 -H \"{header}\" https://{host}:{port}/v1/messages")
}

#[tokio::test(flavor = "multi_thread")]
async fn the_api_sees_the_key_while_the_box_holds_only_a_placeholder() {
    let api = TlsApi::start(&["api.test", "other.test"]).await;
    let p = Paddock::start(options(&api));
    for target in ["api.test", "other.test", "127.0.0.1/32"] {
        add_rule(
            &p,
            json!({"project": "proj", "target": target, "action": "allow"}),
        )
        .await;
    }
    let port = api.port;
    set_secret(
        &p,
        REAL_KEY,
        &[
            "api",
            "--project",
            "proj",
            "--env",
            "API_KEY",
            "--bind",
            &format!("api.test:{port}=header:x-api-key: {{secret}}"),
        ],
    );
    set_secret(
        &p,
        "other-value",
        &[
            "other",
            "--project",
            "proj",
            "--bind",
            &format!("other.test:{port}=header:authorization: Bearer {{secret}}"),
        ],
    );
    let image = curl_image();
    let created = p.cli_json(&[
        "box",
        "create",
        "--project",
        "proj",
        "--id",
        "keyed",
        "--image",
        image,
        "--read-only",
        "--json",
    ]);
    assert_eq!(created["read_only"], true, "{created}");

    let placeholder = exec(&p, "keyed", "echo $API_KEY").await["stdout"]
        .as_str()
        .unwrap()
        .trim()
        .to_owned();
    assert!(placeholder.starts_with("pdk_ph_"), "{placeholder}");

    // Through the gateway the API gets the real key.
    let out = exec(&p, "keyed", &curl(port, "api.test", "x-api-key: $API_KEY")).await;
    assert_eq!(out["exit_code"], 0, "{out}");
    assert!(
        out["stdout"].as_str().unwrap().contains("api says hello"),
        "{out}"
    );
    let seen = api.seen();
    let last = seen.last().unwrap();
    assert_eq!(last.headers["x-api-key"], REAL_KEY);
    assert_eq!(
        (last.method.as_str(), last.path.as_str()),
        ("GET", "/v1/messages")
    );
    logged(&p, "keyed", &["injected"]).await;

    // The box holds the placeholder only: environment and files. (The
    // value is split in the command, so the command itself, which
    // paddock's debug log shows, does not carry it.)
    let (head, tail) = REAL_KEY.split_at(5);
    let search = format!("\"{head}\"\"{tail}\"");
    let out = exec(
        &p,
        "keyed",
        &format!("env | grep -c -F {search}; grep -r -l -F {search} /etc /tmp /workspace 2>/dev/null; echo done"),
    )
    .await;
    assert_eq!(out["stdout"].as_str().unwrap().trim(), "0\ndone", "{out}");

    // Without paddock's bundle the box cannot even finish the handshake:
    // what it trusts is what paddock gave it.
    let out = exec(
        &p,
        "keyed",
        &format!(
            "unset SSL_CERT_FILE CURL_CA_BUNDLE; {}",
            curl(port, "api.test", "x: y")
        ),
    )
    .await;
    assert_ne!(out["exit_code"], 0, "{out}");
    assert!(
        out["stderr"]
            .as_str()
            .unwrap()
            .to_lowercase()
            .contains("certificate"),
        "{out}"
    );

    // The placeholder sent to another host the gateway reads: refused,
    // reported, and nothing reached the API.
    let before = api.seen().len();
    let out = exec(&p, "keyed", &format!("curl -sS --max-time 20 -w ' %{{http_code}}' -H \"x-leak: $API_KEY\" https://other.test:{port}/")).await;
    let stdout = out["stdout"].as_str().unwrap();
    assert!(
        stdout.ends_with(" 403") && stdout.contains("secret api"),
        "{out}"
    );
    assert_eq!(api.seen().len(), before);
    logged(&p, "keyed", &["secret_misuse"]).await;

    // A new value reaches the running box at its next request.
    set_secret(&p, "sk-rotated-key", &["api", "--project", "proj"]);
    let out = exec(&p, "keyed", &curl(port, "api.test", "x-api-key: $API_KEY")).await;
    assert_eq!(out["exit_code"], 0, "{out}");
    assert_eq!(
        api.seen().last().unwrap().headers["x-api-key"],
        "sk-rotated-key"
    );

    // Listings show names, bindings and use; paddock's log no value.
    let listed = p.cli_json(&["secret", "ls", "--project", "proj", "--json"]);
    let text = listed.to_string();
    assert!(
        text.contains("API_KEY") && text.contains("x-api-key"),
        "{text}"
    );
    assert!(
        !text.contains(REAL_KEY) && !text.contains("sk-rotated"),
        "{text}"
    );
    assert!(listed["secrets"][0]["last_used_ms"].is_i64(), "{listed}");
    let log = p.log();
    for line in log.lines() {
        assert!(
            !line.contains(REAL_KEY) && !line.contains("sk-rotated-key"),
            "the server's log holds a value: {line}"
        );
    }
    let out = p.cli(&["box", "rm", "keyed"]);
    assert!(out.status.success());
}

/// Secrets over REST as scripts meet them: bad input refused with its
/// reason and nothing stored, a value never echoed, `secret:write` a
/// person's (not an agent's), listings filtered to the caller's projects.
#[tokio::test(flavor = "multi_thread")]
async fn secrets_over_rest_refuse_bad_input_and_keep_to_their_callers() {
    let p = Paddock::start(Options {
        login_profile: false,
        ..Options::default()
    });
    let url = |project: &str, name: &str| format!("/api/v1/projects/{project}/secrets/{name}");
    let bad = [
        json!({"value": "has a space"}),
        json!({"value": "ok", "env": "HTTPS_PROXY"}),
        json!({"value": "ok", "bindings": [{"hosts": ["10.0.0.1"], "header": "x: {secret}"}]}),
        json!({"value": "ok", "bindings": [{"hosts": ["a.test"], "header": "x: none"}]}),
        json!({"value": "ok", "bindings": [{"hosts": ["a.test"], "basic": "u", "query": "k"}]}),
        json!({"env": "KEY"}),
        json!({"value": 4_815_162_342_u64}),
        json!({"value": "ok", "surprise": true}),
    ];
    for body in bad {
        let (status, answer) = p.put(&url("proj", "k"), body.clone()).await;
        assert_eq!(status, 400, "{body} -> {answer}");
        assert!(
            !answer.to_string().contains("4815162342"),
            "the value is echoed: {answer}"
        );
    }
    let (status, _) = p.put(&url("proj", "a%2Fb"), json!({"value": "ok"})).await;
    assert_eq!(status, 400);
    let (_, listed) = p.get("/api/v1/secrets").await;
    assert_eq!(listed["secrets"], json!([]), "nothing was stored");

    let (status, set) = p
        .put(&url("proj", "k"), json!({"value": "v1", "env": "KEY", "bindings": [{"hosts": ["a.test"], "header": "x-key: {secret}"}]}))
        .await;
    assert_eq!(status, 200, "{set}");
    assert!(
        set.get("value").is_none() && !set.to_string().contains("\"v1\""),
        "{set}"
    );
    let (status, _) = p.put(&url("other", "k"), json!({"value": "v2"})).await;
    assert_eq!(status, 200);

    // An agent's token cannot write secrets (a binding says where a value
    // goes); a token of one project sees that project's names only.
    let (_, agent) = p.mint(&["agent"], None).await;
    let (status, _) = p
        .client_as(&agent)
        .put(format!("{}{}", p.url, url("proj", "k")))
        .json(&json!({"value": "x"}))
        .send()
        .await
        .map(|r| (r.status().as_u16(), ()))
        .unwrap();
    assert_eq!(status, 403);
    let (_, viewer) = p.mint(&["viewer"], Some(&["proj"])).await;
    let listed: serde_json::Value = p
        .client_as(&viewer)
        .get(format!("{}/api/v1/secrets", p.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let projects: Vec<&str> = listed["secrets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["project"].as_str().unwrap())
        .collect();
    assert_eq!(projects, ["proj"], "{listed}");
    let (_, writer) = p.mint(&["secret:write"], Some(&["proj"])).await;
    let status = p
        .client_as(&writer)
        .delete(format!("{}{}", p.url, url("other", "k")))
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, 403, "another project's secret");

    let (status, _) = p.delete(&url("proj", "k")).await;
    assert_eq!(status, 204);
    let (status, answer) = p.delete(&url("proj", "k")).await;
    assert_eq!(
        (status, answer["error"]["code"].as_str()),
        (404, Some("not_found")),
        "{answer}"
    );
}

/// The worked example: a forge over HTTPS (the git gate behind TLS of the
/// test's own CA), its token bound to it and never in the box; git in a
/// box clones and pushes an agent branch through the gateway, and a push
/// to `main` is refused there by an HTTP rule on the push's refs.
#[tokio::test(flavor = "multi_thread")]
async fn git_over_https_gets_its_token_at_the_gateway_and_main_is_protected() {
    use crate::common::gate_site::{ALPHA, git, ok};
    let forge = crate::common::forge::Forge::start().await;
    let p = forge.paddock("").await;
    let port = forge.port.to_string();
    set_secret(
        &p,
        ALPHA,
        &[
            "forge",
            "--project",
            "proj",
            "--bind",
            &format!("forge.test:{port}=basic:{{secret}}"),
        ],
    );
    let out = p.cli(&[
        "egress",
        "http",
        "deny",
        "forge.test",
        "POST /*.git/git-receive-pack",
        "--ref",
        "refs/heads/main",
        "--project",
        "proj",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let image = crate::common::git_image();
    p.cli_json(&[
        "box",
        "create",
        "--project",
        "proj",
        "--id",
        "coder",
        "--image",
        image,
        "--json",
    ]);

    let git_in_box = |args: &str| {
        format!(
            "cd /tmp && git -c user.name=agent -c user.email=agent@example.invalid -c protocol.version=2 {args}"
        )
    };
    let url = forge.url("alpha");
    let out = exec(&p, "coder", &git_in_box(&format!("clone -q {url} work"))).await;
    assert_eq!(out["exit_code"], 0, "clone: {out}");
    let work = |args: &str| git_in_box(&format!("-C work {args}"));
    let out = exec(&p, "coder", &work("commit -q --allow-empty -m agent")).await;
    assert_eq!(out["exit_code"], 0, "{out}");
    let out = exec(&p, "coder", &work("push -q origin HEAD:refs/heads/agent/x")).await;
    assert_eq!(out["exit_code"], 0, "push to agent/x: {out}");
    let out = exec(&p, "coder", &work("push -q origin HEAD:refs/heads/main")).await;
    assert_ne!(out["exit_code"], 0, "push to main: {out}");
    assert!(out["stderr"].as_str().unwrap().contains("403"), "{out}");

    // The forge has the agent's branch, and main as it was.
    let bare = forge.site.path("base").join("alpha.git");
    let refs = ok(git(&bare, &["for-each-ref", "--format=%(refname)"]));
    assert!(refs.contains("refs/heads/agent/x"), "{refs}");
    let main_log = ok(git(&bare, &["log", "--format=%s", "main"]));
    assert_eq!(main_log, "first");
    // The token never entered the box.
    let (head, tail) = ALPHA.split_at(6);
    let out = exec(&p, "coder", &format!("env | grep -c -F \"{head}\"\"{tail}\"; grep -r -l -F \"{head}\"\"{tail}\" /tmp; echo done")).await;
    assert_eq!(out["stdout"].as_str().unwrap().trim(), "0\ndone", "{out}");
    logged(&p, "coder", &["injected", "denied"]).await;
}

/// The sealing key comes from a systemd credential before the
/// environment, and from the environment before the data dir's file;
/// a value sealed under one key does not open under another, and a bad
/// key stops paddock with the reason (never the key).
#[tokio::test(flavor = "multi_thread")]
async fn the_secrets_key_comes_from_a_credential_or_the_environment() {
    use base64::Engine as _;
    let credentials = tempfile::tempdir().unwrap();
    let key = base64::engine::general_purpose::STANDARD.encode([7u8; 32]);
    std::fs::write(credentials.path().join("paddock-secrets-key"), &key).unwrap();
    let p = Paddock::start(Options {
        login_profile: false,
        env: vec![
            (
                "CREDENTIALS_DIRECTORY".into(),
                credentials.path().display().to_string(),
            ),
            (
                "PADDOCK_SECRETS_KEY".into(),
                base64::engine::general_purpose::STANDARD.encode([8u8; 32]),
            ),
        ],
        ..Options::default()
    });
    let log = p.log();
    assert!(
        log.contains("secrets key loaded source=Credential"),
        "{log}"
    );
    assert!(!log.contains(&key), "the key is never logged");
    assert!(
        !p.dir.path().join("data/secrets.key").exists(),
        "no file is made beside a credential"
    );
    drop(p);

    let p = Paddock::start(Options {
        login_profile: false,
        env: vec![("PADDOCK_SECRETS_KEY".into(), key.clone())],
        ..Options::default()
    });
    assert!(p.log().contains("secrets key loaded source=Environment"));
    drop(p);

    // A key that is no key: paddock stops, saying which and why.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("paddock.toml"),
        "instance = \"test-badkey\"\n",
    )
    .unwrap();
    let out = Command::new(paddock_bin())
        .args(["serve", "--listen", "127.0.0.1:0", "--config"])
        .arg(dir.path().join("paddock.toml"))
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .arg("--clearance-socket")
        .arg(dir.path().join("run/clearance.sock"))
        .env("PADDOCK_SECRETS_KEY", "c2hvcnQ=")
        .env("XDG_RUNTIME_DIR", dir.path().join("xdg"))
        .env_remove("PADDOCK_CONFIG")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("PADDOCK_SECRETS_KEY") && stderr.contains("5 bytes, not 32"),
        "{stderr}"
    );
    assert!(!stderr.contains("c2hvcnQ"), "{stderr}");
}
