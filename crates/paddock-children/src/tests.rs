//! Real processes (`sh`, `sleep`) under a supervisor of the test's own.

use std::path::Path;
use std::time::{Duration, Instant};

use super::*;

fn sh(script: &str) -> tokio::process::Command {
    let mut command = tokio::process::Command::new("sh");
    command.arg("-c").arg(script);
    command
}

/// Waits for `condition` up to 10 s.
async fn until(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn process_gone(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        // A zombie waiting for init to reap it runs no more.
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
    }
}

#[tokio::test]
async fn output_and_exit_codes_are_the_childs() {
    let sup = Supervisor::new();
    let out = sup
        .output("test", "echo", sh("echo hi; echo oops >&2; exit 3"))
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    assert_eq!(out.stdout, b"hi\n");
    assert_eq!(out.stderr, b"oops\n");
    until("the table to empty", || sup.running().is_empty()).await;
}

#[tokio::test]
async fn a_program_that_cannot_start_is_a_clear_error() {
    let sup = Supervisor::new();
    let err = sup
        .spawn(
            "test",
            "missing",
            tokio::process::Command::new("/nonexistent/program"),
        )
        .unwrap_err();
    assert!(matches!(err, ChildrenError::Spawn { .. }), "{err}");
    assert!(err.to_string().contains("/nonexistent/program"), "{err}");
    assert!(sup.running().is_empty());
}

#[tokio::test]
async fn a_crash_is_reported_at_once_though_nobody_waits() {
    let sup = Supervisor::new();
    let mut crashes = sup.crashes();
    let started = sup
        .spawn("test", "segfaults", sh("sleep 0.1; kill -SEGV $$"))
        .unwrap();
    let crash = tokio::time::timeout(Duration::from_secs(10), crashes.recv())
        .await
        .expect("crash announced")
        .unwrap();
    assert_eq!(crash.signal, libc::SIGSEGV);
    assert_eq!(crash.name, "segfaults");
    assert_eq!(crash.pid, started.id());
    assert_eq!(sup.recent_crashes().len(), 1);
    let before = crate::metrics::exits().get(&["test", "crashed"]);
    assert!(before >= 1);
    drop(started);
}

#[tokio::test]
async fn dropping_the_handle_kills_the_child_and_what_it_started() {
    let sup = Supervisor::new();
    let mut crashes = sup.crashes();
    let mut child = {
        let mut command = sh("sleep 300 & echo $!; wait");
        command.stdout(std::process::Stdio::piped());
        sup.spawn("test", "forks", command).unwrap()
    };
    let mut stdout = child.stdout.take().unwrap();
    let mut line = Vec::new();
    loop {
        let mut byte = [0u8; 1];
        tokio::io::AsyncReadExt::read_exact(&mut stdout, &mut byte)
            .await
            .unwrap();
        if byte[0] == b'\n' {
            break;
        }
        line.push(byte[0]);
    }
    let grandchild: u32 = String::from_utf8(line).unwrap().parse().unwrap();
    let pid = child.id();
    assert_eq!(sup.running().len(), 1);
    assert_eq!(sup.running()[0].pid, pid);
    drop(child);
    until("the child to end", || process_gone(pid)).await;
    until("the grandchild to end", || process_gone(grandchild)).await;
    until("the table to empty", || sup.running().is_empty()).await;
    assert!(
        crashes.try_recv().is_err(),
        "a kill paddock asked for is no crash"
    );
}

/// Each child appends its name to `log` on SIGTERM and exits.
fn polite(log: &Path, name: &str) -> tokio::process::Command {
    sh(&format!(
        "trap 'echo {name} >> {}; exit 0' TERM; echo up > {}.{name}; while :; do sleep 0.02; done",
        log.display(),
        log.display()
    ))
}

