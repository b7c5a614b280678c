//! `paddock clearance`: a person's terminal for held connections. It is a
//! varlink client of the hub like any other: one connection streams
//! events, another lists what is pending and sends verdicts.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use paddock_clearance::varlink::{
    ClientError, EventStream, PADDOCK, VarlinkClient, default_socket_path,
};
use paddock_clearance::{ClearanceEvent, PendingView, VerdictRequest};
use serde_json::json;
use tokio::io::AsyncBufReadExt;

use crate::client::render_table;

#[derive(clap::Args)]
pub struct ClearanceArgs {
    /// The hub's socket (default: where `paddock serve` puts it).
    #[arg(long, env = "PADDOCK_CLEARANCE_SOCKET")]
    socket: Option<PathBuf>,
}

const HELP: &str =
    "a N allow · A N allow for the project · o N allow once · d N deny · r refresh · q quit";
const RECENT: usize = 5;

struct Screen {
    pending: Vec<PendingView>,
    recent: Vec<String>,
    status: String,
    tty: bool,
}

impl Screen {
    fn draw(&self) {
        let mut out = String::new();
        if self.tty {
            out.push_str("\x1b[2J\x1b[H");
        }
        out.push_str(&format!(
            "paddock clearance — {} held\n{HELP}\n\n",
            self.pending.len()
        ));
        let rows: Vec<Vec<String>> = self
            .pending
            .iter()
            .enumerate()
            .map(|(i, p)| {
                vec![
                    (i + 1).to_string(),
                    p.container.clone(),
                    p.project.clone(),
                    format!("{}:{}", p.dest, p.port),
                    p.domain.clone(),
                    p.times_blocked.to_string(),
                    p.first_seen.clone(),
                ]
            })
            .collect();
        out.push_str(&render_table(
            &[
                "#",
                "BOX",
                "PROJECT",
                "DESTINATION",
                "DOMAIN",
                "BLOCKED",
                "SINCE",
            ],
            &rows,
        ));
        out.push('\n');
        if !self.recent.is_empty() {
            out.push_str("\nrecent:\n");
            for line in &self.recent {
                out.push_str(&format!("  {line}\n"));
            }
        }
        if !self.status.is_empty() {
            out.push_str(&format!("\n{}\n", self.status));
        }
        out.push_str("> ");
        print!("{out}");
        let _ = std::io::stdout().flush();
    }
}

fn describe(e: &ClearanceEvent) -> String {
    match e.kind.as_str() {
        "connection_refused" => format!(
            "{} refused {}:{} ({})",
            e.container, e.dest, e.port, e.reason
        ),
        "connection_blocked" => format!("{} held {}:{}", e.container, e.dest, e.port),
        "verdict_applied" => format!(
            "{} {} {}:{} — {}",
            e.container, e.action, e.dest, e.port, e.reason
        ),
        other => format!("{} {other} {}", e.container, e.reason),
    }
}

async fn pending(calls: &mut VarlinkClient) -> anyhow::Result<Vec<PendingView>> {
    let mut reply = calls
        .call(&format!("{PADDOCK}.Pending"), json!({}))
        .await
        .context("cannot list held requests")?;
    serde_json::from_value(reply["requests"].take()).context("the hub's pending list is garbled")
}

/// Parses `a 2` and friends into (action, scope, 0-based index).
fn parse_command(line: &str) -> Option<(&'static str, &'static str, usize)> {
    let mut words = line.split_whitespace();
    let (action, scope) = match words.next()? {
        "a" => ("allow", "box"),
        "A" => ("allow", "project"),
        "o" => ("allow", "once"),
        "d" => ("deny", "box"),
        _ => return None,
    };
    let n: usize = words.next()?.parse().ok()?;
    n.checked_sub(1).map(|i| (action, scope, i))
}

/// How a session with the hub ended.
enum Ended {
    Quit,
    /// The hub went away (paddock stopped or restarted).
    Lost,
}

type Input = tokio::io::Lines<tokio::io::BufReader<tokio::io::Stdin>>;

async fn connect(path: &std::path::Path) -> Result<(EventStream, VarlinkClient), ClientError> {
    let events = VarlinkClient::connect(path).await?.subscribe().await?;
    let calls = VarlinkClient::connect(path).await?;
    Ok((events, calls))
}

