//! `paddock box shell`: a terminal in a box. This terminal goes raw (every
//! key, Ctrl-C included, travels to the box, where the box's terminal
//! turns it into a signal), its size follows the window, and the command
//! exits with the code of the shell in the box.

use std::io::IsTerminal;
use std::os::fd::AsRawFd;
use std::process::ExitCode;

use anyhow::{Context, anyhow};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::Message;

use super::boxes::path_id;
use super::http::{Client, percent_encode};

/// The local terminal in raw mode for as long as this lives; restored on
/// drop, on every way out.
struct RawMode {
    fd: i32,
    saved: libc::termios,
}

impl RawMode {
    fn enter(fd: i32) -> anyhow::Result<Self> {
        // SAFETY: tcgetattr/tcsetattr fill and read a termios we own; fd is
        // stdin, open for the process's life.
        unsafe {
            let mut saved: libc::termios = std::mem::zeroed();
            if libc::tcgetattr(fd, &mut saved) != 0 {
                return Err(std::io::Error::last_os_error()).context("reading the terminal's mode");
            }
            let mut raw = saved;
            libc::cfmakeraw(&mut raw);
            if libc::tcsetattr(fd, libc::TCSANOW, &raw) != 0 {
                return Err(std::io::Error::last_os_error()).context("setting the terminal raw");
            }
            Ok(Self { fd, saved })
        }
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        // SAFETY: restores the termios read in `enter` on the same fd.
        unsafe {
            libc::tcsetattr(self.fd, libc::TCSANOW, &self.saved);
        }
    }
}

/// Columns and rows of the terminal on stdout, if it is one.
fn window_size() -> Option<(u16, u16)> {
    let out = std::io::stdout();
    if !out.is_terminal() {
        return None;
    }
    // SAFETY: TIOCGWINSZ fills a winsize we own.
    unsafe {
        let mut size: libc::winsize = std::mem::zeroed();
        if libc::ioctl(out.as_raw_fd(), libc::TIOCGWINSZ, &mut size) != 0 || size.ws_col == 0 {
            return None;
        }
        Some((size.ws_col, size.ws_row))
    }
}

pub async fn shell(client: &Client, id: &str, command: Option<&str>) -> anyhow::Result<ExitCode> {
    let (cols, rows) = window_size().unwrap_or((80, 24));
    let term = std::env::var("TERM").unwrap_or_else(|_| "xterm-256color".into());
    let mut path = format!(
        "/api/v1/boxes/{}/shell?cols={cols}&rows={rows}&term={}",
        path_id(id),
        percent_encode(&term, b"")
    );
    if let Some(command) = command {
        path.push_str(&format!("&command={}", percent_encode(command, b"")));
    }
    let request = client.websocket_request(&path)?;
    let connector = client.websocket_connector()?;
    let socket = match super::trust::connect_websocket(request, connector).await {
        Ok(connected) => connected,
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            let body = response.body().as_deref().unwrap_or_default();
            let message = serde_json::from_slice::<Value>(body)
                .ok()
                .and_then(|v| v["error"]["message"].as_str().map(str::to_owned))
                .unwrap_or_else(|| String::from_utf8_lossy(body).into_owned());
            return Err(anyhow!("{message} (HTTP {})", response.status().as_u16()));
        }
        Err(e) => return Err(anyhow!("cannot open a shell in box {id}: {e}")),
    };
    let stdin = std::io::stdin();
    let _raw = if stdin.is_terminal() {
        Some(RawMode::enter(stdin.as_raw_fd())?)
    } else {
        None
    };
    let (mut to_box, mut from_box) = socket.split();
    let mut input = tokio::io::stdin();
    let mut output = tokio::io::stdout();
    let mut resized =
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::window_change())?;
    let mut buf = vec![0u8; 8192];
    let mut stdin_open = true;
    loop {
        tokio::select! {
            // A resize noticed is sent before keys read with it, so what
            // is typed after a resize runs in the new size.
            biased;
            _ = resized.recv() => {
                if let Some((cols, rows)) = window_size() {
                    to_box.send(Message::Text(json!({"resize": [cols, rows]}).to_string().into())).await?;
                }
            }
            read = input.read(&mut buf), if stdin_open => match read {
                Ok(0) | Err(_) => {
                    // Input ended (a pipe): the box's shell reads end of
                    // file the way a terminal sends it.
                    stdin_open = false;
                    to_box.send(Message::Binary(vec![4u8].into())).await?;
                }
                Ok(n) => to_box.send(Message::Binary(buf[..n].to_vec().into())).await?,
            },
            message = from_box.next() => match message {
                Some(Ok(Message::Binary(bytes))) => {
                    output.write_all(&bytes).await?;
                    output.flush().await?;
                }
                Some(Ok(Message::Text(text))) => {
                    let frame: Value = serde_json::from_str(&text).unwrap_or_default();
                    if let Some(error) = frame["error"]["message"].as_str() {
                        eprint!("paddock: {error}\r\n");
                        continue;
                    }
                    if frame.get("exit_code").is_some() {
                        let code = frame["exit_code"].as_i64().unwrap_or(1);
                        return Ok(ExitCode::from(u8::try_from(code).unwrap_or(1)));
                    }
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(anyhow!("the box's terminal closed: {e}")),
                None => return Err(anyhow!("the box's terminal closed without an exit code")),
            },
        }
    }
}
