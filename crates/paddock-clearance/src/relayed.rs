//! A verdict that travels: given at one hub for a request another holds
//! (a spoke, or a peer hub on the same database), sent under the holder's
//! own request id and applied by the holder's hub, which checks it as any
//! other — so it is applied once, wherever it was given.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::{CheckedVerdict, Hub, Verdict, VerdictScope};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RelayedVerdict {
    /// The holder's own request id.
    pub request_id: String,
    pub container: String,
    pub dest: String,
    pub action: String,
    pub scope: String,
    pub ttl_secs: Option<u64>,
    pub decided_by: String,
}

impl RelayedVerdict {
    /// `decided`, given for the mirror, for the request `request_id` the
    /// holder knows it by.
    pub fn of(request_id: String, decided: &CheckedVerdict) -> Self {
        let v = &decided.verdict;
        Self {
            request_id,
            container: decided.event.container.clone(),
            dest: decided.event.dest.clone(),
            action: v.action.clone(),
            scope: v.scope.as_str().to_owned(),
            ttl_secs: v.ttl.map(|t| t.as_secs()),
            decided_by: v.decided_by.clone(),
        }
    }
}

impl Hub {
    /// Applies a verdict relayed from where it was given; `via` prefixes
    /// who decided, for the audit ("hub: …"). The answer goes back.
    pub async fn apply_relayed(&self, v: RelayedVerdict, via: &str) -> Result<(), String> {
        let scope = VerdictScope::parse(&v.scope)
            .ok_or_else(|| format!("unknown verdict scope {:?}", v.scope))?;
        let verdict = Verdict {
            container: v.container,
            request_id: v.request_id,
            dest: v.dest,
            action: v.action,
            scope,
            ttl: v.ttl_secs.map(Duration::from_secs),
            decided_by: if via.is_empty() {
                v.decided_by
            } else {
                format!("{via}: {}", v.decided_by)
            },
        };
        match self.verdict(verdict).await {
            Ok(true) => Ok(()),
            Ok(false) => Err("the verdict was not applied".into()),
            Err(e) => Err(e.to_string()),
        }
    }
}