#[tokio::test]
async fn shutdown_stops_newest_first_and_kills_what_ignores_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("order");
    let sup = Supervisor::new();
    let mut crashes = sup.crashes();
    let mut handles = Vec::new();
    for name in ["first", "second"] {
        handles.push(sup.spawn("test", name, polite(&log, name)).unwrap());
    }
    let stubborn = sh(&format!(
        "trap '' TERM; echo up > {}.stubborn; while :; do sleep 0.02; done",
        log.display()
    ));
    handles.push(sup.spawn("test", "stubborn", stubborn).unwrap());
    handles.push(sup.spawn("test", "third", polite(&log, "third")).unwrap());
    for name in ["first", "second", "stubborn", "third"] {
        let ready = dir.path().join(format!("order.{name}"));
        until("the traps to be set", || ready.exists()).await;
    }
    let started = Instant::now();
    let report = sup
        .shutdown(Duration::from_millis(500), Duration::from_secs(10))
        .await;
    assert_eq!(
        report,
        StopReport {
            ended_on_term: 3,
            killed: 1,
            unaccounted: 0
        }
    );
    assert!(started.elapsed() < Duration::from_secs(5));
    let order = std::fs::read_to_string(&log).unwrap();
    assert_eq!(order, "third\nsecond\nfirst\n");
    assert!(
        crashes.try_recv().is_err(),
        "ends at shutdown are no crashes"
    );
    let refused = sup.spawn("test", "late", sh("true")).unwrap_err();
    assert!(
        matches!(refused, ChildrenError::Stopping { .. }),
        "{refused}"
    );
    assert!(refused.to_string().contains("stopping"));
}

#[tokio::test]
async fn a_child_crashing_while_it_stops_does_not_hang_the_stop() {
    let dir = tempfile::tempdir().unwrap();
    let ready = dir.path().join("ready");
    let sup = Supervisor::new();
    let mut crashes = sup.crashes();
    let _child = sup
        .spawn(
            "test",
            "dies-badly",
            sh(&format!(
                "trap 'kill -SEGV $$' TERM; touch {}; while :; do sleep 0.02; done",
                ready.display()
            )),
        )
        .unwrap();
    until("the trap", || ready.exists()).await;
    let report = tokio::time::timeout(
        Duration::from_secs(10),
        sup.shutdown(Duration::from_secs(5), Duration::from_secs(10)),
    )
    .await
    .expect("the stop ended");
    assert_eq!(report.unaccounted, 0);
    assert_eq!(report.ended_on_term + report.killed, 1);
    assert!(crashes.try_recv().is_err());
}

#[tokio::test]
async fn overall_deadline_caps_the_stop() {
    let sup = Supervisor::new();
    let mut handles = Vec::new();
    for n in 0..3 {
        handles.push(
            sup.spawn(
                "test",
                format!("stubborn-{n}"),
                sh("trap '' TERM; sleep 300; sleep 300"),
            )
            .unwrap(),
        );
    }
    // Let each shell set its trap before the stop.
    until("the shells to start", || {
        handles.iter().all(|h| {
            std::fs::read_to_string(format!("/proc/{}/cmdline", h.id()))
                .is_ok_and(|c| c.starts_with("sh"))
        })
    })
    .await;
    let started = Instant::now();
    let report = sup
        .shutdown(Duration::from_secs(30), Duration::from_millis(300))
        .await;
    assert_eq!(report.unaccounted, 0);
    assert_eq!(report.ended_on_term + report.killed, 3);
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "the overall deadline held: {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn signals_are_forwarded_to_every_child() {
    let dir = tempfile::tempdir().unwrap();
    let sup = Supervisor::new();
    let mut handles = Vec::new();
    for n in 0..2 {
        let file = dir.path().join(format!("usr1-{n}"));
        let ready = dir.path().join(format!("ready-{n}"));
        handles.push(
            sup.spawn(
                "test",
                format!("listener-{n}"),
                sh(&format!(
                    "trap 'touch {}' USR1; touch {}; while :; do sleep 0.02; done",
                    file.display(),
                    ready.display()
                )),
            )
            .unwrap(),
        );
        until("the trap", || ready.exists()).await;
    }
    assert_eq!(sup.forward(libc::SIGUSR1), 2);
    for n in 0..2 {
        let file = dir.path().join(format!("usr1-{n}"));
        until("the signal to arrive", || file.exists()).await;
    }
}

