//! Pulling a box's image, on the real engine, from Debian's
//! `docker-registry` on loopback with a login (htpasswd): a missing image
//! is pulled with progress streamed (REST `application/x-ndjson`) and the
//! login paddock was configured with; `always` pulls again; a registry
//! that refuses paddock's (absent) login is `pull_failed` with its words;
//! a tag the registry lacks is `image_not_found`; `never` pulls nothing.
//! Over MCP, the official Python SDK receives the pull's progress.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};

use crate::common::egress_site::exec;
use crate::common::{Options, Paddock, docker, run_python, test_image, wait_for_sync};

const USER: &str = "puller";
const PASSWORD: &str = "s3cret-pull-pw";

/// A registry on a free loopback port, with one login; the images pushed
/// to it and pulled from it are removed with it.
struct Registry {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
    pulled: Vec<String>,
}

impl Registry {
    fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let hashed = Command::new("htpasswd")
            .args(["-Bbn", USER, PASSWORD])
            .output()
            .expect("htpasswd (Debian's apache2-utils, installed by scripts/ensure-env)");
        std::fs::write(dir.path().join("htpasswd"), &hashed.stdout).unwrap();
        let config = format!(
            "version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: {root}/data\n\
             http:\n  addr: 127.0.0.1:{port}\nauth:\n  htpasswd:\n    realm: paddock-test\n    path: {root}/htpasswd\n",
            root = dir.path().display()
        );
        std::fs::write(dir.path().join("config.yml"), config).unwrap();
        let child = Command::new("docker-registry")
            .args(["serve", dir.path().join("config.yml").to_str().unwrap()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("docker-registry (Debian's, installed by scripts/ensure-env)");
        wait_for_sync("the registry to listen", Duration::from_secs(20), || {
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        Self {
            child,
            port,
            dir,
            pulled: Vec::new(),
        }
    }

    /// Pushes the test image as `name:tag` with a Docker client config of
    /// the test's own, and removes the local tag: only a pull brings it.
    fn push(&mut self, name: &str) -> String {
        let image = format!("127.0.0.1:{}/{name}", self.port);
        let config = self.dir.path().join("docker-config");
        let config = config.to_str().unwrap();
        assert!(docker(&["tag", test_image(), &image]).status.success());
        let mut login = Command::new("docker")
            .args(["--config", config, "login", "-u", USER, "--password-stdin"])
            .arg(format!("127.0.0.1:{}", self.port))
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        use std::io::Write;
        login
            .stdin
            .take()
            .unwrap()
            .write_all(PASSWORD.as_bytes())
            .unwrap();
        assert!(login.wait().unwrap().success(), "docker login");
        let pushed = Command::new("docker")
            .args(["--config", config, "push", &image])
            .output()
            .unwrap();
        assert!(
            pushed.status.success(),
            "{}",
            String::from_utf8_lossy(&pushed.stderr)
        );
        assert!(docker(&["rmi", &image]).status.success());
        self.pulled.push(image.clone());
        image
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        for image in &self.pulled {
            let _ = docker(&["rmi", "-f", image]);
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn options(registry: &Registry, with_login: bool) -> Options {
    let password_file = registry.dir.path().join("password");
    std::fs::write(&password_file, format!("{PASSWORD}\n")).unwrap();
    let login = if with_login {
        format!(
            "[[registries]]\nserver = \"127.0.0.1:{}\"\nusername = \"{USER}\"\npassword_file = \"{}\"\n",
            registry.port,
            password_file.display()
        )
    } else {
        String::new()
    };
    Options {
        login_profile: false,
        extra_toml: login,
        env: vec![("PADDOCK_BOXES__PULL".into(), "missing".into())],
        ..Options::default()
    }
}

/// A create asked for as a stream: its lines, parsed.
async fn streamed_create(p: &Paddock, body: Value) -> Vec<Value> {
    let response = p
        .http
        .post(format!("{}/api/v1/boxes", p.url))
        .header("accept", "application/x-ndjson")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/x-ndjson");
    let text = response.text().await.unwrap();
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_missing_image_is_pulled_with_the_configured_login_and_its_progress_shown() {
    let mut registry = Registry::start();
    let image = registry.push(&format!("paddock-pull-{}:one", std::process::id()));
    let p = Paddock::start(options(&registry, true));

    let lines = streamed_create(
        &p,
        json!({"project": "proj", "box_id": "pulled", "image": image}),
    )
    .await;
    let (last, progress) = lines.split_last().unwrap();
    assert_eq!(last["created"]["box_id"], "pulled", "{lines:?}");
    assert!(
        !progress.is_empty(),
        "the pull's progress is streamed: {lines:?}"
    );
    assert!(progress.iter().all(|l| l.get("progress").is_some()));
    let final_reading = &progress.last().unwrap()["progress"];
    assert!(
        final_reading["layers_total"].as_u64().unwrap() >= 1,
        "{final_reading}"
    );
    let out = exec(&p, "pulled", "echo from-the-registry").await;
    assert_eq!(out["stdout"], "from-the-registry\n", "{out}");

    // `always` pulls again through the CLI (the image is already here);
    // `never` would not have pulled it at all.
    let out = p.cli(&[
        "box",
        "create",
        "--project",
        "proj",
        "--id",
        "again",
        "--image",
        &image,
        "--pull",
        "always",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "again");
    assert!(
        p.log().matches("pulling the box's image").count() >= 2,
        "both creates pulled"
    );
    assert!(!p.log().contains(PASSWORD), "the password is never logged");

    // Over MCP, a pull is told through progress notifications (the
    // official SDK's progress callback).
    let out = run_python(
        "mcp_client.py",
        &json!({"url": format!("{}/mcp", p.url), "token": p.admin_token, "calls": [
            ["create_box", {"project": "proj", "box_id": "by-mcp", "image": image, "pull": "always"}],
        ]}),
    );
    let result = &out["results"][0];
    assert_eq!(result["structured"]["box_id"], "by-mcp", "{result}");
    let notes = result["progress"].as_array().unwrap();
    assert!(!notes.is_empty(), "progress notifications: {result}");
    assert!(
        notes[0]["message"]
            .as_str()
            .unwrap()
            .contains("pulling the image"),
        "{result}"
    );

    // A tag the registry lacks: named, nothing made.
    let missing = format!("127.0.0.1:{}/paddock-pull-none:never", registry.port);
    let (status, body) = p
        .post(
            "/api/v1/boxes",
            json!({"project": "proj", "box_id": "lacking", "image": missing}),
        )
        .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"]["code"], "image_not_found");
    assert_eq!(p.get("/api/v1/boxes/lacking").await.0, 404);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_registry_that_refuses_the_login_is_named_and_never_is_never() {
    let mut registry = Registry::start();
    let image = registry.push(&format!("paddock-pull-{}:two", std::process::id()));
    let p = Paddock::start(options(&registry, false));

    // `never`: the image is not here, and nothing is pulled.
    let (status, body) = p
        .post(
            "/api/v1/boxes",
            json!({"project": "proj", "box_id": "kept-out", "image": image, "pull": "never"}),
        )
        .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"]["code"], "image_not_found");

    // No login for this registry: its refusal, in its words, streamed as
    // the plain request would answer.
    let lines = streamed_create(
        &p,
        json!({"project": "proj", "box_id": "refused", "image": image}),
    )
    .await;
    let last = lines.last().unwrap();
    assert_eq!(last["error"]["code"], "pull_failed", "{lines:?}");
    assert_eq!(last["status"], 502);
    let message = last["error"]["message"].as_str().unwrap();
    assert!(message.contains(&image), "{message}");
    assert!(message.contains("auth"), "the registry's words: {message}");
    assert_eq!(p.get("/api/v1/boxes/refused").await.0, 404);
    assert_eq!(p.docker_objects().0, Vec::<String>::new());
}
