//! Docker's word on box containers: starts and deaths, whoever caused
//! them, passed to the extensions (the egress gateway announces them and
//! drops a dead box's held requests).
//!
//! It is also how paddock sees the engine restart under running boxes:
//! a daemon that stops first stops its containers (SIGTERM, then
//! SIGKILL), then its event stream ends. Boxes killed by a signal just
//! before the stream ended were the engine's casualties, not their own
//! processes' choice; once the stream is back they are started again
//! through the guarded start (host fence verified, namespace rules in
//! place before the container runs on), as if a person had pressed Start.

use std::collections::{BTreeSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use tokio_util::sync::CancellationToken;

use crate::{BoxService, labels};

/// How long to wait before subscribing again when the engine's stream ends.
const RESUBSCRIBE: Duration = Duration::from_secs(1);
/// Signal deaths this recent when the stream ends are the engine's doing.
const ENGINE_STOP_WINDOW: Duration = Duration::from_secs(30);

/// Deaths by a signal (exit 128 + n: SIGTERM's 143, SIGKILL's 137), kept
/// for `ENGINE_STOP_WINDOW`.
#[derive(Default)]
pub(crate) struct Casualties {
    recent: VecDeque<(String, Instant)>,
    /// The engine's casualties, to be started once it is back.
    to_restart: BTreeSet<String>,
}

impl Casualties {
    pub(crate) fn died(&mut self, box_id: &str, exit_code: Option<i64>, now: Instant) {
        if matches!(exit_code, Some(code) if code > 128) {
            self.recent.push_back((box_id.to_owned(), now));
        }
        while self
            .recent
            .front()
            .is_some_and(|(_, at)| now.duration_since(*at) > ENGINE_STOP_WINDOW)
        {
            self.recent.pop_front();
        }
    }

    /// The stream ended: the recent signal deaths are the engine's.
    pub(crate) fn engine_lost(&mut self, now: Instant) {
        for (box_id, at) in self.recent.drain(..) {
            if now.duration_since(at) <= ENGINE_STOP_WINDOW {
                self.to_restart.insert(box_id);
            }
        }
    }

    /// The boxes to start now that the engine is back.
    pub(crate) fn engine_back(&mut self) -> BTreeSet<String> {
        std::mem::take(&mut self.to_restart)
    }
}

impl BoxService {
    pub async fn watch_containers(self: Arc<Self>, stop: CancellationToken) {
        let mut casualties = Casualties::default();
        loop {
            match self
                .engine
                .container_events(&[(labels::INSTANCE, &self.instance)])
                .await
            {
                Ok(stream) => {
                    let back = casualties.engine_back();
                    if !back.is_empty() {
                        tokio::spawn(self.clone().bring_back(back));
                    }
                    let mut stream = std::pin::pin!(stream);
                    loop {
                        let event = tokio::select! {
                            _ = stop.cancelled() => return,
                            event = stream.next() => event,
                        };
                        match event {
                            Some(Ok(event)) => {
                                let Some(box_id) = event.labels.get(labels::BOX) else {
                                    continue;
                                };
                                let project = event
                                    .labels
                                    .get(labels::PROJECT)
                                    .map(String::as_str)
                                    .unwrap_or("");
                                if let paddock_docker::ContainerChange::Died { exit_code } =
                                    &event.change
                                {
                                    casualties.died(box_id, *exit_code, Instant::now());
                                    self.main_process_ended(box_id, *exit_code);
                                }
                                for ext in &self.extensions {
                                    ext.container_changed(box_id, project, &event.change);
                                }
                            }
                            Some(Err(e)) => {
                                tracing::debug!(error = %e, "docker event stream failed; subscribing again");
                                casualties.engine_lost(Instant::now());
                                break;
                            }
                            None => {
                                casualties.engine_lost(Instant::now());
                                break;
                            }
                        }
                    }
                }
                Err(e) => tracing::debug!(error = %e, "cannot watch docker events yet"),
            }
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(RESUBSCRIBE) => {}
            }
        }
    }

    /// Starts again the boxes the engine stopped when it went, each
    /// through the guarded start; one that fails stays `exited`, with the
    /// reason logged.
    async fn bring_back(self: Arc<Self>, boxes: BTreeSet<String>) {
        for box_id in boxes {
            // A box a person stopped, or destroyed, meanwhile stays so.
            let exited = self
                .store
                .get_box(&box_id)
                .ok()
                .flatten()
                .is_some_and(|row| row.state == paddock_store::BoxState::Exited);
            if !exited {
                continue;
            }
            match self.start(&box_id).await {
                Ok(view) => tracing::warn!(
                    box_id,
                    state = view.state.as_str(),
                    "box started again: the engine had stopped it when it went away"
                ),
                Err(e) => tracing::error!(
                    box_id,
                    error = %e,
                    "cannot start a box the engine stopped when it went away; it stays exited"
                ),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_signal_deaths_just_before_the_engine_went_are_its_casualties() {
        let t0 = Instant::now();
        let mut c = Casualties::default();
        c.died("finished", Some(0), t0);
        c.died("failed", Some(1), t0);
        c.died("long-ago", Some(143), t0);
        let later = t0 + ENGINE_STOP_WINDOW + Duration::from_secs(5);
        c.died("termed", Some(143), later);
        c.died("killed", Some(137), later);
        c.engine_lost(later + Duration::from_secs(1));
        let back: Vec<String> = c.engine_back().into_iter().collect();
        assert_eq!(back, ["killed", "termed"]);
        assert!(c.engine_back().is_empty(), "each is brought back once");
    }
}