#[tokio::test]
async fn waiting_for_health_ends_with_the_child() {
    let dir = tempfile::tempdir().unwrap();
    let flag = dir.path().join("healthy");
    let sup = Supervisor::new();
    let mut child = sup
        .spawn(
            "test",
            "slow-starter",
            sh(&format!("sleep 0.2; touch {}; sleep 300", flag.display())),
        )
        .unwrap();
    let check = || {
        let flag = flag.clone();
        async move { flag.exists() }
    };
    wait_healthy(
        &mut child,
        "slow-starter",
        check,
        Duration::from_millis(20),
        Duration::from_secs(10),
    )
    .await
    .unwrap();

    let mut dying = sup.spawn("test", "dies", sh("exit 7")).unwrap();
    let started = Instant::now();
    let err = wait_healthy(
        &mut dying,
        "dies",
        || async { false },
        Duration::from_millis(20),
        Duration::from_secs(30),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(err, ChildrenError::EndedBeforeHealthy { .. }),
        "{err}"
    );
    assert!(err.to_string().contains('7'), "{err}");
    assert!(started.elapsed() < Duration::from_secs(10));

    let mut never = sup.spawn("test", "never", sh("sleep 300")).unwrap();
    let err = wait_healthy(
        &mut never,
        "never",
        || async { false },
        Duration::from_millis(20),
        Duration::from_millis(200),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(
            err,
            ChildrenError::NotHealthy {
                timeout_ms: 200,
                ..
            }
        ),
        "{err}"
    );
}

/// The tie to paddock's life: a child whose starting thread ends gets
/// SIGKILL from the kernel. (A whole paddock SIGKILLed is the chaos
/// tests' case.)
#[test]
fn a_child_dies_with_the_thread_that_started_it() {
    let sup = Supervisor::new();
    let pid = std::thread::spawn({
        let sup = sup.clone();
        move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async {
                let child = sup.spawn("test", "orphan-to-be", sh("sleep 300")).unwrap();
                let pid = child.id();
                // Leak the handle: nothing in paddock kills it.
                std::mem::forget(child);
                pid
            })
        }
    })
    .join()
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !process_gone(pid) {
        assert!(
            Instant::now() < deadline,
            "the child outlived its parent thread"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[tokio::test]
async fn a_dropped_handle_asks_politely_then_insists() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("order");
    let sup = Supervisor::new();
    let polite_child = sup.spawn("test", "polite", polite(&log, "polite")).unwrap();
    let stubborn = sup
        .spawn(
            "test",
            "stubborn",
            sh(&format!(
                "trap '' TERM; echo up > {}.stubborn; while :; do sleep 0.02; done",
                log.display()
            )),
        )
        .unwrap();
    for name in ["polite", "stubborn"] {
        let ready = dir.path().join(format!("order.{name}"));
        until("the traps to be set", || ready.exists()).await;
    }
    let (polite_pid, stubborn_pid) = (polite_child.id(), stubborn.id());
    drop(polite_child);
    drop(stubborn);
    until("the polite child's trap", || {
        std::fs::read_to_string(&log).is_ok_and(|l| l == "polite\n")
    })
    .await;
    until("the polite child to end", || process_gone(polite_pid)).await;
    until("the stubborn child to be killed", || {
        process_gone(stubborn_pid)
    })
    .await;
    until("the table to empty", || sup.running().is_empty()).await;
}

#[tokio::test]
async fn leftovers_of_a_killed_instance_are_swept_and_nothing_else() {
    let instance = format!("sweep-test-{}", std::process::id());
    let sup = Supervisor::new();
    sup.mark_children_of(&instance);
    // What a child started, outliving it as a killed paddock's would.
    let out = sup
        .output(
            "test",
            "starts-an-orphan",
            sh("sleep 300 >/dev/null 2>&1 & echo $!"),
        )
        .await
        .unwrap();
    let orphan: u32 = String::from_utf8(out.stdout)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let mut stranger = std::process::Command::new("sleep")
        .arg("300")
        .env(MARKER, format!("{instance}-other"))
        .spawn()
        .unwrap();
    assert!(!process_gone(orphan));
    assert_eq!(sweep_leftovers(&instance), 1);
    until("the orphan to end", || process_gone(orphan)).await;
    assert!(
        stranger.try_wait().unwrap().is_none(),
        "another instance's process is left alone"
    );
    stranger.kill().unwrap();
    stranger.wait().unwrap();
}
