//! Running `git http-backend` as a CGI: the request body streams into its
//! stdin, its stdout's headers become the response's and the rest streams
//! back. Bodies are capped and stalls cut off, so no worker waits forever.

use std::os::fd::AsRawFd;
use std::process::Stdio;
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use http_body_util::BodyExt;
use hyper::body::{Frame, Incoming};
use hyper::{Response, StatusCode};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

use crate::server::{Body, text};

pub(crate) struct CgiCall {
    pub program: String,
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
    pub max_body: u64,
    /// Longest wait for the next chunk of the request, or of the answer.
    pub stall: Duration,
}

const MAX_HEADER_BYTES: usize = 64 * 1024;
/// Pipe capacity towards and from the backend: a pack streams through in
/// fewer, larger turns (the default 64 KiB wakes both ends every 16 pages).
const PIPE_BYTES: libc::c_int = 1 << 20;

fn widen_pipe(fd: std::os::fd::RawFd) {
    // SAFETY: fcntl on a pipe we own; failing leaves the default size.
    unsafe { libc::fcntl(fd, libc::F_SETPIPE_SZ, PIPE_BYTES) };
}

/// `prefix` is the part of the body the gate already read; it goes first.
pub(crate) async fn run(call: CgiCall, prefix: Bytes, body: Incoming) -> Response<Body> {
    let mut child = match tokio::process::Command::new(&call.program)
        .args(&call.args)
        .env_clear()
        .envs(call.env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
    {
        Ok(child) => child,
        Err(e) => {
            tracing::error!(program = %call.program, error = %e, "cannot start git http-backend");
            return text(
                StatusCode::INTERNAL_SERVER_ERROR,
                "git backend unavailable\n",
            );
        }
    };
    let mut stdin = child.stdin.take().expect("piped");
    let stdout = child.stdout.take().expect("piped");
    widen_pipe(stdin.as_raw_fd());
    widen_pipe(stdout.as_raw_fd());
    let mut stderr = child.stderr.take().expect("piped");

    // Feed the body in the background; the answer may start before the
    // request has ended (upload-pack negotiates as it reads).
    let (max_body, stall) = (call.max_body, call.stall);
    let feeder = tokio::spawn(async move {
        let mut body = body;
        let mut sent = prefix.len() as u64;
        if stdin.write_all(&prefix).await.is_err() {
            return Ok(());
        }
        loop {
            match tokio::time::timeout(stall, body.frame()).await {
                Err(_) => return Err("request body stalled"),
                Ok(None) => return Ok(()),
                Ok(Some(Err(_))) => return Err("request body broke off"),
                Ok(Some(Ok(frame))) => {
                    if let Ok(data) = frame.into_data() {
                        sent += data.len() as u64;
                        if sent > max_body {
                            return Err("request body too large");
                        }
                        if stdin.write_all(&data).await.is_err() {
                            // The backend stopped reading; its answer says why.
                            return Ok(());
                        }
                    }
                }
            }
        }
    });
    tokio::spawn(async move {
        let mut buf = Vec::new();
        let _ = (&mut stderr).take(64 * 1024).read_to_end(&mut buf).await;
        if !buf.is_empty() {
            tracing::debug!(stderr = %String::from_utf8_lossy(&buf).trim(), "git http-backend");
        }
    });

    let mut reader = BufReader::new(stdout);
    let head = tokio::time::timeout(stall, read_head(&mut reader)).await;
    let (status, headers) = match head {
        Ok(Ok(head)) => head,
        Ok(Err(e)) => {
            // The backend died before answering; if the body was refused,
            // that is the better explanation.
            if feeder.is_finished()
                && let Ok(Err(why)) = feeder.await
            {
                return text(StatusCode::PAYLOAD_TOO_LARGE, &format!("{why}\n"));
            }
            tracing::warn!(error = %e, "git http-backend gave no answer");
            return text(StatusCode::BAD_GATEWAY, "git backend failed\n");
        }
        Err(_) => {
            return text(
                StatusCode::GATEWAY_TIMEOUT,
                "git backend did not answer in time\n",
            );
        }
    };

    let mut response = Response::builder().status(status);
    for (name, value) in headers {
        response = response.header(name, value);
    }
    let stream = futures_util::stream::unfold(
        (reader, child, feeder, false),
        move |(mut reader, mut child, feeder, done)| async move {
            if done {
                return None;
            }
            let mut buf = vec![0u8; 64 * 1024];
            match tokio::time::timeout(stall, reader.read(&mut buf)).await {
                Ok(Ok(0)) => {
                    let _ = child.wait().await;
                    let _ = feeder.await;
                    None
                }
                Ok(Ok(n)) => {
                    buf.truncate(n);
                    Some((
                        Ok(Frame::data(Bytes::from(buf))),
                        (reader, child, feeder, false),
                    ))
                }
                Ok(Err(e)) => Some((Err(e), (reader, child, feeder, true))),
                Err(_) => {
                    let _ = child.kill().await;
                    Some((
                        Err(std::io::Error::new(
                            std::io::ErrorKind::TimedOut,
                            "git backend stalled",
                        )),
                        (reader, child, feeder, true),
                    ))
                }
            }
        },
    );
    let body = http_body_util::StreamBody::new(stream.boxed());
    response
        .body(BodyExt::boxed_unsync(body))
        .unwrap_or_else(|_| text(StatusCode::BAD_GATEWAY, "git backend sent bad headers\n"))
}

type Head = (StatusCode, Vec<(String, String)>);

async fn read_head<R: tokio::io::AsyncBufRead + Unpin>(reader: &mut R) -> std::io::Result<Head> {
    let mut status = StatusCode::OK;
    let mut headers = Vec::new();
    let mut total = 0;
    loop {
        let mut line = String::new();
        let n = reader.read_line(&mut line).await?;
        total += n;
        if n == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "no CGI header",
            ));
        }
        if total > MAX_HEADER_BYTES {
            return Err(std::io::Error::other("CGI header too large"));
        }
        let line = line.trim_end_matches(['\r', '\n']);
        if line.is_empty() {
            return Ok((status, headers));
        }
        let Some((name, value)) = line.split_once(':') else {
            return Err(std::io::Error::other("malformed CGI header"));
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("status") {
            let code = value
                .split_whitespace()
                .next()
                .and_then(|c| c.parse::<u16>().ok());
            status = code
                .and_then(|c| StatusCode::from_u16(c).ok())
                .ok_or_else(|| std::io::Error::other("bad CGI status"))?;
        } else {
            headers.push((name.to_owned(), value.to_owned()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn cgi_heads_parse() {
        let mut input: &[u8] = b"Status: 404 Not Found\r\nContent-Type: text/plain\r\n\r\nbody";
        let (status, headers) = read_head(&mut input).await.unwrap();
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_eq!(
            headers,
            vec![("Content-Type".to_owned(), "text/plain".to_owned())]
        );
        let mut input: &[u8] = b"Expires: x\n\n";
        assert_eq!(read_head(&mut input).await.unwrap().0, StatusCode::OK);
        let mut input: &[u8] = b"garbage";
        assert!(read_head(&mut input).await.is_err());
        let mut input: &[u8] = b"Status: abc\r\n\r\n";
        assert!(read_head(&mut input).await.is_err());
    }
}
