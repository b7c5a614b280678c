//! Varlink framing: each message is one JSON object followed by a NUL byte.
//! Frames have a size cap, and a frame once begun must finish within a
//! deadline, so neither a flood nor a half-sent frame can pin a connection.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("varlink message larger than {0} bytes")]
    TooLarge(usize),
    #[error("connection closed in the middle of a message")]
    Truncated,
    #[error("a message was started but not finished in time")]
    Stalled,
    #[error("malformed varlink message: {0}")]
    Malformed(String),
    #[error("varlink i/o: {0}")]
    Io(#[from] std::io::Error),
}

pub struct FrameReader<R> {
    inner: R,
    buf: Vec<u8>,
    max: usize,
    finish_within: Duration,
}

impl<R: AsyncRead + Unpin> FrameReader<R> {
    pub fn new(inner: R, max: usize, finish_within: Duration) -> Self {
        Self {
            inner,
            buf: Vec::with_capacity(1024),
            max,
            finish_within,
        }
    }

    /// The next frame without its NUL, or `None` at a clean end of stream.
    /// Cancel-safe: bytes already read stay buffered for the next call.
    pub async fn next(&mut self) -> Result<Option<Vec<u8>>, FrameError> {
        loop {
            if let Some(end) = self.buf.iter().position(|&b| b == 0) {
                if end > self.max {
                    return Err(FrameError::TooLarge(self.max));
                }
                let frame = self.buf[..end].to_vec();
                self.buf.drain(..=end);
                return Ok(Some(frame));
            }
            if self.buf.len() > self.max {
                return Err(FrameError::TooLarge(self.max));
            }
            let read = if self.buf.is_empty() {
                self.inner.read_buf(&mut self.buf).await?
            } else {
                tokio::time::timeout(self.finish_within, self.inner.read_buf(&mut self.buf))
                    .await
                    .map_err(|_| FrameError::Stalled)??
            };
            if read == 0 {
                return if self.buf.is_empty() {
                    Ok(None)
                } else {
                    Err(FrameError::Truncated)
                };
            }
        }
    }

    /// The reader back, with what was read past the last frame.
    pub fn into_parts(self) -> (R, Vec<u8>) {
        (self.inner, self.buf)
    }

    pub async fn next_message<T: for<'de> Deserialize<'de>>(
        &mut self,
    ) -> Result<Option<T>, FrameError> {
        match self.next().await? {
            None => Ok(None),
            Some(frame) => serde_json::from_slice(&frame)
                .map(Some)
                .map_err(|e| FrameError::Malformed(e.to_string())),
        }
    }
}

pub async fn write_frame<W: AsyncWrite + Unpin>(w: &mut W, json: &[u8]) -> std::io::Result<()> {
    let mut frame = Vec::with_capacity(json.len() + 1);
    frame.extend_from_slice(json);
    frame.push(0);
    w.write_all(&frame).await?;
    w.flush().await
}

/// A call as sent by a client.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Call {
    pub method: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameters: Option<Value>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub more: bool,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub oneway: bool,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub upgrade: bool,
}

/// A reply: parameters, or an error with its parameters.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Reply {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameters: Option<Value>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub continues: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Reply {
    pub fn ok(parameters: Value) -> Self {
        Self {
            parameters: Some(parameters),
            ..Self::default()
        }
    }

    pub fn error(name: impl Into<String>, parameters: Value) -> Self {
        Self {
            parameters: Some(parameters),
            error: Some(name.into()),
            continues: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reader(bytes: &'static [u8]) -> FrameReader<&'static [u8]> {
        FrameReader::new(bytes, 16, Duration::from_secs(1))
    }

    #[tokio::test]
    async fn splits_frames_on_nul() {
        let mut r = reader(b"{\"a\":1}\0{}\0");
        assert_eq!(r.next().await.unwrap().unwrap(), b"{\"a\":1}");
        assert_eq!(r.next().await.unwrap().unwrap(), b"{}");
        assert!(r.next().await.unwrap().is_none());
    }

    #[tokio::test]
    async fn refuses_oversized_and_truncated_frames() {
        let mut r = reader(b"{\"aaaaaaaaaaaaaaaaaaaaaaa\":1}\0");
        assert!(matches!(r.next().await, Err(FrameError::TooLarge(16))));
        let mut r = reader(b"{\"a\":");
        assert!(matches!(r.next().await, Err(FrameError::Truncated)));
    }

    #[tokio::test]
    async fn a_half_sent_frame_times_out() {
        let (client, server) = tokio::io::duplex(64);
        let mut r = FrameReader::new(server, 1024, Duration::from_millis(50));
        let mut client = client;
        client.write_all(b"{\"method\"").await.unwrap();
        assert!(matches!(r.next().await, Err(FrameError::Stalled)));
    }
}
