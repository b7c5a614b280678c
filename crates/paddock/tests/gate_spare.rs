//! The spare backend a push's advertisement starts for the POST that
//! follows: it meets the policy like a fresh one, even when the client
//! hangs up, and it ends with its connection. Real git, real gate, raw
//! HTTP where git would not misbehave on purpose.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::gate_site::*;
use base64::Engine as _;

fn basic(token: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(format!("{token}:x"))
}

/// A connection that has had a push's advertisement (read to its end;
/// hyper sends it chunked) and stays open for the POST.
fn advertised(gate: &Daemon) -> TcpStream {
    let mut conn = TcpStream::connect(&gate.addr).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(
        conn,
        "GET /alpha.git/info/refs?service=git-receive-pack HTTP/1.1\r\nHost: x\r\nAuthorization: Basic {}\r\n\r\n",
        basic(ALPHA)
    )
    .unwrap();
    let answer = read_chunked(&mut conn);
    assert!(answer.starts_with(b"HTTP/1.1 200"), "{answer:?}");
    conn
}

/// Reads one chunked answer to its last chunk.
fn read_chunked(conn: &mut TcpStream) -> Vec<u8> {
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    while !answer.ends_with(b"\r\n0\r\n\r\n") {
        let n = conn.read(&mut buf).unwrap();
        assert!(
            n > 0,
            "answer cut short: {:?}",
            String::from_utf8_lossy(&answer)
        );
        answer.extend_from_slice(&buf[..n]);
    }
    answer
}

fn spare_links(site: &Site) -> Vec<PathBuf> {
    let mut links = Vec::new();
    for hooks in std::fs::read_dir(site.dir.path()).unwrap().flatten() {
        if hooks
            .file_name()
            .to_string_lossy()
            .starts_with("paddock-gate-hooks-")
            && let Ok(spares) = std::fs::read_dir(hooks.path().join("spare"))
        {
            links.extend(spares.flatten().map(|e| e.path()));
        }
    }
    links
}

/// Processes working in `repo`: `receive-pack` runs there.
fn working_in(repo: &Path) -> Vec<u32> {
    let repo = repo.canonicalize().unwrap();
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| std::fs::read_link(format!("/proc/{pid}/cwd")).is_ok_and(|c| c == repo))
        .collect()
}

fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn pkt(line: &str) -> Vec<u8> {
    format!("{:04x}{line}", line.len() + 4).into_bytes()
}

/// A push's POST body creating `refs/heads/sneaky`, which is not an agent
/// branch: the pre-receive hook must refuse it.
fn sneaky_push(site: &Site, gate: &Daemon) -> Vec<u8> {
    let a = site.checkout(&gate.url(Some(ALPHA), "alpha"));
    ok(git(&a, &["commit", "-q", "--allow-empty", "-m", "sneaky"]));
    let old = ok(git(&a, &["rev-parse", "origin/main"]));
    let new = ok(git(&a, &["rev-parse", "HEAD"]));
    let mut packer = Command::new("git")
        .args(["pack-objects", "--stdout", "--revs", "-q"])
        .current_dir(&a)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    write!(packer.stdin.take().unwrap(), "{new}\n^{old}\n").unwrap();
    let pack = packer.wait_with_output().unwrap();
    assert!(pack.status.success());

    let zero = "0".repeat(40);
    let mut body = pkt(&format!(
        "{zero} {new} refs/heads/sneaky\0report-status side-band-64k\n"
    ));
    body.extend_from_slice(b"0000");
    body.extend_from_slice(&pack.stdout);

    body
}

fn post(conn: &mut TcpStream, body: &[u8]) {
    write!(
        conn,
        "POST /alpha.git/git-receive-pack HTTP/1.1\r\nHost: x\r\nAuthorization: Basic {}\r\nContent-Type: application/x-git-receive-pack-request\r\nContent-Length: {}\r\n\r\n",
        basic(ALPHA),
        body.len()
    )
    .unwrap();
    conn.write_all(body).unwrap();
}

