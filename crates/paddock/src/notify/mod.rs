//! `paddock notify`: held requests as desktop pop-ups, decided from the
//! pop-up. A client of paddock like `paddock clearance`, and of the
//! desktop's notification server. Either may be missing or go away: it
//! says so once, in words, and tries again with a growing pause — it does
//! not exit and does not crash. Once both are back, every request still
//! held is shown again.

mod source;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use futures_util::StreamExt;
use futures_util::stream::BoxStream;
use paddock_clearance::varlink::default_socket_path;
use paddock_notify::{Desktop, Signal, Step, Tracker};

use source::{Source, Via};

#[derive(clap::Args)]
pub struct NotifyArgs {
    /// The hub's socket (default: where `paddock serve` puts it).
    #[arg(long, env = "PADDOCK_CLEARANCE_SOCKET", conflicts_with = "url")]
    socket: Option<PathBuf>,
    /// Reach paddock over HTTP instead (its events WebSocket and REST),
    /// e.g. when paddock runs as root and its socket is closed to you.
    #[arg(long, env = "PADDOCK_URL", hide_env_values = true)]
    url: Option<String>,
    /// The API token for --url (needs events:subscribe and egress:read;
    /// egress:verdict to decide).
    #[arg(long, env = "PADDOCK_TOKEN", hide_env_values = true)]
    token: Option<String>,
}

const FIRST_PAUSE: Duration = Duration::from_millis(500);
const LONGEST_PAUSE: Duration = Duration::from_secs(30);

/// Says what failed once per distinct failure, and waits a growing pause.
struct Retry {
    pause: Duration,
    last: String,
}

impl Retry {
    fn new() -> Self {
        Self {
            pause: FIRST_PAUSE,
            last: String::new(),
        }
    }

    async fn after(&mut self, what: &str) {
        if what != self.last {
            eprintln!(
                "paddock notify: {what}; retrying (every {} s at most)",
                LONGEST_PAUSE.as_secs()
            );
            self.last = what.to_owned();
        } else {
            eprintln!("paddock notify: still {what}; retrying");
        }
        tokio::time::sleep(self.pause).await;
        self.pause = (self.pause * 2).min(LONGEST_PAUSE);
    }
}

async fn desktop() -> (Desktop, BoxStream<'static, Signal>) {
    let mut retry = Retry::new();
    loop {
        let connected = match Desktop::connect().await {
            Ok(d) => d.signals().await.map(|s| (d, s)),
            Err(e) => Err(e),
        };
        match connected {
            Ok(pair) => return pair,
            Err(e) => retry.after(&format!("cannot show pop-ups: {e}")).await,
        }
    }
}

async fn source(via: &Via) -> Source {
    let mut retry = Retry::new();
    loop {
        match Source::connect(via).await {
            Ok(s) => return s,
            Err(e) => {
                retry
                    .after(&format!("cannot reach {}: {e:#}", via.describe()))
                    .await;
            }
        }
    }
}

/// Why a session ended: which side to reconnect.
enum Lost {
    Desktop(String),
    Paddock(String),
}

pub async fn run(args: NotifyArgs) -> anyhow::Result<ExitCode> {
    let via = match (args.url, args.token) {
        (Some(url), Some(token)) => Via::Web {
            base: url.trim_end_matches('/').to_owned(),
            token,
        },
        (Some(_), None) => anyhow::bail!("--url needs --token (or PADDOCK_TOKEN)"),
        (None, _) => Via::Socket(args.socket.unwrap_or_else(default_socket_path)),
    };
    let mut tracker = Tracker::default();
    let (mut shown, mut signals) = desktop().await;
    let mut paddock = source(&via).await;
    loop {
        match session(&mut shown, &mut signals, &mut paddock, &mut tracker, &via).await {
            Lost::Desktop(why) => {
                eprintln!("paddock notify: the notification server went away ({why})");
                (shown, signals) = desktop().await;
            }
            Lost::Paddock(why) => {
                eprintln!("paddock notify: lost {} ({why})", via.describe());
                paddock = source(&via).await;
            }
        }
    }
}

/// Shows what the tracker says; a failing bus ends the session.
async fn apply(desktop: &Desktop, tracker: &mut Tracker, steps: Vec<Step>) -> Result<(), Lost> {
    for step in steps {
        match step {
            Step::Show { held, replaces } => {
                let id = desktop
                    .show(&held, replaces)
                    .await
                    .map_err(|e| Lost::Desktop(e.to_string()))?;
                eprintln!(
                    "paddock notify: pop-up #{id}: box {} wants {}:{} ({} attempts)",
                    held.container,
                    held.destination(),
                    held.port,
                    held.attempts
                );
                tracker.shown(&held.request_id, id);
            }
            Step::Close { notification } => {
                desktop
                    .close(notification)
                    .await
                    .map_err(|e| Lost::Desktop(e.to_string()))?;
                eprintln!("paddock notify: pop-up #{notification} closed: its request ended");
            }
        }
    }
    Ok(())
}

async fn session(
    desktop: &mut Desktop,
    signals: &mut BoxStream<'static, Signal>,
    paddock: &mut Source,
    tracker: &mut Tracker,
    via: &Via,
) -> Lost {
    let pending = match paddock.pending().await {
        Ok(p) => p,
        Err(e) => return Lost::Paddock(format!("{e:#}")),
    };
    // A fresh server (or a fresh start) shows everything again.
    tracker.forget_popups();
    let steps = tracker.resync(&pending);
    if let Err(lost) = apply(desktop, tracker, steps).await {
        return lost;
    }
    if !desktop.actions {
        eprintln!(
            "paddock notify: {} shows no actions; pop-ups will only inform",
            desktop.server
        );
    }
    eprintln!(
        "paddock notify: showing held requests from {} on {}",
        via.describe(),
        desktop.server
    );
    loop {
        tokio::select! {
            event = paddock.next() => {
                let event = match event {
                    Ok(Some(e)) => e,
                    Ok(None) => return Lost::Paddock("it closed the connection".into()),
                    Err(e) => return Lost::Paddock(format!("{e:#}")),
                };
                let steps = tracker.on_event(&event);
                if let Err(lost) = apply(desktop, tracker, steps).await {
                    return lost;
                }
            }
            signal = signals.next() => match signal {
                None => return Lost::Desktop("the bus connection ended".into()),
                Some(Signal::Closed { notification }) => tracker.closed(notification),
                Some(Signal::Action { notification, key }) => {
                    let Some(verdict) = tracker.action(notification, &key) else { continue };
                    match paddock.verdict(&verdict).await {
                        Ok(()) => eprintln!(
                            "paddock notify: {} {} for box {} (scope {})",
                            verdict.action,
                            verdict.dest,
                            verdict.container,
                            verdict.scope.as_deref().unwrap_or("box")
                        ),
                        Err(e) => eprintln!("paddock notify: the verdict was refused: {e:#}"),
                    }
                }
            }
        }
    }
}
