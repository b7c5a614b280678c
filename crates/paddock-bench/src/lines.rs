//! A helper process the benchmark talks to in lines: the Chromium driver
//! (commands in, JSON answers out) and the desktop session (`dbus-monitor`
//! and `paddock notify` lines out). Killed with its process group.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::CommandExt;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use serde_json::Value;

pub struct Lines {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: mpsc::Receiver<String>,
}

impl Lines {
    pub fn spawn(mut cmd: Command) -> anyhow::Result<Self> {
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .spawn()
            .with_context(|| format!("starting {cmd:?}"))?;
        let (tx, lines) = mpsc::channel();
        for out in [
            Box::new(child.stdout.take().context("stdout")?) as Box<dyn std::io::Read + Send>,
            Box::new(child.stderr.take().context("stderr")?),
        ] {
            let tx = tx.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(out).lines().map_while(Result::ok) {
                    let _ = tx.send(line);
                }
            });
        }
        let stdin = child.stdin.take();
        Ok(Self {
            child,
            stdin,
            lines,
        })
    }

    /// The next line `pred` accepts, within `within`.
    pub fn wait_for(
        &self,
        what: &str,
        within: Duration,
        pred: impl Fn(&str) -> bool,
    ) -> anyhow::Result<String> {
        let deadline = Instant::now() + within;
        let mut seen = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if pred(&line) => return Ok(line),
                Ok(line) => seen.push(line),
                Err(_) => bail!("never saw {what}; saw: {seen:#?}"),
            }
        }
    }

    /// Sends one command and returns its JSON answer's `ok`.
    pub fn ask(&mut self, command: &str) -> anyhow::Result<Value> {
        let stdin = self.stdin.as_mut().context("stdin closed")?;
        writeln!(stdin, "{command}")?;
        stdin.flush()?;
        let line = self.wait_for(command, Duration::from_secs(120), |l| {
            l.starts_with("{\"ok\"")
        })?;
        let answer: Value = serde_json::from_str(&line)?;
        answer
            .get("ok")
            .cloned()
            .ok_or_else(|| anyhow!("{command}: {answer}"))
    }
}

impl Drop for Lines {
    fn drop(&mut self) {
        drop(self.stdin.take());
        let group = format!("-{}", self.child.id());
        let _ = Command::new("kill").args(["-TERM", "--", &group]).status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline && !matches!(self.child.try_wait(), Ok(Some(_))) {
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = Command::new("kill")
            .args(["-KILL", "--", &group])
            .stderr(Stdio::null())
            .status();
        let _ = self.child.wait();
    }
}
