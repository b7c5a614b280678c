//! The standalone git gate under test: bare repositories, a token file,
//! `paddock gate --detach` on a free port, and raw HTTP exchanges.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use super::paddock_bin;

pub const ALPHA: &str = "tok-alpha-aaaaaaaaaaaaaaaaaaaaaaaa";
pub const BETA: &str = "tok-beta-bbbbbbbbbbbbbbbbbbbbbbbbbb";
pub const ADMIN: &str = "tok-admin-cccccccccccccccccccccccc";

/// git with no user or system config of this machine, and no prompts.
pub fn git(dir: &Path, args: &[&str]) -> Output {
    Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_TERMINAL_PROMPT", "0")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("HOME", dir)
        .env("GIT_AUTHOR_NAME", "t")
        .env("GIT_AUTHOR_EMAIL", "t@example.invalid")
        .env("GIT_COMMITTER_NAME", "t")
        .env("GIT_COMMITTER_EMAIL", "t@example.invalid")
        .output()
        .unwrap()
}

pub fn ok(out: Output) -> String {
    assert!(
        out.status.success(),
        "git failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

pub struct Site {
    pub dir: tempfile::TempDir,
}

impl Site {
    /// Bare repositories alpha (one commit on main) and beta, a token file.
    pub fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path().join("base");
        std::fs::create_dir(&base).unwrap();
        for p in ["alpha", "beta"] {
            ok(git(
                &base,
                &["init", "-q", "--bare", "-b", "main", &format!("{p}.git")],
            ));
        }
        let src = dir.path().join("src");
        std::fs::create_dir(&src).unwrap();
        ok(git(&src, &["init", "-q", "-b", "main"]));
        ok(git(&src, &["commit", "-q", "--allow-empty", "-m", "first"]));
        ok(git(
            &src,
            &[
                "push",
                "-q",
                base.join("alpha.git").to_str().unwrap(),
                "main",
            ],
        ));
        let site = Self { dir };
        site.write_tokens(&[(ALPHA, "alpha"), (BETA, "beta")]);
        site
    }

    pub fn path(&self, p: &str) -> PathBuf {
        self.dir.path().join(p)
    }

    pub fn write_tokens(&self, tokens: &[(&str, &str)]) {
        let map: serde_json::Map<String, serde_json::Value> = tokens
            .iter()
            .map(|(t, p)| (t.to_string(), serde_json::json!({"project": p})))
            .collect();
        std::fs::write(
            self.path("tokens.json"),
            serde_json::Value::Object(map).to_string(),
        )
        .unwrap();
    }

    pub fn base_args(&self) -> Vec<String> {
        vec![
            "gate".into(),
            "--base-path".into(),
            self.path("base").display().to_string(),
            "--token-file".into(),
            self.path("tokens.json").display().to_string(),
            "--audit-log".into(),
            self.path("audit.jsonl").display().to_string(),
        ]
    }

    /// Clones `url` into `work/a` (a box's checkout) and returns its path.
    pub fn checkout(&self, url: &str) -> PathBuf {
        let work = self.path("work");
        std::fs::create_dir(&work).unwrap();
        ok(git(&work, &["clone", "-q", url, "a"]));
        work.join("a")
    }

    /// `paddock gate --inetd` serving the one connection `conn`.
    pub fn inetd(&self, conn: std::os::unix::net::UnixStream) -> std::process::Child {
        Command::new(paddock_bin())
            .args(self.base_args())
            .arg("--inetd")
            .env("TMPDIR", self.dir.path())
            .stdin(Stdio::from(std::os::fd::OwnedFd::from(conn)))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    }

    pub fn audit(&self) -> Vec<serde_json::Value> {
        std::fs::read_to_string(self.path("audit.jsonl"))
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }
}

/// `paddock gate --detach` on a free port; killed on drop.
pub struct Daemon {
    pub addr: String,
    pub pid: i32,
}

impl Daemon {
    pub fn start(site: &Site, extra: &[&str]) -> Self {
        Self::launch(site, site.base_args(), extra)
    }

    /// Starts the gate with `args` (a `Site::base_args`, possibly trimmed)
    /// plus the daemon flags and `extra`.
    pub fn launch(site: &Site, args: Vec<String>, extra: &[&str]) -> Self {
        Self::launch_bin(site, Path::new(paddock_bin()), args, extra)
    }

    /// As `launch`, running the paddock binary at `bin`.
    pub fn launch_bin(site: &Site, bin: &Path, mut args: Vec<String>, extra: &[&str]) -> Self {
        args.extend(["--detach", "--port", "0", "--admin-token", ADMIN].map(String::from));
        args.extend(extra.iter().map(|s| s.to_string()));
        args.push("--pid-file".into());
        args.push(site.path("gate.pid").display().to_string());
        let out = super::while_text_busy(|| {
            Command::new(bin)
                .args(&args)
                .env("TMPDIR", site.dir.path())
                .stderr(Stdio::null())
                .output()
        })
        .unwrap();
        assert!(out.status.success(), "gate did not start");
        let line = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        let addr = line
            .strip_prefix("paddock gate: listening on ")
            .and_then(|r| r.split(' ').next())
            .unwrap_or_else(|| panic!("unexpected: {line}"))
            .to_owned();
        let pid: i32 = std::fs::read_to_string(site.path("gate.pid"))
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        Self { addr, pid }
    }

    pub fn url(&self, token: Option<&str>, repo: &str) -> String {
        match token {
            Some(t) => format!("http://{t}@{}/{repo}.git", self.addr),
            None => format!("http://{}/{repo}.git", self.addr),
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = Command::new("kill").arg(self.pid.to_string()).status();
    }
}

/// One raw HTTP/1.1 exchange; returns the status code and the whole answer.
pub fn raw(addr: &str, request: &str) -> (u16, String) {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(request.as_bytes()).unwrap();
    let mut answer = String::new();
    let _ = s.read_to_string(&mut answer);
    let code = answer
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (code, answer)
}

pub fn get(addr: &str, path: &str, auth: Option<&str>) -> (u16, String) {
    use base64::Engine as _;
    let auth = auth
        .map(|t| {
            format!(
                "Authorization: Basic {}\r\n",
                base64::engine::general_purpose::STANDARD.encode(format!("{t}:x"))
            )
        })
        .unwrap_or_default();
    raw(
        addr,
        &format!("GET {path} HTTP/1.1\r\nHost: x\r\n{auth}Connection: close\r\n\r\n"),
    )
}

/// Copies the paddock binary to `dir/paddock`, so a test may move or
/// replace it under a running process, as an upgrade does.
pub fn own_copy_of_paddock(dir: &Path) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let bin = dir.join("paddock");
    std::fs::copy(paddock_bin(), &bin).unwrap();
    bin
}

/// What an upgrade does to a running program's file: moves it away, puts
/// another program in its place, then deletes the old one. The new one
/// here accepts every push, were it ever run as a hook.
pub fn upgrade_under_it(bin: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let old = bin.with_extension("old");
    std::fs::rename(bin, &old).unwrap();
    std::fs::write(bin, "#!/bin/sh\nexit 0\n").unwrap();
    std::fs::set_permissions(bin, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::remove_file(&old).unwrap();
}
