//! Decisions reused per (principal, surface, capability, resource) for the
//! regime's TTL, clamped. A lookup borrows its key (entries are bucketed by
//! a hash of the borrowed parts and compared in full), so a hit allocates
//! nothing. Bounded: when full, expired entries go, and if that frees
//! nothing the cache starts over (a miss only costs asking the regime).

use parking_lot::Mutex;
use std::collections::HashMap;
use std::hash::{BuildHasher, Hash, Hasher};
use std::sync::Arc;
use std::time::{Duration, Instant};

use foldhash::fast::RandomState;

use crate::capability::Capability;
use crate::identity::{Resource, Surface};
use crate::regime::Decision;

const MAX_ENTRIES: usize = 100_000;

struct Entry {
    principal: Arc<str>,
    via: Surface,
    capability: Capability,
    resource: Resource,
    allow: bool,
    reason: Option<String>,
    until: Instant,
}

impl Entry {
    fn is(
        &self,
        principal: &str,
        via: Surface,
        capability: Capability,
        resource: &Resource,
    ) -> bool {
        self.capability == capability
            && self.via == via
            && &*self.principal == principal
            && self.resource == *resource
    }
}

pub(crate) struct DecisionCache {
    max_ttl: Duration,
    hasher: RandomState,
    buckets: Mutex<(HashMap<u64, Vec<Entry>>, usize)>,
}

impl DecisionCache {
    pub fn new(max_ttl: Duration) -> Self {
        Self {
            max_ttl,
            hasher: RandomState::default(),
            buckets: Mutex::new((HashMap::new(), 0)),
        }
    }

    fn hash(
        &self,
        principal: &str,
        via: Surface,
        capability: Capability,
        resource: &Resource,
    ) -> u64 {
        let mut h = self.hasher.build_hasher();
        principal.hash(&mut h);
        via.hash(&mut h);
        capability.hash(&mut h);
        resource.hash(&mut h);
        h.finish()
    }

    fn lock(&self) -> parking_lot::MutexGuard<'_, (HashMap<u64, Vec<Entry>>, usize)> {
        self.buckets.lock()
    }

    pub fn get(
        &self,
        principal: &str,
        via: Surface,
        capability: Capability,
        resource: &Resource,
    ) -> Option<Result<(), String>> {
        let key = self.hash(principal, via, capability, resource);
        let guard = self.lock();
        let entry = guard
            .0
            .get(&key)?
            .iter()
            .find(|e| e.is(principal, via, capability, resource))?;
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
        let key = self.hash(principal, via, capability, resource);
        let mut guard = self.lock();
        let (buckets, len) = &mut *guard;
        if *len >= MAX_ENTRIES {
            let now = Instant::now();
            buckets.retain(|_, b| {
                b.retain(|e| e.until > now);
                !b.is_empty()
            });
            *len = buckets.values().map(Vec::len).sum();
            if *len >= MAX_ENTRIES {
                buckets.clear();
                *len = 0;
            }
        }
        let bucket = buckets.entry(key).or_default();
        let fresh = Entry {
            principal: principal.clone(),
            via,
            capability,
            resource: resource.clone(),
            allow: decision.allow,
            reason: decision.reason.clone(),
            until: Instant::now() + ttl,
        };
        match bucket
            .iter_mut()
            .find(|e| e.is(principal, via, capability, resource))
        {
            Some(existing) => *existing = fresh,
            None => {
                bucket.push(fresh);
                *len += 1;
            }
        }
    }

    /// Drops every decision about one principal (its token was revoked).
    pub fn forget(&self, principal: &str) {
        let mut guard = self.lock();
        let (buckets, len) = &mut *guard;
        buckets.retain(|_, b| {
            b.retain(|e| &*e.principal != principal);
            !b.is_empty()
        });
        *len = buckets.values().map(Vec::len).sum();
    }
}
