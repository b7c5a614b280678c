//! The standalone git gate with real git: daemon and inetd modes, tokens,
//! push policy, traversal attempts and misbehaving peers.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::paddock_bin;

const ALPHA: &str = "tok-alpha-aaaaaaaaaaaaaaaaaaaaaaaa";
const BETA: &str = "tok-beta-bbbbbbbbbbbbbbbbbbbbbbbbbb";
const ADMIN: &str = "tok-admin-cccccccccccccccccccccccc";

/// git with no user or system config of this machine, and no prompts.
fn git(dir: &Path, args: &[&str]) -> Output {
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

fn ok(out: Output) -> String {
    assert!(
        out.status.success(),
        "git failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

struct Site {
    dir: tempfile::TempDir,
}

impl Site {
    /// Bare repositories alpha (one commit on main) and beta, a token file.
    fn new() -> Self {
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

    fn path(&self, p: &str) -> PathBuf {
        self.dir.path().join(p)
    }

    fn write_tokens(&self, tokens: &[(&str, &str)]) {
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

    fn base_args(&self) -> Vec<String> {
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

    fn audit(&self) -> Vec<serde_json::Value> {
        std::fs::read_to_string(self.path("audit.jsonl"))
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }
}

/// `paddock gate --detach` on a free port; killed on drop.
struct Daemon {
    addr: String,
    pid: i32,
}

impl Daemon {
    fn start(site: &Site, extra: &[&str]) -> Self {
        let mut args = site.base_args();
        args.extend(["--detach", "--port", "0", "--admin-token", ADMIN].map(String::from));
        args.extend(extra.iter().map(|s| s.to_string()));
        args.push("--pid-file".into());
        args.push(site.path("gate.pid").display().to_string());
        let out = Command::new(paddock_bin())
            .args(&args)
            .env("TMPDIR", site.dir.path())
            .stderr(Stdio::null())
            .output()
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

    fn url(&self, token: Option<&str>, repo: &str) -> String {
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
fn raw(addr: &str, request: &str) -> (u16, String) {
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

fn get(addr: &str, path: &str, auth: Option<&str>) -> (u16, String) {
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

#[test]
fn clone_fetch_and_push_under_the_default_policy() {
    let site = Site::new();
    let gate = Daemon::start(&site, &[]);
    let work = site.path("work");
    std::fs::create_dir(&work).unwrap();
    ok(git(
        &work,
        &["clone", "-q", &gate.url(Some(ALPHA), "alpha"), "a"],
    ));
    let a = work.join("a");
    assert_eq!(ok(git(&a, &["log", "--format=%s"])), "first");

    // Someone with the admin token moves main on; the box fetches it.
    ok(git(
        &site.path("src"),
        &["commit", "-q", "--allow-empty", "-m", "second"],
    ));
    ok(git(
        &site.path("src"),
        &["push", "-q", &gate.url(Some(ADMIN), "alpha"), "main"],
    ));
    ok(git(&a, &["fetch", "-q", "origin"]));
    assert_eq!(
        ok(git(&a, &["log", "--format=%s", "origin/main"])),
        "second\nfirst"
    );

    // main is not the box's to write (even fast-forward); agent/* is.
    ok(git(&a, &["merge", "-q", "--ff-only", "origin/main"]));
    ok(git(
        &a,
        &["commit", "-q", "--allow-empty", "-m", "agent work"],
    ));
    let refused = git(&a, &["push", "origin", "HEAD:main"]);
    assert!(!refused.status.success());
    assert!(
        stderr(&refused).contains("refs/heads/main is not writable from here"),
        "{}",
        stderr(&refused)
    );
    ok(git(&a, &["push", "-q", "origin", "HEAD:agent/fix"]));

    // No rewriting and no deleting under the default policy.
    ok(git(
        &a,
        &[
            "commit",
            "-q",
            "--amend",
            "--allow-empty",
            "-m",
            "rewritten",
        ],
    ));
    let forced = git(&a, &["push", "-f", "origin", "HEAD:agent/fix"]);
    assert!(
        stderr(&forced).contains("force-pushing refs/heads/agent/fix is not allowed"),
        "{}",
        stderr(&forced)
    );
    let deleted = git(&a, &["push", "origin", ":agent/fix"]);
    assert!(
        stderr(&deleted).contains("deleting refs/heads/agent/fix is not allowed"),
        "{}",
        stderr(&deleted)
    );

    let outcomes: Vec<(String, String)> = site
        .audit()
        .iter()
        .map(|r| {
            (
                r["ref"].as_str().unwrap().to_owned(),
                r["outcome"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        outcomes,
        [
            ("refs/heads/main", "accepted"),
            ("refs/heads/main", "refused"),
            ("refs/heads/agent/fix", "accepted"),
            ("refs/heads/agent/fix", "refused"),
            ("refs/heads/agent/fix", "refused"),
        ]
        .map(|(a, b)| (a.to_owned(), b.to_owned()))
    );
    let audit = site.audit();
    assert_eq!(audit[0]["principal"], "admin");
    assert!(
        audit[2]["principal"]
            .as_str()
            .unwrap()
            .starts_with("token:")
    );
    assert_eq!(audit[2]["old"], "0000000000000000000000000000000000000000");
    assert_eq!(audit[2]["project"], "alpha");
    assert!(
        !std::fs::read_to_string(site.path("audit.jsonl"))
            .unwrap()
            .contains(ALPHA),
        "no token in the audit"
    );
}

#[test]
fn force_and_delete_with_backups_when_allowed() {
    let site = Site::new();
    let gate = Daemon::start(&site, &["--force", "backup", "--delete", "backup"]);
    let work = site.path("work");
    std::fs::create_dir(&work).unwrap();
    ok(git(
        &work,
        &["clone", "-q", &gate.url(Some(ALPHA), "alpha"), "a"],
    ));
    let a = work.join("a");
    ok(git(&a, &["commit", "-q", "--allow-empty", "-m", "v1"]));
    ok(git(&a, &["push", "-q", "origin", "HEAD:agent/x"]));
    let v1 = ok(git(&a, &["rev-parse", "HEAD"]));
    ok(git(
        &a,
        &["commit", "-q", "--amend", "--allow-empty", "-m", "v2"],
    ));
    let forced = git(&a, &["push", "-f", "origin", "HEAD:agent/x"]);
    assert!(forced.status.success(), "{}", stderr(&forced));
    assert!(
        stderr(&forced)
            .contains("saved the old refs/heads/agent/x as refs/paddock/backup/heads/agent/x/")
    );
    let v2 = ok(git(&a, &["rev-parse", "HEAD"]));
    ok(git(&a, &["push", "-q", "origin", ":agent/x"]));

    let bare = site.path("base/alpha.git");
    let backups = ok(git(
        &bare,
        &[
            "for-each-ref",
            "--format=%(objectname)",
            "refs/paddock/backup/",
        ],
    ));
    let mut backups: Vec<&str> = backups.lines().collect();
    backups.sort();
    let mut expected = vec![v1.as_str(), v2.as_str()];
    expected.sort();
    assert_eq!(
        backups, expected,
        "the old tips of the force push and the deletion"
    );
    assert!(
        git(
            &bare,
            &["rev-parse", "--verify", "-q", "refs/heads/agent/x"]
        )
        .stdout
        .is_empty()
    );
    let outcomes: Vec<String> = site
        .audit()
        .iter()
        .map(|r| r["outcome"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        outcomes,
        ["accepted", "backed_up", "accepted", "backed_up", "accepted"]
    );
}

#[test]
fn tokens_decide_who_sees_what() {
    let site = Site::new();
    let gate = Daemon::start(&site, &[]);
    let refs = "/alpha.git/info/refs?service=git-upload-pack";

    let (code, answer) = get(&gate.addr, refs, None);
    assert_eq!(code, 401);
    assert!(
        answer.contains("www-authenticate: Basic realm=\"paddock git gate\""),
        "{answer}"
    );
    assert_eq!(
        get(&gate.addr, refs, Some("tok-wrong-dddddddddddddddddddddd")).0,
        401
    );
    assert_eq!(get(&gate.addr, refs, Some(ALPHA)).0, 200);
    // Another project's repository looks exactly like a missing one.
    let (other, other_body) = get(&gate.addr, refs, Some(BETA));
    let (missing, missing_body) = get(
        &gate.addr,
        "/gamma.git/info/refs?service=git-upload-pack",
        Some(BETA),
    );
    assert_eq!((other, missing), (404, 404));
    assert_eq!(
        other_body.split("\r\n\r\n").nth(1),
        missing_body.split("\r\n\r\n").nth(1)
    );
    assert_eq!(
        get(
            &gate.addr,
            "/beta.git/info/refs?service=git-upload-pack",
            Some(ADMIN)
        )
        .0,
        200
    );
    assert_eq!(get(&gate.addr, refs, Some(ADMIN)).0, 200);

    // git itself: no credentials → it is asked for some (and cannot prompt).
    let denied = git(site.dir.path(), &["ls-remote", &gate.url(None, "alpha")]);
    assert!(
        stderr(&denied).contains("could not read Username"),
        "{}",
        stderr(&denied)
    );

    // The token file changes while the gate runs.
    let new = "tok-alpha-new-eeeeeeeeeeeeeeeeeeee";
    site.write_tokens(&[(new, "alpha")]);
    common::wait_for_sync("the new token", Duration::from_secs(10), || {
        get(&gate.addr, refs, Some(new)).0 == 200
    });
    assert_eq!(
        get(&gate.addr, refs, Some(ALPHA)).0,
        401,
        "a removed token stops working"
    );
}

#[test]
fn nothing_outside_the_smart_http_endpoints_is_served() {
    let site = Site::new();
    let outside = site.path("outside.git");
    ok(git(
        site.dir.path(),
        &["init", "-q", "--bare", outside.to_str().unwrap()],
    ));
    std::os::unix::fs::symlink(&outside, site.path("base/escape.git")).unwrap();
    let gate = Daemon::start(&site, &[]);
    for path in [
        "/alpha.git/HEAD",
        "/alpha.git/config",
        "/alpha.git/objects/info/packs",
        "/alpha.git/../../tokens.json",
        "/../tokens.json",
        "/%2e%2e/base/alpha.git/info/refs?service=git-upload-pack",
        "/alpha.git/info/refs?service=git-upload-archive",
        "/alpha.git/info/refs",
        "/escape.git/info/refs?service=git-upload-pack",
        "/ALPHA.git/info/refs?service=git-upload-pack",
        "/al%70ha.git/info/refs?service=git-upload-pack",
        "//etc/passwd.git/info/refs?service=git-upload-pack",
        "/base/alpha.git/info/refs?service=git-upload-pack",
    ] {
        let (code, answer) = get(&gate.addr, path, Some(ADMIN));
        assert_eq!(code, 404, "{path}: {answer}");
        assert!(
            !answer.contains("ref: refs/heads") && !answer.contains("project"),
            "{path} leaked: {answer}"
        );
    }
    let (code, _) = raw(&gate.addr, "GARBAGE\r\n\r\n");
    assert!(code == 400 || code == 0, "malformed request: {code}");
    assert_eq!(
        get(
            &gate.addr,
            "/alpha.git/info/refs?service=git-upload-pack",
            Some(ADMIN)
        )
        .0,
        200,
        "still serving"
    );
}

#[test]
fn huge_slow_and_broken_requests_are_cut_off() {
    let site = Site::new();
    let gate = Daemon::start(&site, &["--max-body-mib", "1", "--stall-timeout-secs", "1"]);
    use base64::Engine as _;
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{ALPHA}:x"));

    // 2 MiB against a 1 MiB cap.
    let body = vec![b'0'; 2 * 1024 * 1024];
    let mut s = std::net::TcpStream::connect(&gate.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let head = format!(
        "POST /alpha.git/git-upload-pack HTTP/1.1\r\nHost: x\r\nAuthorization: Basic {auth}\r\nContent-Type: application/x-git-upload-pack-request\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).unwrap();
    let _ = s.write_all(&body);
    let mut answer = String::new();
    let _ = s.read_to_string(&mut answer);
    assert!(
        answer.starts_with("HTTP/1.1 413"),
        "an oversized body is refused: {answer}"
    );

    // The same without a declared length (chunked): cut off at the cap, and
    // the answer is not a success.
    let mut s = std::net::TcpStream::connect(&gate.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let head = format!(
        "POST /alpha.git/git-receive-pack HTTP/1.1\r\nHost: x\r\nAuthorization: Basic {auth}\r\nContent-Type: application/x-git-receive-pack-request\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    );
    s.write_all(head.as_bytes()).unwrap();
    for _ in 0..2 {
        let chunk = vec![b'x'; 1024 * 1024];
        if s.write_all(format!("{:x}\r\n", chunk.len()).as_bytes())
            .is_err()
            || s.write_all(&chunk).is_err()
            || s.write_all(b"\r\n").is_err()
        {
            break;
        }
    }
    let _ = s.write_all(b"0\r\n\r\n");
    let mut answer = String::new();
    let _ = s.read_to_string(&mut answer);
    let bare = site.path("base/alpha.git");
    assert_eq!(
        ok(git(&bare, &["for-each-ref", "--format=%(refname)"])),
        "refs/heads/main",
        "nothing was pushed"
    );

    // A body that stops arriving: cut off, not waited on forever.
    let started = Instant::now();
    let mut s = std::net::TcpStream::connect(&gate.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
    let head = format!(
        "POST /alpha.git/git-upload-pack HTTP/1.1\r\nHost: x\r\nAuthorization: Basic {auth}\r\nContent-Type: application/x-git-upload-pack-request\r\nContent-Length: 1000\r\n\r\n0032want"
    );
    s.write_all(head.as_bytes()).unwrap();
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "a stalled body held a worker for {:?}",
        started.elapsed()
    );

    // Half a request line and then silence: the header timeout ends it.
    let mut s = std::net::TcpStream::connect(&gate.addr).unwrap();
    s.write_all(b"GET /alpha.git/info/re").unwrap();
    assert_eq!(
        get(
            &gate.addr,
            "/alpha.git/info/refs?service=git-upload-pack",
            Some(ALPHA)
        )
        .0,
        200,
        "others are still served"
    );
}

#[test]
fn a_backend_that_dies_is_a_clear_error_and_the_gate_goes_on() {
    let site = Site::new();
    let dying = site.path("dying-git");
    std::fs::write(&dying, "#!/bin/sh\ncat >/dev/null\nexit 1\n").unwrap();
    let midway = site.path("midway-git");
    std::fs::write(&midway, "#!/bin/sh\nprintf 'Status: 200 OK\\r\\nContent-Type: text/plain\\r\\n\\r\\npartial'\nkill -9 $$\n").unwrap();
    for f in [&dying, &midway] {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(f, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let gate = Daemon::start(&site, &["--git", dying.to_str().unwrap()]);
    let refs = "/alpha.git/info/refs?service=git-upload-pack";
    assert_eq!(get(&gate.addr, refs, Some(ALPHA)).0, 502);
    assert_eq!(
        get(&gate.addr, refs, Some(ALPHA)).0,
        502,
        "and again: nothing stuck"
    );
    drop(gate);

    let gate = Daemon::start(&site, &["--git", midway.to_str().unwrap()]);
    let started = Instant::now();
    let (code, answer) = get(&gate.addr, refs, Some(ALPHA));
    assert_eq!(code, 200);
    assert!(answer.contains("partial"));
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[test]
fn inetd_mode_through_systemd_socket_activate() {
    let activate = Path::new("/usr/bin/systemd-socket-activate");
    if !activate.exists() {
        // Debian's systemd package ships it; without it the socketpair test
        // below still covers --inetd.
        eprintln!("systemd-socket-activate not installed; covered by the socketpair test");
        return;
    }
    let site = Site::new();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut args: Vec<String> = vec![
        "-l".into(),
        format!("127.0.0.1:{port}"),
        "-a".into(),
        "--inetd".into(),
        // systemd-socket-activate passes on only the environment it is told to.
        "-E".into(),
        format!("TMPDIR={}", site.dir.path().display()),
        "-E".into(),
        format!("PADDOCK_GATE_ADMIN_TOKEN={ADMIN}"),
        paddock_bin().into(),
    ];
    args.extend(site.base_args());
    args.push("--inetd".into());
    let mut activator = Command::new(activate)
        .args(&args)
        .env("PADDOCK_GATE_ADMIN_TOKEN", ADMIN)
        .env("TMPDIR", site.dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(activator.stderr.take().unwrap()).lines();
    // "Listening on 127.0.0.1:PORT as 3."
    let first = lines.next().unwrap().unwrap();
    assert!(first.contains("Listening"), "{first}");
    std::thread::spawn(move || for _ in lines {});
    let work = site.path("work");
    std::fs::create_dir(&work).unwrap();
    let url = format!("http://{ALPHA}@127.0.0.1:{port}/alpha.git");
    ok(git(&work, &["clone", "-q", &url, "a"]));
    let a = work.join("a");
    ok(git(
        &a,
        &["commit", "-q", "--allow-empty", "-m", "via inetd"],
    ));
    ok(git(&a, &["push", "-q", "origin", "HEAD:agent/inetd"]));
    let bare = site.path("base/alpha.git");
    assert_eq!(
        ok(git(&bare, &["log", "--format=%s", "-1", "agent/inetd"])),
        "via inetd"
    );
    let _ = activator.kill();
    let _ = activator.wait();
}

#[test]
fn inetd_mode_over_a_socketpair() {
    use std::os::fd::OwnedFd;
    let site = Site::new();
    let (mine, theirs) = std::os::unix::net::UnixStream::pair().unwrap();
    let mut child = Command::new(paddock_bin())
        .args(site.base_args())
        .arg("--inetd")
        .env("TMPDIR", site.dir.path())
        .stdin(Stdio::from(OwnedFd::from(theirs)))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    use base64::Engine as _;
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{ALPHA}:"));
    let mut mine = mine;
    mine.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    mine.write_all(format!("GET /alpha.git/info/refs?service=git-upload-pack HTTP/1.1\r\nHost: x\r\nAuthorization: Basic {auth}\r\nConnection: close\r\n\r\n").as_bytes()).unwrap();
    let mut answer = String::new();
    let _ = mine.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains("# service=git-upload-pack"), "{answer}");
    assert!(answer.contains("refs/heads/main"));
    let status = child.wait().unwrap();
    assert!(status.success(), "one connection, then exit");
}

#[test]
fn inetd_and_detach_exclude_each_other() {
    let site = Site::new();
    let out = Command::new(paddock_bin())
        .args(site.base_args())
        .args(["--inetd", "--detach"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot be used with"));
    let out = Command::new(paddock_bin())
        .args(site.base_args())
        .output()
        .unwrap();
    assert!(
        !out.status.success(),
        "one of --inetd or --detach is required"
    );
}

/// Without an audit log, a push that only creates allowed branches skips
/// the hook process; everything else still meets the policy.
#[test]
fn the_policy_holds_without_an_audit_log() {
    let site = Site::new();
    let mut args: Vec<String> = site.base_args();
    let at = args.iter().position(|a| a == "--audit-log").unwrap();
    args.drain(at..at + 2);
    args.extend(["--detach", "--port", "0", "--pid-file"].map(String::from));
    args.push(site.path("gate.pid").display().to_string());
    let out = Command::new(paddock_bin())
        .args(&args)
        .env("TMPDIR", site.dir.path())
        .stderr(Stdio::null())
        .output()
        .unwrap();
    assert!(out.status.success());
    let line = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    let addr = line.split(' ').nth(4).unwrap().to_owned();
    let pid: i32 = std::fs::read_to_string(site.path("gate.pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let gate = Daemon { addr, pid };

    let work = site.path("work");
    std::fs::create_dir(&work).unwrap();
    ok(git(
        &work,
        &["clone", "-q", &gate.url(Some(ALPHA), "alpha"), "a"],
    ));
    let a = work.join("a");
    ok(git(&a, &["commit", "-q", "--allow-empty", "-m", "new"]));
    ok(git(&a, &["push", "-q", "origin", "HEAD:agent/new"]));
    let main = git(&a, &["push", "origin", "HEAD:main"]);
    assert!(
        stderr(&main).contains("refs/heads/main is not writable from here"),
        "{}",
        stderr(&main)
    );
    let mixed = git(&a, &["push", "origin", "HEAD:agent/other", "HEAD:main"]);
    assert!(!mixed.status.success(), "one refused ref refuses the push");
    ok(git(
        &a,
        &[
            "commit",
            "-q",
            "--amend",
            "--allow-empty",
            "-m",
            "rewritten",
        ],
    ));
    let forced = git(&a, &["push", "-f", "origin", "HEAD:agent/new"]);
    assert!(
        stderr(&forced).contains("force-pushing refs/heads/agent/new is not allowed"),
        "{}",
        stderr(&forced)
    );
    let bare = site.path("base/alpha.git");
    let refs = ok(git(&bare, &["for-each-ref", "--format=%(refname)"]));
    assert_eq!(refs, "refs/heads/agent/new\nrefs/heads/main");
    assert!(!site.path("audit.jsonl").exists());
}

/// git's probe before a large push (a lone flush packet) is answered as
/// receive-pack would, after authentication, and changes nothing.
#[test]
fn the_push_probe_is_answered_after_authentication() {
    use base64::Engine as _;
    let site = Site::new();
    let gate = Daemon::start(&site, &[]);
    let probe = |auth: Option<&str>| {
        let auth = auth
            .map(|t| {
                let b = base64::engine::general_purpose::STANDARD.encode(format!("{t}:x"));
                format!("Authorization: Basic {b}\r\n")
            })
            .unwrap_or_default();
        raw(
            &gate.addr,
            &format!(
                "POST /alpha.git/git-receive-pack HTTP/1.1\r\nHost: x\r\n{auth}Content-Type: application/x-git-receive-pack-request\r\nContent-Length: 4\r\nConnection: close\r\n\r\n0000"
            ),
        )
    };
    assert_eq!(probe(None).0, 401);
    assert_eq!(probe(Some(BETA)).0, 404);
    let (code, answer) = probe(Some(ALPHA));
    assert_eq!(code, 200, "{answer}");
    assert!(
        answer.contains("content-type: application/x-git-receive-pack-result"),
        "{answer}"
    );
    assert!(
        answer.ends_with("\r\n\r\n") || answer.contains("content-length: 0"),
        "an empty result: {answer}"
    );
    let bare = site.path("base/alpha.git");
    assert_eq!(
        ok(git(&bare, &["for-each-ref", "--format=%(refname)"])),
        "refs/heads/main"
    );
}
