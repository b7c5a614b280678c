//! Test harness: a real `paddock serve` process against the real Docker
//! engine, with its own data dir and instance label, cleaned up on drop
//! (also when the test fails).

pub mod activation;
pub mod clients;
pub mod console;
pub mod driven;
pub mod egress_site;
mod engine;
pub mod forge;
pub mod gate_site;
mod http;
pub mod images;
pub mod issuer;
mod python;
pub mod terok;
pub mod tls_site;

pub use activation::activation_url;
use engine::lines;
pub use engine::{docker, inspect, network_of, sweep};
use http::status_json;
pub use http::{authorised_client, http, raw_http};
pub use images::{
    TEST_IMAGE, agent_image, agent_profiles_held_toml, git_image, networked_login_toml,
    shell_image, test_image,
};
pub use python::{python, run_python};

/// Every capability name but one: what a token one capability short holds.
pub fn all_capabilities_but(c: paddock_iam::Capability) -> Vec<&'static str> {
    paddock_iam::Capability::ALL
        .into_iter()
        .filter(|x| *x != c)
        .map(paddock_iam::Capability::as_str)
        .collect()
}

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;

/// Both appear in the fake login's authorize URL / are its accepted code;
/// neither may ever show up outside the activation page and the box.
pub const URL_SECRET: &str = "st4te-s3cret";
pub const GOOD_CODE: &str = "let-me-in";

pub fn paddock_bin() -> &'static str {
    env!("CARGO_BIN_EXE_paddock")
}

pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// Polls `check` until it yields a value or the deadline passes.
pub async fn wait_for<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Options for one paddock under test.
#[derive(Clone)]
pub struct Options {
    /// Extra TOML appended to the generated config.
    pub extra_toml: String,
    pub ttl_secs: u64,
    pub max_boxes: u32,
    pub docker_host: Option<String>,
    pub login_profile: bool,
    pub env: Vec<(String, String)>,
    /// Run this paddock binary instead of the one cargo built (a copy a
    /// test may move or replace under the running server).
    pub binary: Option<PathBuf>,
    /// Leave `instance` out of the configuration, as a user at the
    /// defaults does; the harness learns the generated one from the log.
    pub default_instance: bool,
    /// Run as a spoke of a hub (`paddock spoke --hub …`): a whole paddock
    /// of its own (store, instance, hub socket, API), linked to the hub.
    pub spoke_of: Option<SpokeOf>,
}

/// The hub a spoke under test dials, and what `paddock spoke enroll`
/// wrote for it.
#[derive(Clone)]
pub struct SpokeOf {
    pub hub: String,
    pub dir: PathBuf,
    pub max_boxes: u32,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            extra_toml: String::new(),
            ttl_secs: 300,
            max_boxes: 32,
            docker_host: None,
            login_profile: true,
            env: Vec::new(),
            binary: None,
            default_instance: false,
            spoke_of: None,
        }
    }
}

pub struct Paddock {
    pub dir: tempfile::TempDir,
    pub instance: String,
    pub url: String,
    /// The admin token handed to this paddock (`PADDOCK_ADMIN_TOKEN`); the
    /// harness's client and CLI calls use it.
    pub admin_token: String,
    child: Option<Child>,
    pub options: Options,
    listen: String,
    pub http: reqwest::Client,
}

