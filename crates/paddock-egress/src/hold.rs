//! Held connections. Attempts of one box on one destination share one
//! pending request; each waits on the same outcome.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::watch;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Allowed { by: String },
    Denied { by: String, reason: String },
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct HoldKey {
    pub box_id: String,
    pub host: String,
    pub port: u16,
}

pub struct Held {
    pub request_id: String,
    pub key: HoldKey,
    pub project: String,
    outcome: watch::Sender<Option<Outcome>>,
}

impl Held {
    pub async fn wait(&self) -> Outcome {
        let mut rx = self.outcome.subscribe();
        match rx.wait_for(Option::is_some).await {
            Ok(v) => v.clone().unwrap_or(Outcome::Denied {
                by: "paddock".into(),
                reason: "no outcome".into(),
            }),
            Err(_) => Outcome::Denied {
                by: "paddock".into(),
                reason: "the hold was dropped".into(),
            },
        }
    }
}

#[derive(Default)]
struct Maps {
    by_key: HashMap<HoldKey, Arc<Held>>,
    by_request: HashMap<String, HoldKey>,
}

#[derive(Default)]
pub(crate) struct Holds {
    maps: Mutex<Maps>,
}

pub enum Joined {
    /// A new pending request: announce it.
    New(Arc<Held>),
    /// Joined one already announced.
    Existing(Arc<Held>),
    /// The box already has as many pending requests as it may.
    TooMany,
}

impl Holds {
    fn maps(&self) -> std::sync::MutexGuard<'_, Maps> {
        self.maps.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Joins the pending request for `key`, or opens one if the box has
    /// fewer than `limit` (a box must not bury a person in prompts).
    pub fn join(&self, key: HoldKey, project: &str, limit: usize) -> Joined {
        let mut maps = self.maps();
        if let Some(held) = maps.by_key.get(&key) {
            return Joined::Existing(held.clone());
        }
        if maps
            .by_key
            .keys()
            .filter(|k| k.box_id == key.box_id)
            .count()
            >= limit
        {
            return Joined::TooMany;
        }
        let request_id = hex::encode(rand::random::<[u8; 12]>());
        let (outcome, _) = watch::channel(None);
        let held = Arc::new(Held {
            request_id: request_id.clone(),
            key: key.clone(),
            project: project.to_owned(),
            outcome,
        });
        maps.by_request.insert(request_id, key.clone());
        maps.by_key.insert(key, held.clone());
        Joined::New(held)
    }

    /// Ends a pending request with `outcome`; `None` if it was not held
    /// (already decided, timed out or dropped).
    pub fn resolve(&self, request_id: &str, outcome: Outcome) -> Option<Arc<Held>> {
        let held = {
            let mut maps = self.maps();
            let key = maps.by_request.remove(request_id)?;
            maps.by_key.remove(&key)?
        };
        held.outcome.send_replace(Some(outcome));
        Some(held)
    }

    pub fn of_box(&self, box_id: &str) -> Vec<String> {
        self.maps()
            .by_key
            .iter()
            .filter(|(k, _)| k.box_id == box_id)
            .map(|(_, h)| h.request_id.clone())
            .collect()
    }
}