pub async fn run(args: ClearanceArgs) -> anyhow::Result<ExitCode> {
    let path = args.socket.unwrap_or_else(default_socket_path);
    // The first connection must work: a wrong path is an error, not a wait.
    let (mut events, mut calls) = connect(&path).await?;
    let mut screen = Screen {
        pending: Vec::new(),
        recent: Vec::new(),
        status: String::new(),
        tty: std::io::stdout().is_terminal(),
    };
    let mut input = tokio::io::BufReader::new(tokio::io::stdin()).lines();
    loop {
        match session(&mut events, &mut calls, &mut screen, &mut input).await? {
            Ended::Quit => return Ok(ExitCode::SUCCESS),
            Ended::Lost => {}
        }
        // Said at once, and the hub is looked for until it is back.
        screen.pending.clear();
        screen.status = format!(
            "the hub at {} went away (paddock serve stopped?); reconnecting…",
            path.display()
        );
        screen.draw();
        let mut wait = std::time::Duration::from_millis(250);
        loop {
            tokio::select! {
                line = input.next_line() => match line? {
                    None => return Ok(ExitCode::SUCCESS),
                    Some(l) if l.trim() == "q" => return Ok(ExitCode::SUCCESS),
                    Some(_) => {
                        screen.status = "not connected to the hub; reconnecting… (q quits)".into();
                        screen.draw();
                    }
                },
                () = tokio::time::sleep(wait) => {
                    if let Ok(pair) = connect(&path).await {
                        (events, calls) = pair;
                        screen.status = "reconnected to the hub".into();
                        break;
                    }
                    wait = (wait * 2).min(std::time::Duration::from_secs(5));
                }
            }
        }
    }
}

/// One connection's worth: events and commands until the person quits or
/// the hub goes away.
async fn session(
    events: &mut EventStream,
    calls: &mut VarlinkClient,
    screen: &mut Screen,
    input: &mut Input,
) -> anyhow::Result<Ended> {
    match pending(calls).await {
        Ok(p) => screen.pending = p,
        Err(_) => return Ok(Ended::Lost),
    }
    screen.draw();
    loop {
        tokio::select! {
            event = events.next() => {
                let event = match event {
                    Ok(e) => e,
                    Err(ClientError::Closed) => return Ok(Ended::Lost),
                    Err(e) => return Err(e.into()),
                };
                screen.recent.push(describe(&event));
                if screen.recent.len() > RECENT {
                    screen.recent.remove(0);
                }
                match pending(calls).await {
                    Ok(p) => screen.pending = p,
                    Err(_) => return Ok(Ended::Lost),
                }
                screen.draw();
            }
            line = input.next_line() => {
                let Some(line) = line? else { return Ok(Ended::Quit) };
                let line = line.trim();
                screen.status = match line {
                    "q" => return Ok(Ended::Quit),
                    "" | "r" => String::new(),
                    _ => match parse_command(line) {
                        None => format!("unknown command {line:?}; {HELP}"),
                        Some((_, _, i)) if i >= screen.pending.len() => format!("no held request #{}", i + 1),
                        Some((action, scope, i)) => {
                            let p = &screen.pending[i];
                            let params = serde_json::to_value(VerdictRequest {
                                container: p.container.clone(),
                                request_id: p.request_id.clone(),
                                dest: p.dest.clone(),
                                action: action.into(),
                                scope: Some(scope.into()),
                                ttl_secs: None,
                            })?;
                            let target = format!("{}:{}", p.dest, p.port);
                            match calls.call(&format!("{PADDOCK}.Verdict"), params).await {
                                Ok(_) => format!("{}ed {target} (scope {scope})", if action == "allow" { "allow" } else { "deni" }),
                                Err(ClientError::Closed) => return Ok(Ended::Lost),
                                Err(e) => format!("verdict failed: {e}"),
                            }
                        }
                    },
                };
                match pending(calls).await {
                    Ok(p) => screen.pending = p,
                    Err(_) => return Ok(Ended::Lost),
                }
                screen.draw();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn reads_commands() {
        assert_eq!(super::parse_command("a 2"), Some(("allow", "box", 1)));
        assert_eq!(super::parse_command("d 1"), Some(("deny", "box", 0)));
        assert_eq!(super::parse_command("A 1"), Some(("allow", "project", 0)));
        assert_eq!(super::parse_command("a 0"), None);
        assert_eq!(super::parse_command("x 1"), None);
    }
}