#[test]
fn an_unused_spare_ends_with_its_connection() {
    let site = Site::new();
    let gate = Daemon::start(&site, &[]);
    let repo = site.path("base/alpha.git");

    let conn = advertised(&gate);
    assert_eq!(spare_links(&site).len(), 1, "the spare's hook link");
    wait_for("the spare's receive-pack", || !working_in(&repo).is_empty());

    drop(conn);
    wait_for("the spare to end", || working_in(&repo).is_empty());
    wait_for("its link to go", || spare_links(&site).is_empty());
    // Nothing was pushed.
    assert_eq!(
        ok(git(&repo, &["for-each-ref", "--format=%(refname)"])),
        "refs/heads/main"
    );
    assert!(site.audit().is_empty());
}

/// A client that sends its whole push and hangs up before the answer:
/// whatever the backend left behind still does, it does under the hooks
/// (that the link outlives `receive-pack` itself is pinned down by the
/// gate crate's `spare` tests, which control when the writer ends).
#[test]
fn a_push_whose_client_hangs_up_still_meets_the_policy() {
    let site = Site::new();
    let gate = Daemon::start(&site, &[]);
    let repo = site.path("base/alpha.git");
    let body = sneaky_push(&site, &gate);
    let mut conn = advertised(&gate);
    // The spare is up before the push goes in, so "no receive-pack left"
    // below means the one that got the push has ended.
    wait_for("the spare's receive-pack", || !working_in(&repo).is_empty());
    post(&mut conn, &body);
    drop(conn);

    // However far the push got before the hang-up, receive-pack ends,
    // and what it did passed the hook: refused, or cut off before any
    // update (the gate feeds a backend only what the client sent).
    wait_for("receive-pack to end", || working_in(&repo).is_empty());
    assert_eq!(
        ok(git(&repo, &["for-each-ref", "--format=%(refname)"])),
        "refs/heads/main",
        "nothing but main"
    );
    let audit = site.audit();
    assert!(audit.len() <= 1, "{audit:?}");
    if let Some(record) = audit.first() {
        assert_eq!(record["ref"], "refs/heads/sneaky");
        assert_eq!(record["outcome"], "refused");
    }
    wait_for("the link to go once receive-pack is done", || {
        spare_links(&site).is_empty()
    });
}

/// The same push, answered: the spare's hooks refuse it with git's own
/// report.
#[test]
fn a_spare_backend_refuses_what_the_policy_refuses() {
    let site = Site::new();
    let gate = Daemon::start(&site, &[]);
    let repo = site.path("base/alpha.git");
    let body = sneaky_push(&site, &gate);
    let mut conn = advertised(&gate);
    assert_eq!(spare_links(&site).len(), 1, "a spare waits for the POST");
    post(&mut conn, &body);
    let answer = read_chunked(&mut conn);
    let answer = String::from_utf8_lossy(&answer);
    assert!(
        answer.contains("ng refs/heads/sneaky pre-receive hook declined"),
        "{answer}"
    );
    assert_eq!(site.audit()[0]["outcome"], "refused");
    assert_eq!(
        ok(git(&repo, &["for-each-ref", "--format=%(refname)"])),
        "refs/heads/main"
    );
}

/// An inetd gate exits after its one connection; the spare it started for
/// a push that never came ends first, and takes its link with it.
#[test]
fn an_inetd_gate_leaves_no_spare_behind() {
    let site = Site::new();
    let repo = site.path("base/alpha.git");
    let (mut mine, theirs) = std::os::unix::net::UnixStream::pair().unwrap();
    let mut child = site.inetd(theirs);
    mine.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(
        mine,
        "GET /alpha.git/info/refs?service=git-receive-pack HTTP/1.1\r\nHost: x\r\nAuthorization: Basic {}\r\nConnection: close\r\n\r\n",
        basic(ALPHA)
    )
    .unwrap();
    let mut answer = String::new();
    let _ = mine.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(child.wait().unwrap().success(), "one connection, then exit");
    assert!(spare_links(&site).is_empty(), "{:?}", spare_links(&site));
    wait_for("the spare's receive-pack to end", || {
        working_in(&repo).is_empty()
    });
}
