//! When a link between hub and spoke is dead. A cut that sends nothing
//! back (a cable pulled, a NAT entry dropped, a firewall that starts
//! discarding) leaves both sockets open: TCP notices only when its
//! retransmissions give up, a quarter of an hour later, and until then
//! the hub would show the spoke as linked, hold callers for as long and
//! keep announcing requests nobody can decide. So each end pings every
//! `ping_every` and counts the link dead once it has heard nothing —
//! no frame, no pong — for [`MISSED_PINGS`] of them; a send that cannot
//! go out within the same time ends it too (a full send buffer on a cut
//! link would otherwise block the end that is writing).
//!
//! Each end judges by its own pings, whose pongs the other's WebSocket
//! answers by itself, so the two need not be set alike.

use std::time::Duration;

use tokio::time::Instant;

/// Pings in a row that may go unanswered before the link is dead.
pub const MISSED_PINGS: u32 = 3;

/// The default `[spokes] ping_secs`.
pub const DEFAULT_PING: Duration = Duration::from_secs(10);

/// What one end of a link has heard, and when it gives up.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Liveness {
    ping_every: Duration,
    last_heard: Instant,
}

impl Liveness {
    pub(crate) fn new(ping_every: Duration) -> Self {
        Self {
            ping_every: ping_every.max(Duration::from_millis(100)),
            last_heard: Instant::now(),
        }
    }

    pub(crate) fn ping_every(&self) -> Duration {
        self.ping_every
    }

    /// Any frame from the other end counts, a pong as much as a call.
    pub(crate) fn heard(&mut self) {
        self.last_heard = Instant::now();
    }

    /// How long a silence, or a send, may last before the link is dead.
    pub(crate) fn allowed_silence(&self) -> Duration {
        self.ping_every * MISSED_PINGS
    }

    /// `Some(silence)` once the other end has been quiet too long.
    pub(crate) fn dead(&self) -> Option<Duration> {
        let silent = self.last_heard.elapsed();
        (silent > self.allowed_silence()).then_some(silent)
    }
}

/// Runs one send, counting it failed once the link's allowed silence
/// has passed without it going out.
pub(crate) async fn within<T, E: std::fmt::Display>(
    liveness: &Liveness,
    send: impl Future<Output = Result<T, E>>,
) -> Result<T, String> {
    match tokio::time::timeout(liveness.allowed_silence(), send).await {
        Ok(Ok(sent)) => Ok(sent),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!(
            "a frame could not be sent within {} s: the link is cut",
            liveness.allowed_silence().as_secs()
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_link_is_dead_only_after_three_pings_of_silence() {
        let mut liveness = Liveness::new(Duration::from_secs(10));
        tokio::time::advance(Duration::from_secs(29)).await;
        assert!(liveness.dead().is_none());
        liveness.heard();
        tokio::time::advance(Duration::from_secs(29)).await;
        assert!(liveness.dead().is_none(), "a frame restarts the count");
        tokio::time::advance(Duration::from_secs(2)).await;
        assert_eq!(liveness.dead(), Some(Duration::from_secs(31)));
    }

    #[tokio::test(start_paused = true)]
    async fn a_send_that_cannot_go_out_fails_at_the_allowed_silence() {
        let liveness = Liveness::new(Duration::from_secs(1));
        let stuck = std::future::pending::<Result<(), std::io::Error>>();
        let failed = within(&liveness, stuck).await.unwrap_err();
        assert!(failed.contains("within 3 s"), "{failed}");
        let sent = within(&liveness, async { Ok::<_, std::io::Error>(7) }).await;
        assert_eq!(sent.unwrap(), 7);
    }
}
