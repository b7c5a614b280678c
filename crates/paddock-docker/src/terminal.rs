//! Commands run on a pseudo-terminal in a container (`paddock box shell`):
//! raw bytes both ways, resized on request, hung up when the person goes.

use bollard::exec::{CreateExecOptions, ResizeExecOptions, StartExecOptions, StartExecResults};
use futures_util::StreamExt;

use crate::{Chunk, Engine, EngineError, InteractiveExec, Result};

/// Signals a terminal's person may send to its command (besides the keys
/// the terminal itself turns into SIGINT, SIGQUIT and SIGTSTP).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TerminalSignal {
    Hangup,
    Interrupt,
    Quit,
    Terminate,
    Kill,
}

impl TerminalSignal {
    pub fn parse(name: &str) -> Option<Self> {
        Some(match name.trim_start_matches("SIG") {
            "HUP" => Self::Hangup,
            "INT" => Self::Interrupt,
            "QUIT" => Self::Quit,
            "TERM" => Self::Terminate,
            "KILL" => Self::Kill,
            _ => return None,
        })
    }

    /// The name [`TerminalSignal::parse`] reads back.
    pub fn name(self) -> &'static str {
        match self {
            Self::Hangup => "HUP",
            Self::Interrupt => "INT",
            Self::Quit => "QUIT",
            Self::Terminate => "TERM",
            Self::Kill => "KILL",
        }
    }

    fn number(self) -> libc::c_int {
        match self {
            Self::Hangup => libc::SIGHUP,
            Self::Interrupt => libc::SIGINT,
            Self::Quit => libc::SIGQUIT,
            Self::Terminate => libc::SIGTERM,
            Self::Kill => libc::SIGKILL,
        }
    }
}

impl Engine {
    /// Starts `cmd` on a pseudo-terminal of `cols`×`rows`; its output
    /// arrives as [`Chunk::Stdout`] (a terminal has one stream).
    pub async fn exec_terminal(
        &self,
        container: &str,
        cmd: Vec<String>,
        env: Vec<String>,
        cols: u16,
        rows: u16,
    ) -> Result<InteractiveExec> {
        let docker = self.client().await?;
        let created = docker
            .create_exec(
                container,
                CreateExecOptions {
                    attach_stdin: Some(true),
                    attach_stdout: Some(true),
                    attach_stderr: Some(true),
                    tty: Some(true),
                    cmd: Some(cmd),
                    env: Some(env),
                    ..Default::default()
                },
            )
            .await?;
        let started = docker
            .start_exec(
                &created.id,
                Some(StartExecOptions {
                    tty: true,
                    ..Default::default()
                }),
            )
            .await?;
        let StartExecResults::Attached { output, input } = started else {
            return Err(EngineError::Other("exec started detached".into()));
        };
        // The size is known only once the exec runs; a failure here is
        // not worth the session (the next resize fixes it).
        let _ = self.resize_terminal(&created.id, cols, rows).await;
        let output = output.filter_map(|item| async move {
            match item {
                Ok(out) => Some(Ok(Chunk::Stdout(out.into_bytes()))),
                Err(e) => Some(Err(e.into())),
            }
        });
        Ok(InteractiveExec {
            exec_id: created.id,
            output: Box::pin(output),
            input,
        })
    }

    pub async fn resize_terminal(&self, exec_id: &str, cols: u16, rows: u16) -> Result<()> {
        self.client()
            .await?
            .resize_exec(
                exec_id,
                ResizeExecOptions {
                    width: cols.max(1),
                    height: rows.max(1),
                },
            )
            .await?;
        Ok(())
    }

    /// Sends `signal` to the exec's process, and to its process group
    /// (the jobs of a shell on a terminal). The engine has no way to do
    /// this itself; the process is found by the host pid the engine
    /// reports, which names it only when the engine runs on this machine
    /// — as it must for paddock's firewall, which enters the same pids'
    /// namespaces. A process that already ended is not an error.
    pub async fn signal_exec(&self, exec_id: &str, signal: TerminalSignal) -> Result<()> {
        let inspected = self.client().await?.inspect_exec(exec_id).await?;
        if !inspected.running.unwrap_or(false) {
            return Ok(());
        }
        let Some(pid) = inspected.pid.filter(|p| *p > 1) else {
            return Ok(());
        };
        let pid = libc::pid_t::try_from(pid)
            .map_err(|_| EngineError::Other(format!("exec pid {pid} out of range")))?;
        // SAFETY: kill(2) takes plain integers and touches no memory.
        unsafe {
            libc::kill(-pid, signal.number());
            libc::kill(pid, signal.number());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signal_names() {
        assert_eq!(
            TerminalSignal::parse("SIGINT"),
            Some(TerminalSignal::Interrupt)
        );
        assert_eq!(
            TerminalSignal::parse("TERM"),
            Some(TerminalSignal::Terminate)
        );
        assert_eq!(TerminalSignal::parse("STOP"), None);
        assert_eq!(TerminalSignal::parse("USR1"), None);
    }
}
