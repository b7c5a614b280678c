//! The table of running children, the watch on each, and the ordered stop.

use std::collections::{BTreeMap, VecDeque};
use std::os::unix::process::ExitStatusExt;
use std::process::{Output, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use serde::Serialize;
use time::OffsetDateTime;
use tokio::sync::{broadcast, oneshot, watch};

use crate::ChildrenError;
use crate::child::{Child, Ended};
use crate::signal::Signaller;

/// How long a child SIGKILLed at shutdown has to be reaped before it is
/// reported as unaccounted for (a process stuck in the kernel).
const REAP_WAIT: Duration = Duration::from_secs(2);
/// How long a child whose handle was dropped has between SIGTERM and
/// SIGKILL.
const DROP_GRACE: Duration = Duration::from_secs(2);
/// Crashes kept for the worldview.
const RECENT_CRASHES: usize = 16;

/// A child that is running now.
#[derive(Debug, Clone, Serialize)]
pub struct Running {
    pub kind: &'static str,
    pub name: String,
    pub pid: u32,
    /// RFC 3339.
    pub started_at: String,
    pub age_secs: u64,
}

/// A child that died by a signal nobody in paddock sent.
#[derive(Debug, Clone, Serialize)]
pub struct Crash {
    pub kind: &'static str,
    pub name: String,
    pub pid: u32,
    pub signal: i32,
    /// RFC 3339.
    pub at: String,
}

/// What [`Supervisor::shutdown`] did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct StopReport {
    /// Children that ended after SIGTERM.
    pub ended_on_term: usize,
    /// Children that needed SIGKILL.
    pub killed: usize,
    /// Children not reaped even after SIGKILL.
    pub unaccounted: usize,
}

#[derive(Clone)]
struct Entry {
    kind: &'static str,
    name: String,
    started_at: OffsetDateTime,
    started: Instant,
    signaller: Arc<Signaller>,
    ended: watch::Receiver<Option<Ended>>,
}

#[derive(Default)]
struct Table {
    next_seq: u64,
    /// By start order, so the newest is last.
    running: BTreeMap<u64, Entry>,
    /// Set by `shutdown`: nothing new starts.
    refusing: bool,
}

struct Inner {
    table: Mutex<Table>,
    /// The instance every child carries in its environment (see `sweep`).
    instance: Mutex<Option<String>>,
    crashes: broadcast::Sender<Crash>,
    recent_crashes: Mutex<VecDeque<Crash>>,
    /// Set as the stop begins: exits are expected from here on.
    stopping: AtomicBool,
}

/// See the crate's documentation.
#[derive(Clone)]
pub struct Supervisor {
    inner: Arc<Inner>,
}

impl Default for Supervisor {
    fn default() -> Self {
        Self::new()
    }
}

impl Supervisor {
    pub fn new() -> Self {
        Self {
            inner: Arc::new(Inner {
                table: Mutex::new(Table::default()),
                instance: Mutex::new(None),
                crashes: broadcast::channel(64).0,
                recent_crashes: Mutex::new(VecDeque::new()),
                stopping: AtomicBool::new(false),
            }),
        }
    }

    /// Names the instance every child from now on carries, so the next
    /// paddock of it can end what a killed one left (`sweep_leftovers`).
    pub fn mark_children_of(&self, instance: &str) {
        *self.inner.instance.lock() = Some(instance.to_owned());
    }

    /// Starts `command` as a child of `kind` (a metric label: `hook`,
    /// `git-http-backend`, …) called `name` in logs and the worldview.
    /// Must be called on a tokio runtime's worker, as the watch runs there
    /// and the parent-death tie is to the calling thread.
    pub fn spawn(
        &self,
        kind: &'static str,
        name: impl Into<String>,
        mut command: tokio::process::Command,
    ) -> Result<Child, ChildrenError> {
        let name = name.into();
        let parent = std::process::id();
        // SAFETY: setpgid, prctl and getppid are async-signal-safe; the
        // closure allocates nothing.
        unsafe {
            command.pre_exec(move || {
                if libc::setpgid(0, 0) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                // paddock died between the fork and the prctl: the tie
                // would never fire, so do not run at all.
                if libc::getppid() as u32 != parent {
                    return Err(std::io::Error::other("paddock exited"));
                }
                Ok(())
            });
        }
        command.kill_on_drop(true);
        if let Some(instance) = self.inner.instance.lock().as_deref() {
            command.env(crate::MARKER, instance);
        }
        if self.inner.table.lock().refusing {
            return Err(ChildrenError::Stopping { kind, name });
        }
        // Started outside the lock, so children start in parallel; one
        // started while the stop began is dropped (and so killed) below.
        let mut child = command.spawn().map_err(|source| ChildrenError::Spawn {
            program: command
                .as_std()
                .get_program()
                .to_string_lossy()
                .into_owned(),
            source,
        })?;
        let mut table = self.inner.table.lock();
        if table.refusing {
            return Err(ChildrenError::Stopping { kind, name });
        }
        let pid = child
            .id()
            .ok_or_else(|| ChildrenError::Lost("the child was reaped at once".into()))?;
        let signaller = Arc::new(Signaller::open(pid));
        let (ended_tx, ended_rx) = watch::channel(None);
        let (release_tx, release_rx) = oneshot::channel();
        let handle = Child::new(&mut child, signaller.clone(), ended_rx.clone(), release_tx);
        let seq = table.next_seq;
        table.next_seq += 1;
        table.running.insert(
            seq,
            Entry {
                kind,
                name: name.clone(),
                started_at: OffsetDateTime::now_utc(),
                started: Instant::now(),
                signaller: signaller.clone(),
                ended: ended_rx,
            },
        );
        drop(table);
        let inner = self.inner.clone();
        tokio::spawn(async move {
            let result = watch_child(&mut child, &signaller, release_rx).await;
            signaller.mark_reaped();
            inner.table.lock().running.remove(&seq);
            let ended = match result {
                Ok(status) => Ended::Status(status),
                Err(e) => Ended::Lost(e.to_string()),
            };
            inner.account(kind, &name, pid, &ended, signaller.asked_to_end());
            let _ = ended_tx.send(Some(ended));
        });
        Ok(handle)
    }

