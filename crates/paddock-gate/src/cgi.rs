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

use crate::answers::{Body, text};
use crate::hooks_dir::SpareLink;
use crate::spare::HooksGuard;

pub(crate) struct CgiCall {
    pub program: String,
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
    pub limits: Limits,
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    pub max_body: u64,
    /// Longest wait for the next chunk of the request, or of the answer.
    pub stall: Duration,
}

/// The request as the CGI sees it: the meta-variables taken from its
/// line and headers (printable ASCII, short, or left out).
#[derive(Debug, Clone)]
pub(crate) struct CgiRequest {
    pub method: String,
    pub query: String,
    pub content_type: Option<String>,
    pub content_length: Option<String>,
    pub content_encoding: Option<String>,
    pub protocol: Option<String>,
}

/// What git's client declares for a push's POST.
const RECEIVE_PACK_REQUEST: &str = "application/x-git-receive-pack-request";

impl CgiRequest {
    pub fn of(req: &hyper::http::request::Parts) -> Self {
        let header = |name: &str| {
            req.headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .filter(|v| v.len() <= 256 && v.bytes().all(|b| (0x20..0x7f).contains(&b)))
                .map(str::to_owned)
        };
        Self {
            method: req.method.as_str().to_owned(),
            query: req.uri.query().unwrap_or("").to_owned(),
            content_type: header("content-type"),
            content_length: header("content-length").filter(|v| v.parse::<u64>().is_ok()),
            content_encoding: header("content-encoding"),
            protocol: header("git-protocol"),
        }
    }

    /// The POST a spare is started for. Without a length `http-backend`
    /// hands its stdin straight to `receive-pack`, which reads the
    /// request to its end whatever its size.
    pub fn spare_post(protocol: Option<String>) -> Self {
        Self {
            method: "POST".into(),
            query: String::new(),
            content_type: Some(RECEIVE_PACK_REQUEST.into()),
            content_length: None,
            content_encoding: None,
            protocol,
        }
    }

    /// Whether a spare started by `spare_post` serves this request as a
    /// fresh backend would.
    pub fn fits_spare(&self) -> bool {
        self.method == "POST"
            && self.query.is_empty()
            && self.content_type.as_deref() == Some(RECEIVE_PACK_REQUEST)
            && self.content_encoding.is_none()
    }
}

const MAX_HEADER_BYTES: usize = 64 * 1024;
/// Pipe capacity towards and from the backend: a pack streams through in
/// fewer, larger turns (the default 64 KiB wakes both ends every 16 pages).
const PIPE_BYTES: libc::c_int = 1 << 20;

fn widen_pipe(fd: std::os::fd::RawFd) {
    // SAFETY: fcntl on a pipe we own; failing leaves the default size.
    unsafe { libc::fcntl(fd, libc::F_SETPIPE_SZ, PIPE_BYTES) };
}

/// A started backend, not yet given its request.
pub(crate) struct Backend {
    child: paddock_children::Child,
    stdin: tokio::process::ChildStdin,
    stdout: tokio::process::ChildStdout,
    /// A spare's hook link, kept until the output ends.
    hooks: Option<HooksGuard>,
}

impl Backend {
    /// Starts `program` with exactly `env`; its stderr goes to the debug log.
    pub(crate) fn spawn(
        program: &str,
        args: &[String],
        env: &[(String, String)],
    ) -> std::io::Result<Self> {
        let mut command = tokio::process::Command::new(program);
        command
            .args(args)
            .env_clear()
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = paddock_children::global()
            .spawn("git-http-backend", "git http-backend", command)
            .map_err(std::io::Error::other)?;
        let (Some(stdin), Some(stdout), Some(mut stderr)) =
            (child.stdin.take(), child.stdout.take(), child.stderr.take())
        else {
            return Err(std::io::Error::other("backend pipes missing"));
        };
        widen_pipe(stdin.as_raw_fd());
        widen_pipe(stdout.as_raw_fd());
        tokio::spawn(async move {
            let mut buf = Vec::new();
            let _ = (&mut stderr).take(64 * 1024).read_to_end(&mut buf).await;
            if !buf.is_empty() {
                tracing::debug!(stderr = %String::from_utf8_lossy(&buf).trim(), "git http-backend");
            }
        });
        Ok(Self {
            child,
            stdin,
            stdout,
            hooks: None,
        })
    }

    /// Ties `link` to this backend's output (see `HooksGuard`).
    pub(crate) fn keep_hooks(&mut self, link: SpareLink) {
        self.hooks = Some(HooksGuard::new(link, &self.stdout));
    }

    /// The backend's process id.
    #[cfg(test)]
    pub(crate) fn id(&self) -> u32 {
        self.child.id()
    }

    pub(crate) fn hooks(&self) -> Option<&HooksGuard> {
        self.hooks.as_ref()
    }
}

/// `prefix` is the part of the body the gate already read; it goes first.
pub(crate) async fn run(call: CgiCall, prefix: Bytes, body: Incoming) -> Response<Body> {
    match Backend::spawn(&call.program, &call.args, &call.env) {
        Ok(backend) => serve(backend, call.limits, prefix, body).await,
        Err(e) => {
            tracing::error!(program = %call.program, error = %e, "cannot start git http-backend");
            text(
                StatusCode::INTERNAL_SERVER_ERROR,
                "git backend unavailable\n",
            )
        }
    }
}

/// Gives a started backend its request and streams back its answer.
pub(crate) async fn serve(
    backend: Backend,
    limits: Limits,
    prefix: Bytes,
    body: Incoming,
) -> Response<Body> {
    let Backend {
        child,
        mut stdin,
        stdout,
        hooks,
    } = backend;
    // Feed the body in the background; the answer may start before the
    // request has ended (upload-pack negotiates as it reads).
    let Limits { max_body, stall } = limits;
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
        (reader, child, feeder, hooks, false),
        move |(mut reader, mut child, feeder, hooks, done)| async move {
            if done {
                return None;
            }
            let mut buf = vec![0u8; 64 * 1024];
            match tokio::time::timeout(stall, reader.read(&mut buf)).await {
                Ok(Ok(0)) => {
                    if let Some(hooks) = hooks {
                        hooks.release_at_eof();
                    }
                    let _ = child.wait().await;
                    let _ = feeder.await;
                    None
                }
                Ok(Ok(n)) => {
                    buf.truncate(n);
                    Some((
                        Ok(Frame::data(Bytes::from(buf))),
                        (reader, child, feeder, hooks, false),
                    ))
                }
                Ok(Err(e)) => Some((Err(e), (reader, child, feeder, hooks, true))),
                Err(_) => {
                    child.kill();
                    Some((
                        Err(std::io::Error::new(
                            std::io::ErrorKind::TimedOut,
                            "git backend stalled",
                        )),
                        (reader, child, feeder, hooks, true),
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