impl Paddock {
    pub fn start(options: Options) -> Self {
        static SEQ: AtomicU32 = AtomicU32::new(0);
        let image = test_image();
        let instance = format!(
            "test-{}-{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        );
        let dir = tempfile::tempdir().unwrap();
        let profile = if options.login_profile {
            format!(
                "[[profiles]]\nimage = \"{image}\"\nlogin_command = [\"/usr/local/bin/fake-login\"]\n\
                 url_pattern = 'https://auth\\.paddock\\.test/\\S+'\n"
            )
        } else {
            String::new()
        };
        let named = if options.default_instance {
            String::new()
        } else {
            format!("instance = \"{instance}\"\n")
        };
        // Images are never pulled unless a test says so (and then only
        // from its own registry on loopback): a missing image must not
        // send the engine to Docker Hub.
        let config = format!(
            "{named}{extra}\n[boxes]\ndefault_image = \"{image}\"\nmax_boxes = {max}\npull = \"never\"\n\
             memory_mib = 256\ncpus = 0.5\npids_limit = 64\n\
             [activation]\nttl_secs = {ttl}\nreap_interval_secs = 1\nurl_timeout_secs = 10\n{profile}",
            extra = options.extra_toml,
            max = options.max_boxes,
            ttl = options.ttl_secs,
        );
        std::fs::write(dir.path().join("paddock.toml"), config).unwrap();
        let admin_token = format!("test-admin-{instance}-{}", "a".repeat(24));
        let mut p = Self {
            dir,
            instance,
            url: String::new(),
            http: authorised_client(&admin_token),
            admin_token,
            child: None,
            options,
            listen: "127.0.0.1:0".into(),
        };
        p.spawn();
        p
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("paddock.log")
    }

    /// Each paddock under test has its own hub socket (the default path is
    /// one per machine).
    pub fn clearance_socket(&self) -> PathBuf {
        self.dir.path().join("run/clearance.sock")
    }

    /// The `XDG_RUNTIME_DIR` this paddock runs with: the hub socket terok's
    /// clients discover lives under it (and goes with the test's dir).
    pub fn runtime_dir(&self) -> PathBuf {
        self.dir.path().join("xdg")
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .unwrap();
        let bin = self
            .options
            .binary
            .clone()
            .unwrap_or_else(|| PathBuf::from(paddock_bin()));
        let mut cmd = Command::new(bin);
        match &self.options.spoke_of {
            Some(spoke) => cmd
                .args(["spoke", "--hub", &spoke.hub, "--max-boxes"])
                .arg(spoke.max_boxes.to_string())
                .arg("--dir")
                .arg(&spoke.dir),
            None => cmd.arg("serve"),
        };
        cmd.arg("--config")
            .arg(self.dir.path().join("paddock.toml"))
            .arg("--data-dir")
            .arg(self.dir.path().join("data"))
            .arg("--listen")
            .arg(&self.listen)
            .arg("--clearance-socket")
            .arg(self.clearance_socket())
            .env("PADDOCK_LOG", "debug")
            .env("PADDOCK_ADMIN_TOKEN", &self.admin_token)
            .env("XDG_RUNTIME_DIR", self.runtime_dir())
            .env_remove("PADDOCK_CONFIG")
            .stdout(Stdio::piped())
            .stderr(log);
        if let Some(host) = &self.options.docker_host {
            cmd.arg("--docker-host").arg(host);
        }
        for (k, v) in &self.options.env {
            cmd.env(k, v);
        }
        let mut child = while_text_busy(|| cmd.spawn()).expect("paddock starts");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            if let Some(Ok(line)) = lines.next() {
                let _ = tx.send(line);
            }
            for _ in lines {}
        });
        let line = rx
            .recv_timeout(Duration::from_secs(60))
            .unwrap_or_else(|_| panic!("paddock did not start; log:\n{}", self.log()));
        self.url = line
            .strip_prefix("paddock: listening on ")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
            .to_owned();
        // A restart must come back on the same address: activation links
        // and clients hold it.
        self.listen = self
            .url
            .trim_start_matches("http://")
            .trim_start_matches("https://")
            .to_owned();
        self.child = Some(child);
        if self.options.default_instance {
            self.instance = self.logged_instance();
        }
    }

    /// The instance the server says it is ("paddock serving instance=…").
    fn logged_instance(&self) -> String {
        let log = self.log();
        let line = log
            .lines()
            .rev()
            .find(|l| l.contains("paddock serving"))
            .unwrap_or_else(|| panic!("no serving line in the log:\n{log}"));
        let plain: String = strip_ansi(line);
        plain
            .split("instance=")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .map(|v| v.trim_matches('"').to_owned())
            .unwrap_or_else(|| panic!("no instance in {plain:?}"))
    }

    /// Sends the server a signal (`HUP`, `TERM`, …) and goes on.
    pub fn signal(&self, name: &str) {
        let pid = self.child.as_ref().expect("running").id();
        let sent = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(pid.to_string())
            .status()
            .unwrap();
        assert!(sent.success());
    }

    /// The server's exit status, if it has ended.
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child
            .as_mut()
            .and_then(|c| c.try_wait().ok().flatten())
    }

    /// SIGKILL, no chance to clean up.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM and wait: the clean stop.
    pub fn stop(&mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("running");
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(child.id().to_string())
            .status();
        child.wait().unwrap()
    }

    pub fn restart(&mut self) {
        // Pooled connections died with the old process.
        self.http = authorised_client(&self.admin_token);
        self.spawn();
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        let r = self
            .http
            .get(format!("{}{path}", self.url))
            .send()
            .await
            .unwrap();
        status_json(r).await
    }

    /// A GET's body as text, as the admin (`/metrics`, say).
    pub async fn get_text(&self, path: &str) -> String {
        let r = self
            .http
            .get(format!("{}{path}", self.url))
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "GET {path}: {}", r.status());
        r.text().await.unwrap()
    }

    pub async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        let r = self
            .http
            .post(format!("{}{path}", self.url))
            .json(&body)
            .send()
            .await
            .unwrap();
        status_json(r).await
    }

    pub async fn put(&self, path: &str, body: Value) -> (u16, Value) {
        let r = self
            .http
            .put(format!("{}{path}", self.url))
            .json(&body)
            .send()
            .await
            .unwrap();
        status_json(r).await
    }

    pub async fn delete(&self, path: &str) -> (u16, Value) {
        let r = self
            .http
            .delete(format!("{}{path}", self.url))
            .send()
            .await
            .unwrap();
        status_json(r).await
    }

    /// Runs the `paddock` CLI against this server, as its admin.
    pub fn cli(&self, args: &[&str]) -> std::process::Output {
        self.cli_as(&self.admin_token, args)
    }

    pub fn cli_as(&self, token: &str, args: &[&str]) -> std::process::Output {
        Command::new(paddock_bin())
            .args(args)
            .env("PADDOCK_URL", &self.url)
            .env("PADDOCK_TOKEN", token)
            .output()
            .unwrap()
    }

    /// A GET as the holder of `token`: its status and JSON body.
    pub async fn get_as(&self, token: &str, path: &str) -> (u16, Value) {
        let r = self
            .client_as(token)
            .get(format!("{}{path}", self.url))
            .send()
            .await
            .unwrap();
        status_json(r).await
    }

    /// A client that sends this token on every request.
    pub fn client_as(&self, token: &str) -> reqwest::Client {
        authorised_client(token)
    }

    /// Mints a token through the API; returns (id, secret).
    pub async fn mint(&self, capabilities: &[&str], projects: Option<&[&str]>) -> (String, String) {
        let mut body = serde_json::json!({"name": "test", "capabilities": capabilities});
        if let Some(p) = projects {
            body["projects"] = serde_json::json!(p);
        }
        let (status, created) = self.post("/api/v1/tokens", body).await;
        assert_eq!(status, 201, "{created}");
        (
            created["token"]["id"].as_str().unwrap().to_owned(),
            created["secret"].as_str().unwrap().to_owned(),
        )
    }

    /// This instance's containers, by name, and its box networks in use,
    /// each named by the container attached to it. Idle pool networks
    /// (spares) are left out; see [`Paddock::idle_networks`].
    /// The CLI's `--json` answer to `args`, which must succeed.
    pub fn cli_json(&self, args: &[&str]) -> Value {
        let out = self.cli(args);
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    }

    /// The name of box `box_id`'s container (it carries the instance).
    pub fn container(&self, box_id: &str) -> String {
        format!("paddock-{}-{box_id}", self.instance)
    }

    pub fn docker_objects(&self) -> (Vec<String>, Vec<String>) {
        let filter = format!("label=paddock.instance={}", self.instance);
        let out = docker(&["ps", "-a", "--filter", &filter, "--format", "{{.Names}}"]);
        let mut containers: Vec<String> = lines(&out.stdout);
        containers.sort();
        let mut networks: Vec<String> = self
            .network_attachments()
            .into_iter()
            .filter(|a| !a.is_empty())
            .collect();
        networks.sort();
        (containers, networks)
    }

    /// This instance's networks no container is attached to.
    pub fn idle_networks(&self) -> usize {
        self.network_attachments()
            .iter()
            .filter(|a| a.is_empty())
            .count()
    }

    fn network_attachments(&self) -> Vec<String> {
        let filter = format!("label=paddock.instance={}", self.instance);
        let ids = docker(&["network", "ls", "-q", "--filter", &filter]);
        lines(&ids.stdout)
            .iter()
            .map(|id| {
                let out = docker(&[
                    "network",
                    "inspect",
                    "-f",
                    "{{range .Containers}}{{.Name}} {{end}}",
                    id,
                ]);
                String::from_utf8_lossy(&out.stdout).trim().to_owned()
            })
            .collect()
    }
}

