//! A terminal in a spoke's box, reached through the hub: the spoke opens
//! it on its own engine and its bytes travel on a stream of the link. The
//! front-end gets an exec like any other; its id (never shown) names the
//! spoke, so resizing, signals and the exit code go there too.

use bytes::Bytes;
use futures_util::StreamExt;
use paddock_docker::{Chunk, InteractiveExec, TerminalSignal};
use paddock_store::SpokeBoxRow;
use tokio::io::AsyncReadExt;

use crate::remote::{RemoteCall, RemoteReply, SpokeCallError};
use crate::remote_boxes::garbled;
use crate::{BoxService, CoreError, Result};

/// How a spoke's terminal's exec id begins: `spoke:<spoke>/<its exec id>`.
const REMOTE_EXEC: &str = "spoke:";
/// What one input frame carries at most.
const INPUT_CHUNK: usize = 16 * 1024;

/// The spoke and its exec id, for an exec id of a spoke's terminal.
fn remote_exec(exec_id: &str) -> Option<(&str, &str)> {
    exec_id.strip_prefix(REMOTE_EXEC)?.split_once('/')
}

impl BoxService {
    pub(crate) async fn remote_terminal(
        &self,
        row: &SpokeBoxRow,
        command: Option<&str>,
        term: &str,
        size: (u16, u16),
    ) -> Result<InteractiveExec> {
        let spokes = self
            .spokes
            .get()
            .ok_or_else(|| CoreError::SpokeUnreachable(row.spoke.clone()))?;
        let stream = spokes
            .open_stream(&row.spoke)
            .map_err(|e: SpokeCallError| e.for_box(&row.id, &row.spoke))?;
        let call = RemoteCall::OpenTerminal {
            box_id: row.id.clone(),
            command: command.map(str::to_owned),
            term: term.to_owned(),
            cols: size.0,
            rows: size.1,
            stream: stream.id,
        };
        let exec_id = match spokes
            .call(&row.spoke, call)
            .await
            .map_err(|e| e.for_box(&row.id, &row.spoke))?
        {
            RemoteReply::Terminal(exec_id) => exec_id,
            _ => return Err(garbled(row)),
        };
        // What the person types goes on the stream in frames.
        let (input, mut typed) = tokio::io::duplex(INPUT_CHUNK * 4);
        let to_spoke = stream.input;
        tokio::spawn(async move {
            let mut buf = vec![0u8; INPUT_CHUNK];
            loop {
                match typed.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => {
                        if to_spoke
                            .send(Bytes::copy_from_slice(&buf[..n]))
                            .await
                            .is_err()
                        {
                            return;
                        }
                    }
                }
            }
        });
        let output = tokio_stream_of(stream.output).map(|bytes| Ok(Chunk::Stdout(bytes)));
        Ok(InteractiveExec {
            exec_id: format!("{REMOTE_EXEC}{}/{exec_id}", row.spoke),
            output: Box::pin(output),
            input: Box::pin(input),
        })
    }

    /// Resizing, a signal or the exit code of a spoke's terminal; None
    /// for a terminal of this machine.
    pub(crate) async fn remote_terminal_call(
        &self,
        exec_id: &str,
        make: impl FnOnce(String) -> RemoteCall,
    ) -> Option<Result<RemoteReply>> {
        let (spoke, theirs) = remote_exec(exec_id)?;
        let Some(spokes) = self.spokes.get() else {
            return Some(Err(CoreError::SpokeUnreachable(spoke.to_owned())));
        };
        Some(
            spokes
                .call(spoke, make(theirs.to_owned()))
                .await
                .map_err(|e| e.for_box(theirs, spoke)),
        )
    }

    pub(crate) async fn remote_resize(
        &self,
        exec_id: &str,
        cols: u16,
        rows: u16,
    ) -> Option<Result<()>> {
        let reply = self
            .remote_terminal_call(exec_id, |exec_id| RemoteCall::ResizeTerminal {
                exec_id,
                cols,
                rows,
            })
            .await?;
        Some(reply.map(|_| ()))
    }

    pub(crate) async fn remote_signal(
        &self,
        exec_id: &str,
        signal: TerminalSignal,
    ) -> Option<Result<()>> {
        let reply = self
            .remote_terminal_call(exec_id, |exec_id| RemoteCall::SignalTerminal {
                exec_id,
                signal: signal.name().to_owned(),
            })
            .await?;
        Some(reply.map(|_| ()))
    }

    pub(crate) async fn remote_exit_code(&self, exec_id: &str) -> Option<Result<Option<i64>>> {
        let reply = self
            .remote_terminal_call(exec_id, |exec_id| RemoteCall::TerminalExit { exec_id })
            .await?;
        Some(reply.and_then(|reply| match reply {
            RemoteReply::ExitCode(code) => Ok(code),
            _ => {
                Err(SpokeCallError::Garbled(spoke_of(exec_id)).for_box(exec_id, &spoke_of(exec_id)))
            }
        }))
    }
}

fn spoke_of(exec_id: &str) -> String {
    remote_exec(exec_id)
        .map(|(spoke, _)| spoke.to_owned())
        .unwrap_or_default()
}

/// A receiver as a stream that ends when its sender goes.
fn tokio_stream_of(
    mut receiver: tokio::sync::mpsc::Receiver<Bytes>,
) -> impl futures_util::Stream<Item = Bytes> + Send {
    futures_util::stream::poll_fn(move |cx| receiver.poll_recv(cx))
}

#[cfg(test)]
mod tests {
    use super::remote_exec;

    #[test]
    fn only_a_spokes_exec_id_is_routed() {
        assert_eq!(remote_exec("spoke:gpu-1/abc"), Some(("gpu-1", "abc")));
        assert_eq!(remote_exec("0123abcd"), None);
        assert_eq!(remote_exec("spoke:nothing"), None);
    }
}
