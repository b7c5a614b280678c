//! A verdict as every surface receives it — REST, the WebSocket,
//! `org.paddock.Clearance1.Verdict` and the terminal client that sends
//! one — so the fields, their types and their checks are the same
//! wherever a person decides. (`org.terok.Clearance1.Verdict` keeps
//! terok's four parameters; it is this request without scope or TTL.)

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::hub::{Verdict, VerdictScope};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VerdictRequest {
    pub container: String,
    pub request_id: String,
    pub dest: String,
    /// `allow` or `deny`; the hub checks it.
    pub action: String,
    /// `once`, `box` (the default) or `project`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// How long a `box` or `project` verdict lasts; none is until removed.
    /// Signed, so that a negative value is this request's own error on
    /// every surface rather than a parser's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl_secs: Option<i64>,
}

/// Why a verdict request is refused before it reaches the hub.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerdictRequestError {
    #[error("scope must be once, box or project, not {0:?}")]
    InvalidScope(String),
    #[error("ttl_secs must be positive, not {0}")]
    InvalidTtl(i64),
}

impl VerdictRequest {
    /// The verdict this request asks for, credited to `decided_by`.
    pub fn into_verdict(self, decided_by: &str) -> Result<Verdict, VerdictRequestError> {
        let scope = match self.scope.as_deref() {
            None => VerdictScope::Box,
            Some(s) => {
                VerdictScope::parse(s).ok_or_else(|| VerdictRequestError::InvalidScope(s.into()))?
            }
        };
        let ttl = match self.ttl_secs {
            None => None,
            Some(secs) if secs > 0 => Some(Duration::from_secs(secs as u64)),
            Some(secs) => return Err(VerdictRequestError::InvalidTtl(secs)),
        };
        Ok(Verdict {
            container: self.container,
            request_id: self.request_id,
            dest: self.dest,
            action: self.action,
            scope,
            ttl,
            decided_by: decided_by.to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(scope: Option<&str>, ttl_secs: Option<i64>) -> VerdictRequest {
        VerdictRequest {
            container: "b1".into(),
            request_id: "r1".into(),
            dest: "203.0.113.9".into(),
            action: "allow".into(),
            scope: scope.map(str::to_owned),
            ttl_secs,
        }
    }

    #[test]
    fn a_request_becomes_its_verdict_or_a_typed_refusal() {
        let v = request(None, None).into_verdict("token:t1").unwrap();
        assert_eq!(
            (v.scope, v.ttl, v.decided_by.as_str()),
            (VerdictScope::Box, None, "token:t1")
        );
        let v = request(Some("project"), Some(60))
            .into_verdict("x")
            .unwrap();
        assert_eq!(
            (v.scope, v.ttl),
            (VerdictScope::Project, Some(Duration::from_secs(60)))
        );
        assert_eq!(
            request(Some("forever"), None)
                .into_verdict("x")
                .unwrap_err(),
            VerdictRequestError::InvalidScope("forever".into())
        );
        for bad in [0, -5] {
            assert_eq!(
                request(None, Some(bad)).into_verdict("x").unwrap_err(),
                VerdictRequestError::InvalidTtl(bad)
            );
        }
    }

    #[test]
    fn the_wire_form_is_the_same_on_every_surface() {
        let sent = serde_json::to_value(request(Some("once"), None)).unwrap();
        assert_eq!(
            sent,
            serde_json::json!({"container": "b1", "request_id": "r1", "dest": "203.0.113.9", "action": "allow", "scope": "once"})
        );
        let back: VerdictRequest = serde_json::from_value(sent).unwrap();
        assert_eq!(back, request(Some("once"), None));
        let unknown = serde_json::json!({"container": "b", "request_id": "r", "dest": "d", "action": "allow", "why": 1});
        assert!(serde_json::from_value::<VerdictRequest>(unknown).is_err());
    }
}
