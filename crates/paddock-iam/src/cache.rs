//! Decisions reused per (principal, surface, capability, resource) for the
//! regime's TTL, clamped. Bounded: when full, expired entries go, and if
//! that frees nothing the cache starts over (a miss only costs asking the
//! regime again).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::capability::Capability;
use crate::identity::{Resource, Surface};
use crate::regime::Decision;

const MAX_ENTRIES: usize = 100_000;

#[derive(Hash, PartialEq, Eq)]
struct Key {
    principal: Arc<str>,
    via: Surface,
    capability: Capability,
    resource: Resource,
}

struct Entry {
    allow: bool,
    reason: Option<String>,
    until: Instant,
}

pub(crate) struct DecisionCache {
    max_ttl: Duration,
    entries: Mutex<HashMap<Key, Entry>>,
}

impl DecisionCache {
    pub fn new(max_ttl: Duration) -> Self {
        Self {
            max_ttl,
            entries: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Key, Entry>> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn get(
        &self,
        principal: &Arc<str>,
        via: Surface,
        capability: Capability,
        resource: &Resource,
    ) -> Option<Result<(), String>> {
        let key = Key {
            principal: principal.clone(),
            via,
            capability,
            resource: resource.clone(),
        };
        let entries = self.lock();
        let entry = entries.get(&key)?;
        if entry.until <= Instant::now() {
            return None;
        }
        Some(if entry.allow {
            Ok(())
        } else {
            Err(entry.reason.clone().unwrap_or_default())
        })
    }

    pub fn put(
        &self,
        principal: &Arc<str>,
        via: Surface,
        capability: Capability,
        resource: &Resource,
        decision: &Decision,
    ) {
        let ttl = decision.ttl.min(self.max_ttl);
        if ttl.is_zero() {
            return;
        }
        let mut entries = self.lock();
        if entries.len() >= MAX_ENTRIES {
            let now = Instant::now();
            entries.retain(|_, e| e.until > now);
            if entries.len() >= MAX_ENTRIES {
                entries.clear();
            }
        }
        entries.insert(
            Key {
                principal: principal.clone(),
                via,
                capability,
                resource: resource.clone(),
            },
            Entry {
                allow: decision.allow,
                reason: decision.reason.clone(),
                until: Instant::now() + ttl,
            },
        );
    }

    /// Drops every decision about one principal (its token was revoked).
    pub fn forget(&self, principal: &str) {
        self.lock().retain(|k, _| &*k.principal != principal);
    }
}