impl Drop for Paddock {
    fn drop(&mut self) {
        self.kill9();
        sweep(&self.instance);
    }
}

/// Runs `start` (a spawn) again while the program's file is busy: a
/// binary the test has just copied may still be open for writing in a
/// child another test forked meanwhile (until that child execs), and
/// exec then fails with ETXTBSY. Within a deadline; any other error is
/// returned at once.
pub fn while_text_busy<T>(mut start: impl FnMut() -> std::io::Result<T>) -> std::io::Result<T> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match start() {
            Err(e)
                if e.kind() == std::io::ErrorKind::ExecutableFileBusy
                    && Instant::now() < deadline =>
            {
                std::thread::sleep(Duration::from_millis(20));
            }
            other => return other,
        }
    }
}

/// Polls a synchronous condition until it holds or the deadline passes.
pub fn wait_for_sync(what: &str, timeout: Duration, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Text without terminal colour sequences (ESC [ … m).
pub fn strip_ansi(s: &str) -> String {
    let mut out = String::new();
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Waits (with a deadline) until the box is in `state`.
pub async fn wait_for_state(p: &Paddock, box_id: &str, state: &str) {
    wait_for(
        &format!("box {box_id} to be {state}"),
        Duration::from_secs(20),
        || async {
            let (_, got) = p.get(&format!("/api/v1/boxes/{box_id}")).await;
            (got["state"] == state).then_some(())
        },
    )
    .await;
}
