//! Commands run inside containers, captured or interactive.

use std::pin::Pin;

use bollard::container::LogOutput;
use bollard::exec::{CreateExecOptions, StartExecOptions, StartExecResults};
use futures_util::{Stream, StreamExt};
use tokio::io::AsyncWrite;

use crate::{Engine, EngineError, Result};

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExecOutput {
    pub stdout: String,
    pub stderr: String,
    pub exit_code: i64,
    /// True when either stream was cut at the byte limit.
    pub truncated: bool,
}

pub type OutputStream = Pin<Box<dyn Stream<Item = Result<Chunk>> + Send>>;

/// A chunk of a running command's output.
#[derive(Debug, Clone)]
pub enum Chunk {
    Stdout(bytes::Bytes),
    Stderr(bytes::Bytes),
}

/// A command still running, its stdin open for writing.
pub struct InteractiveExec {
    pub exec_id: String,
    pub output: OutputStream,
    pub input: Pin<Box<dyn AsyncWrite + Send>>,
}

fn chunk(item: std::result::Result<LogOutput, bollard::errors::Error>) -> Option<Result<Chunk>> {
    match item {
        Ok(LogOutput::StdOut { message }) | Ok(LogOutput::Console { message }) => {
            Some(Ok(Chunk::Stdout(message)))
        }
        Ok(LogOutput::StdErr { message }) => Some(Ok(Chunk::Stderr(message))),
        Ok(LogOutput::StdIn { .. }) => None,
        Err(e) => Some(Err(e.into())),
    }
}

fn push_limited(buf: &mut Vec<u8>, bytes: &[u8], limit: usize, truncated: &mut bool) {
    let room = limit.saturating_sub(buf.len());
    if bytes.len() > room {
        *truncated = true;
    }
    buf.extend_from_slice(&bytes[..bytes.len().min(room)]);
}

impl Engine {
    async fn start_exec(
        &self,
        container: &str,
        cmd: Vec<String>,
        env: Vec<String>,
        stdin: bool,
    ) -> Result<(String, StartExecResults)> {
        let docker = self.client().await?;
        let created = docker
            .create_exec(
                container,
                CreateExecOptions {
                    attach_stdin: Some(stdin),
                    attach_stdout: Some(true),
                    attach_stderr: Some(true),
                    cmd: Some(cmd),
                    env: Some(env),
                    ..Default::default()
                },
            )
            .await?;
        let started = docker
            .start_exec(&created.id, Some(StartExecOptions::default()))
            .await?;
        Ok((created.id, started))
    }

    /// Runs `cmd` to completion, keeping at most `limit` bytes of each stream.
    pub async fn exec(
        &self,
        container: &str,
        cmd: Vec<String>,
        limit: usize,
    ) -> Result<ExecOutput> {
        let (exec_id, started) = self.start_exec(container, cmd, Vec::new(), false).await?;
        let StartExecResults::Attached { output, .. } = started else {
            return Err(EngineError::Other("exec started detached".into()));
        };
        let mut stream = std::pin::pin!(output.filter_map(|item| async move { chunk(item) }));
        let (mut out, mut err, mut truncated) = (Vec::new(), Vec::new(), false);
        while let Some(item) = stream.next().await {
            match item? {
                Chunk::Stdout(b) => push_limited(&mut out, &b, limit, &mut truncated),
                Chunk::Stderr(b) => push_limited(&mut err, &b, limit, &mut truncated),
            }
        }
        let exit_code = self.exec_exit_code(&exec_id).await?.unwrap_or(-1);
        Ok(ExecOutput {
            stdout: String::from_utf8_lossy(&out).into_owned(),
            stderr: String::from_utf8_lossy(&err).into_owned(),
            exit_code,
            truncated,
        })
    }

    /// Starts `cmd` with stdin attached and hands back both ends.
    pub async fn exec_interactive(
        &self,
        container: &str,
        cmd: Vec<String>,
        env: Vec<String>,
    ) -> Result<InteractiveExec> {
        let (exec_id, started) = self.start_exec(container, cmd, env, true).await?;
        let StartExecResults::Attached { output, input } = started else {
            return Err(EngineError::Other("exec started detached".into()));
        };
        Ok(InteractiveExec {
            exec_id,
            output: Box::pin(output.filter_map(|item| async move { chunk(item) })),
            input,
        })
    }

    /// None while the command still runs.
    pub async fn exec_exit_code(&self, exec_id: &str) -> Result<Option<i64>> {
        let inspected = self.client().await?.inspect_exec(exec_id).await?;
        if inspected.running.unwrap_or(false) {
            return Ok(None);
        }
        Ok(inspected.exit_code)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_is_cut_at_the_limit() {
        let (mut buf, mut truncated) = (Vec::new(), false);
        push_limited(&mut buf, b"hello", 3, &mut truncated);
        push_limited(&mut buf, b"more", 3, &mut truncated);
        assert_eq!(buf, b"hel");
        assert!(truncated);
    }
}
