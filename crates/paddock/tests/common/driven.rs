//! A helper process the test drives line by line: it reads what the
//! process prints (stdout and stderr, colours stripped) and types into its
//! stdin. The process runs in its own process group, which is ended as a
//! whole — SIGTERM, then SIGKILL after a deadline — when the test lets go
//! of it, however the test ends.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::CommandExt;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use super::egress_site::poke;
use super::{Paddock, strip_ansi};

/// A driven process: its output line by line, its stdin to type into.
pub struct Driven {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: mpsc::Receiver<String>,
}

impl Driven {
    /// Starts `cmd` with paddock's runtime directory as its own.
    pub fn run(mut cmd: Command, p: &Paddock) -> Self {
        let mut child = cmd
            .env("XDG_RUNTIME_DIR", p.runtime_dir())
            .env("PYTHONUNBUFFERED", "1")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // Its own process group: the session's X server, dunst and
            // Python all end with it.
            .process_group(0)
            .spawn()
            .expect("the driven process starts");
        let (tx, lines) = mpsc::channel();
        for out in [
            Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
            Box::new(child.stderr.take().unwrap()),
        ] {
            let tx = tx.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(out).lines().map_while(Result::ok) {
                    let _ = tx.send(strip_ansi(&line));
                }
            });
        }
        let stdin = child.stdin.take();
        Self {
            child,
            stdin,
            lines,
        }
    }

    /// The next line `pred` accepts, within 30 s; every line read on the
    /// way is in the panic message if none does.
    pub fn line_where(&self, what: &str, pred: impl Fn(&str) -> bool) -> String {
        self.line_within(what, Duration::from_secs(30), pred)
    }

    /// As [`Driven::line_where`], with a deadline of the caller's.
    pub fn line_within(&self, what: &str, within: Duration, pred: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + within;
        let mut seen = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if pred(&line) => return line,
                Ok(line) => seen.push(line),
                Err(_) => panic!("the driven process never printed {what}; it printed: {seen:#?}"),
            }
        }
    }

    /// Every line up to and including the first `pred` accepts: what the
    /// client said before a marker the test caused (to show what it did
    /// *not* say, without waiting on a clock).
    pub fn lines_until(&self, what: &str, pred: impl Fn(&str) -> bool) -> Vec<String> {
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut seen = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    let done = pred(&line);
                    seen.push(line);
                    if done {
                        return seen;
                    }
                }
                Err(_) => panic!("the driven process never printed {what}; it printed: {seen:#?}"),
            }
        }
    }

    /// Pokes the hub with shield events until the client shows one: then
    /// it has certainly found the hub and subscribed.
    pub async fn until_live(&self, p: &Paddock, box_id: &str) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            poke(p, box_id).await;
            while let Ok(line) = self.lines.recv_timeout(Duration::from_millis(300)) {
                if line.to_lowercase().contains("shield up") {
                    return;
                }
            }
            assert!(
                Instant::now() < deadline,
                "the driven process never showed an event"
            );
        }
    }

    pub fn type_line(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("stdin open");
        stdin.write_all(format!("{line}\n").as_bytes()).unwrap();
        stdin.flush().unwrap();
    }
}

impl Drop for Driven {
    fn drop(&mut self) {
        // The whole group: a desktop session's X server and dunst too.
        // SIGTERM first, so Xvfb removes its socket; SIGKILL whatever is
        // left after a deadline.
        let group = format!("-{}", self.child.id());
        // A client reading stdin ends when it closes.
        drop(self.stdin.take());
        let _ = Command::new("kill").args(["-TERM", "--", &group]).status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline && !matches!(self.child.try_wait(), Ok(Some(_))) {
            std::thread::sleep(Duration::from_millis(20));
        }
        let group_alive = || {
            Command::new("kill")
                .args(["-0", "--", &group])
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        };
        while group_alive() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = Command::new("kill")
            .args(["-KILL", "--", &group])
            .stderr(Stdio::null())
            .status();
        let _ = self.child.wait();
    }
}
