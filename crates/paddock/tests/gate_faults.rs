//! The standalone git gate with real git: inetd mode, and requests and
//! backends that misbehave.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::gate_site::*;
use crate::common::paddock_bin;

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
    let a = site.checkout(&format!("http://{ALPHA}@127.0.0.1:{port}/alpha.git"));
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
    let site = Site::new();
    let (mine, theirs) = std::os::unix::net::UnixStream::pair().unwrap();
    let mut child = site.inetd(theirs);
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