    /// Runs `command` to its end with stdin empty, collecting its output.
    pub async fn output(
        &self,
        kind: &'static str,
        name: impl Into<String>,
        mut command: tokio::process::Command,
    ) -> Result<Output, ChildrenError> {
        command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        self.spawn(kind, name, command)?.wait_with_output().await
    }

    /// The children running now, oldest first.
    pub fn running(&self) -> Vec<Running> {
        let table = self.inner.table.lock();
        table
            .running
            .values()
            .map(|e| Running {
                kind: e.kind,
                name: e.name.clone(),
                pid: e.signaller.pid(),
                started_at: rfc3339(e.started_at),
                age_secs: e.started.elapsed().as_secs(),
            })
            .collect()
    }

    /// The last crashes, oldest first.
    pub fn recent_crashes(&self) -> Vec<Crash> {
        self.inner.recent_crashes.lock().iter().cloned().collect()
    }

    /// Every crash from now on, as it happens.
    pub fn crashes(&self) -> broadcast::Receiver<Crash> {
        self.inner.crashes.subscribe()
    }

    /// Sends `signal` to every running child (and what each started);
    /// how many were signalled.
    pub fn forward(&self, signal: libc::c_int) -> usize {
        let table = self.inner.table.lock();
        for entry in table.running.values() {
            entry.signaller.send(signal);
        }
        table.running.len()
    }

    /// From now on a child's end is expected, not a crash. Called as
    /// soon as paddock decides to stop, before anything it stops makes
    /// children end.
    pub fn begin_shutdown(&self) {
        self.inner.stopping.store(true, Ordering::SeqCst);
    }

    /// Refuses new children and stops the running ones newest first:
    /// SIGTERM, up to `per_child` for it to end, then SIGKILL. Once
    /// `overall` has passed the rest get SIGKILL at once.
    pub async fn shutdown(&self, per_child: Duration, overall: Duration) -> StopReport {
        self.begin_shutdown();
        let newest_first: Vec<Entry> = {
            let mut table = self.inner.table.lock();
            table.refusing = true;
            table.running.values().rev().cloned().collect()
        };
        let deadline = Instant::now() + overall;
        let mut report = StopReport::default();
        for entry in newest_first {
            let mut ended = entry.ended.clone();
            if ended.borrow().is_some() {
                continue;
            }
            entry.signaller.send(libc::SIGTERM);
            let grace = per_child.min(deadline.saturating_duration_since(Instant::now()));
            if tokio::time::timeout(grace, ended.wait_for(Option::is_some))
                .await
                .is_ok()
            {
                report.ended_on_term += 1;
                continue;
            }
            entry.signaller.send(libc::SIGKILL);
            report.killed += 1;
            tracing::warn!(kind = entry.kind, name = %entry.name, pid = entry.signaller.pid(),
                "child did not end on SIGTERM; killed");
            if tokio::time::timeout(REAP_WAIT, ended.wait_for(Option::is_some))
                .await
                .is_err()
            {
                report.unaccounted += 1;
                tracing::error!(kind = entry.kind, name = %entry.name, pid = entry.signaller.pid(),
                    "child not reaped after SIGKILL");
            }
        }
        report
    }
}

/// Waits for `child` to end; if its handle is dropped first, ends it:
/// SIGTERM, then SIGKILL after `DROP_GRACE`.
async fn watch_child(
    child: &mut tokio::process::Child,
    signaller: &Signaller,
    mut released: oneshot::Receiver<()>,
) -> std::io::Result<std::process::ExitStatus> {
    tokio::select! {
        result = child.wait() => return result,
        _ = &mut released => {}
    }
    signaller.send(libc::SIGTERM);
    match tokio::time::timeout(DROP_GRACE, child.wait()).await {
        Ok(result) => result,
        Err(_) => {
            signaller.send(libc::SIGKILL);
            child.wait().await
        }
    }
}

impl Inner {
    /// Counts an end and reports a crash.
    fn account(&self, kind: &'static str, name: &str, pid: u32, ended: &Ended, asked: bool) {
        let ending = match ended {
            Ended::Lost(_) => "lost",
            Ended::Status(s) if s.success() => "ok",
            Ended::Status(s) if s.code().is_some() => "failed",
            Ended::Status(_) if asked || self.stopping.load(Ordering::SeqCst) => "stopped",
            Ended::Status(_) => "crashed",
        };
        crate::metrics::exits().inc(&[kind, ending]);
        let Ended::Status(status) = ended else {
            tracing::error!(kind, name, pid, "lost track of a child");
            return;
        };
        if ending != "crashed" {
            return;
        }
        let signal = status.signal().unwrap_or(0);
        tracing::error!(kind, name, pid, signal, "child crashed");
        let crash = Crash {
            kind,
            name: name.to_owned(),
            pid,
            signal,
            at: rfc3339(OffsetDateTime::now_utc()),
        };
        {
            let mut recent = self.recent_crashes.lock();
            if recent.len() == RECENT_CRASHES {
                recent.pop_front();
            }
            recent.push_back(crash.clone());
        }
        let _ = self.crashes.send(crash);
    }
}

fn rfc3339(at: OffsetDateTime) -> String {
    at.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}
