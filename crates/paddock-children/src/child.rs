//! The handle a caller gets for a started child: its pipes, its end, and
//! a kill. A child whose handle is dropped before it ended (its caller
//! gave up, timed out, or was itself stopped) is never left running: it
//! gets SIGTERM, and SIGKILL if it is still there after a grace.

use std::process::{ExitStatus, Output};
use std::sync::Arc;

use tokio::io::AsyncReadExt;
use tokio::process::{ChildStderr, ChildStdin, ChildStdout};
use tokio::sync::{oneshot, watch};

use crate::ChildrenError;
use crate::signal::Signaller;

/// How a child's watch saw it end.
#[derive(Debug, Clone)]
pub(crate) enum Ended {
    Status(ExitStatus),
    /// Waiting on it failed (the kernel's answer, as text).
    Lost(String),
}

/// A running (or ended) child started through the [`Supervisor`](crate::Supervisor).
#[derive(Debug)]
pub struct Child {
    pub stdin: Option<ChildStdin>,
    pub stdout: Option<ChildStdout>,
    pub stderr: Option<ChildStderr>,
    signaller: Arc<Signaller>,
    ended: watch::Receiver<Option<Ended>>,
    /// Dropped with the handle: the watch then ends the child.
    _release: oneshot::Sender<()>,
}

impl Child {
    pub(crate) fn new(
        child: &mut tokio::process::Child,
        signaller: Arc<Signaller>,
        ended: watch::Receiver<Option<Ended>>,
        release: oneshot::Sender<()>,
    ) -> Self {
        Self {
            stdin: child.stdin.take(),
            stdout: child.stdout.take(),
            stderr: child.stderr.take(),
            signaller,
            ended,
            _release: release,
        }
    }

    pub fn id(&self) -> u32 {
        self.signaller.pid()
    }

    /// Ends the child now (SIGKILL); its end is a stop, not a crash.
    pub fn kill(&self) {
        self.signaller.send(libc::SIGKILL);
    }

    /// Waits for the end. Closes stdin first, as a child reading it to
    /// its end would otherwise never finish.
    pub async fn wait(&mut self) -> Result<ExitStatus, ChildrenError> {
        drop(self.stdin.take());
        self.ended().await
    }

    /// Waits for the end, leaving the pipes as they are.
    pub(crate) async fn ended(&mut self) -> Result<ExitStatus, ChildrenError> {
        let ended = self
            .ended
            .wait_for(Option::is_some)
            .await
            .map_err(|_| ChildrenError::Lost("the supervisor's watch ended".into()))?
            .clone();
        match ended {
            Some(Ended::Status(status)) => Ok(status),
            Some(Ended::Lost(why)) => Err(ChildrenError::Lost(why)),
            None => Err(ChildrenError::Lost("no end recorded".into())),
        }
    }

    /// Reads stdout and stderr to their ends (whichever were piped) while
    /// waiting for the end.
    pub async fn wait_with_output(mut self) -> Result<Output, ChildrenError> {
        drop(self.stdin.take());
        let mut stdout = self.stdout.take();
        let mut stderr = self.stderr.take();
        let read_out = async {
            let mut buf = Vec::new();
            if let Some(out) = stdout.as_mut() {
                out.read_to_end(&mut buf).await?;
            }
            Ok::<_, std::io::Error>(buf)
        };
        let read_err = async {
            let mut buf = Vec::new();
            if let Some(err) = stderr.as_mut() {
                err.read_to_end(&mut buf).await?;
            }
            Ok::<_, std::io::Error>(buf)
        };
        let (out, err) = tokio::join!(read_out, read_err);
        let status = self.wait().await?;
        Ok(Output {
            status,
            stdout: out?,
            stderr: err?,
        })
    }
}
