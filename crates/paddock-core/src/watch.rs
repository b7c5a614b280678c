//! Docker's word on box containers: starts and deaths, whoever caused
//! them, passed to the extensions (the egress gateway announces them and
//! drops a dead box's held requests).

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use tokio_util::sync::CancellationToken;

use crate::{BoxService, labels};

/// How long to wait before subscribing again when the engine's stream ends.
const RESUBSCRIBE: Duration = Duration::from_secs(1);

impl BoxService {
    pub async fn watch_containers(self: Arc<Self>, stop: CancellationToken) {
        loop {
            match self
                .engine
                .container_events(&[(labels::INSTANCE, &self.instance)])
                .await
            {
                Ok(stream) => {
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
                                    self.main_process_ended(box_id, *exit_code);
                                }
                                for ext in &self.extensions {
                                    ext.container_changed(box_id, project, &event.change);
                                }
                            }
                            Some(Err(e)) => {
                                tracing::debug!(error = %e, "docker event stream failed; subscribing again");
                                break;
                            }
                            None => break,
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
}
