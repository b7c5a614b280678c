//! A small varlink client over the same codec, for `paddock clearance` and
//! for tests that need a second, Rust-side subscriber.

use std::path::Path;
use std::time::Duration;

use serde_json::Value;
use tokio::net::UnixStream;
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};

use super::codec::{Call, FrameError, FrameReader, Reply, write_frame};
use crate::event::ClearanceEvent;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    // Not a `source`: the reason is already in the message, and a chain
    // would print it twice.
    #[error("cannot reach the clearance hub at {path}: {reason}")]
    Connect {
        path: String,
        reason: std::io::Error,
    },
    #[error("{0}")]
    Frame(#[from] FrameError),
    #[error("the hub closed the connection")]
    Closed,
    #[error("{error}: {parameters}")]
    Remote { error: String, parameters: Value },
}

pub struct VarlinkClient {
    reader: FrameReader<OwnedReadHalf>,
    writer: OwnedWriteHalf,
}

impl VarlinkClient {
    pub async fn connect(path: &Path) -> Result<Self, ClientError> {
        let stream = UnixStream::connect(path)
            .await
            .map_err(|reason| ClientError::Connect {
                path: path.display().to_string(),
                reason,
            })?;
        let (read, writer) = stream.into_split();
        Ok(Self {
            reader: FrameReader::new(read, 16 * 1024 * 1024, Duration::from_secs(30)),
            writer,
        })
    }

    async fn send(&mut self, call: &Call) -> Result<(), ClientError> {
        let json = serde_json::to_vec(call).map_err(|e| FrameError::Malformed(e.to_string()))?;
        write_frame(&mut self.writer, &json)
            .await
            .map_err(FrameError::from)?;
        Ok(())
    }

    async fn reply(&mut self) -> Result<Reply, ClientError> {
        let reply: Reply = self
            .reader
            .next_message()
            .await?
            .ok_or(ClientError::Closed)?;
        if let Some(error) = reply.error {
            return Err(ClientError::Remote {
                error,
                parameters: reply.parameters.unwrap_or(Value::Null),
            });
        }
        Ok(reply)
    }

    pub async fn call(&mut self, method: &str, parameters: Value) -> Result<Value, ClientError> {
        self.send(&Call {
            method: method.to_owned(),
            parameters: Some(parameters),
            more: false,
            oneway: false,
            upgrade: false,
        })
        .await?;
        Ok(self.reply().await?.parameters.unwrap_or(Value::Null))
    }

    /// Turns this connection into an event stream (`Subscribe`, more=true).
    pub async fn subscribe(mut self) -> Result<EventStream, ClientError> {
        self.send(&Call {
            method: format!("{}.Subscribe", super::TEROK),
            parameters: Some(Value::Object(Default::default())),
            more: true,
            oneway: false,
            upgrade: false,
        })
        .await?;
        Ok(EventStream { client: self })
    }
}

pub struct EventStream {
    client: VarlinkClient,
}

impl EventStream {
    pub async fn next(&mut self) -> Result<ClearanceEvent, ClientError> {
        let reply = self.client.reply().await?;
        let event = reply
            .parameters
            .and_then(|mut p| p.get_mut("event").map(Value::take))
            .ok_or_else(|| FrameError::Malformed("a reply without an event".into()))?;
        serde_json::from_value(event).map_err(|e| FrameError::Malformed(e.to_string()).into())
    }
}
