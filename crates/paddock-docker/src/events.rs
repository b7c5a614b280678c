//! Docker's event stream, narrowed to the starts and deaths of containers
//! that carry the caller's labels.

use std::collections::HashMap;

use bollard::query_parameters::EventsOptionsBuilder;
use futures_util::{Stream, StreamExt};

use crate::{Engine, EngineError, Result};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ContainerChange {
    Started,
    /// The main process ended (or was killed); its exit code when known.
    Died {
        exit_code: Option<i64>,
    },
}

#[derive(Debug, Clone)]
pub struct ContainerEvent {
    pub container_id: String,
    pub change: ContainerChange,
    pub labels: HashMap<String, String>,
}

impl Engine {
    /// Container starts and deaths from now on. The stream ends (or yields
    /// an error) when the engine connection does; callers subscribe again.
    pub async fn container_events(
        &self,
        labels: &[(&str, &str)],
    ) -> Result<impl Stream<Item = Result<ContainerEvent>> + use<>> {
        let filters = HashMap::from([
            ("type".to_owned(), vec!["container".to_owned()]),
            (
                "event".to_owned(),
                vec!["start".to_owned(), "die".to_owned()],
            ),
            (
                "label".to_owned(),
                labels.iter().map(|(k, v)| format!("{k}={v}")).collect(),
            ),
        ]);
        let options = EventsOptionsBuilder::default().filters(&filters).build();
        let stream = self.client().await?.events(Some(options));
        Ok(stream.filter_map(|message| async move {
            let message = match message {
                Ok(m) => m,
                Err(e) => return Some(Err(EngineError::from(e))),
            };
            let actor = message.actor?;
            let mut attributes = actor.attributes.unwrap_or_default();
            let change = match message.action.as_deref()? {
                "start" => ContainerChange::Started,
                "die" => ContainerChange::Died {
                    exit_code: attributes.remove("exitCode").and_then(|c| c.parse().ok()),
                },
                _ => return None,
            };
            Some(Ok(ContainerEvent {
                container_id: actor.id?,
                change,
                labels: attributes,
            }))
        }))
    }
}
