//! Asking ahead: an agent files a request for a destination, with its
//! reason, before it connects, so a person sees why and can decide while
//! the agent goes on. The request is held exactly like a connection's
//! (same hub entry — the box's connection to it joins it and proceeds the
//! moment it is allowed), counts against `max_held_per_box` and is
//! withdrawn at the hold deadline. Only a person decides; asking decides
//! nothing. What the rules already decide is said at once, and nothing is
//! filed. No name is resolved here (asking is telling, see `resolver`).

use std::sync::Arc;

use paddock_clearance::{AGENT_REASON, Hold, PendingView};
use paddock_store::AuditQuery;

use crate::EgressError;
use crate::audit::AuditDecision;
use crate::gateway::{
    BoxIdentity, Dest, Egress, Host, NameClearance, address_verdict, clear_name, now_ms,
};
use crate::policy::{Action, Rule, Scope};
use crate::shield::Shield;

/// The longest reason kept, in characters.
pub const MAX_REASON_CHARS: usize = 500;

/// What asking ahead gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ahead {
    /// The rules (or a lowered shield) already let it through.
    Allowed { by: String },
    /// Nobody can let it through (a deny rule, an address check, a
    /// blocked shield, too many held requests already).
    Refused { reason: String },
    /// Held for a person: a new request, or one already held for the same
    /// destination (`joined`).
    Held {
        request_id: String,
        joined: bool,
        deadline_ms: i64,
    },
}

/// An agent's reason as paddock keeps it: untrusted text, one line, no
/// control characters, at most [`MAX_REASON_CHARS`]. Every surface shows
/// it as "agent says" and escapes it for its own medium.
pub fn agent_reason(text: &str) -> String {
    let one_line: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let words: Vec<&str> = one_line.split_whitespace().collect();
    words.join(" ").chars().take(MAX_REASON_CHARS).collect()
}

/// A box's egress as its agent may know it.
#[derive(Debug, Clone)]
pub struct EgressStatus {
    /// Held right now, waiting for a person.
    pub pending: Vec<PendingView>,
    /// Rules of the box or its project that allow or deny.
    pub rules: Vec<Rule>,
    /// The latest refusals and withdrawals, newest first.
    pub refused: Vec<paddock_store::AuditRow>,
}

/// How many recent refusals `egress_status` reports.
const RECENT_REFUSALS: u32 = 20;

impl Egress {
    /// Files a request for `destination:port` on behalf of the box's
    /// agent, unless the rules already decide it.
    pub fn ask_ahead(
        self: &Arc<Self>,
        who: &BoxIdentity,
        destination: &str,
        port: u16,
        reason: &str,
    ) -> Result<Ahead, EgressError> {
        let host = Host::parse(destination.trim()).ok_or_else(|| {
            EgressError::Invalid(format!(
                "{destination:?} is neither a host name nor an IP address"
            ))
        })?;
        if port == 0 {
            return Err(EgressError::Invalid("port must be 1 to 65535".into()));
        }
        if let Some(why) = self.audit_failure() {
            return Ok(Ahead::Refused {
                reason: format!("paddock cannot record decisions right now ({why})"),
            });
        }
        let policy = self.policy_of(who);
        if policy.shield == Shield::Block {
            return Ok(Ahead::Refused {
                reason: "the box's shield blocks all egress".into(),
            });
        }
        let set = policy.rules(who);
        match &host {
            Host::Name(name) => match clear_name(set.for_name(name, port), &policy.shield) {
                NameClearance::Denied(rule) => {
                    return Ok(Ahead::Refused {
                        reason: format!("denied by {}", rule.describe()),
                    });
                }
                NameClearance::Cleared { by } => return Ok(Ahead::Allowed { by }),
                NameClearance::Undecided => {}
            },
            Host::Ip(ip) => {
                let rule = set.for_address(*ip, port);
                if let Err((reason, _)) = address_verdict(rule, *ip) {
                    return Ok(Ahead::Refused { reason });
                }
                match (rule.map(|r| r.action), &policy.shield) {
                    (Some(Action::Allow), _) | (None | Some(Action::Ask), Shield::Down { .. }) => {
                        return Ok(Ahead::Allowed {
                            by: rule.map_or("shield down".into(), |r| r.describe()),
                        });
                    }
                    _ => {}
                }
            }
        }
        Ok(self.file(who, &host, port, &agent_reason(reason)))
    }

    fn file(self: &Arc<Self>, who: &BoxIdentity, host: &Host, port: u16, reason: &str) -> Ahead {
        let host_text = host.as_string();
        let domain = match host {
            Host::Name(n) => n.clone(),
            Host::Ip(_) => String::new(),
        };
        let dest = Dest::tcp(&host_text, port, &domain);
        let mut event = self.held_event(who, dest);
        event
            .dossier
            .insert(AGENT_REASON.to_owned(), reason.to_owned());
        let limit = self.config.max_held_per_box.max(1);
        let timeout = self.config.hold_timeout();
        let ticket = match self.hub.hold(event, limit, timeout) {
            Hold::Held(ticket) => ticket,
            Hold::TooMany => {
                return Ahead::Refused {
                    reason: format!("the box already waits on {limit} undecided destinations"),
                };
            }
        };
        let deadline_ms = self
            .hub
            .pending_request(&ticket.request_id)
            .map_or_else(now_ms, |p| PendingView::from(&p).deadline_ms);
        if !ticket.fresh {
            return Ahead::Held {
                request_id: ticket.request_id,
                joined: true,
                deadline_ms,
            };
        }
        self.record(
            who,
            dest,
            AuditDecision::Held,
            "agent asked ahead",
            &ticket.request_id,
            reason,
        );
        self.own_held(who, &host_text, &domain, port, &ticket);
        Ahead::Held {
            request_id: ticket.request_id,
            joined: false,
            deadline_ms,
        }
    }

    /// What the box's agent may know of its egress.
    pub fn status_of(&self, who: &BoxIdentity) -> Result<EgressStatus, EgressError> {
        let pending = self
            .hub
            .pending()
            .iter()
            .filter(|p| p.event.container == who.box_id)
            .map(PendingView::from)
            .collect();
        self.reload_rules()?;
        let rules = self
            .rules()
            .iter()
            .filter(|r| {
                let mine = match &r.scope {
                    Scope::Box(b) => *b == who.box_id,
                    Scope::Project(p) => *p == who.project,
                };
                mine && r.action != Action::Ask
            })
            .cloned()
            .collect();
        let refusals = [
            AuditDecision::Denied,
            AuditDecision::VerdictDeny,
            AuditDecision::Timeout,
            AuditDecision::Dropped,
        ];
        let mut refused = self.store().egress_audit(&AuditQuery {
            box_id: Some(who.box_id.clone()),
            limit: 500,
            ..AuditQuery::default()
        })?;
        refused.retain(|r| refusals.iter().any(|d| d.as_str() == r.decision));
        refused.reverse();
        refused.truncate(RECENT_REFUSALS as usize);
        Ok(EgressStatus {
            pending,
            rules,
            refused,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reason_is_one_bounded_line_without_control_characters() {
        assert_eq!(
            agent_reason("  need\nthe\x1b[31m API\t docs "),
            "need the [31m API docs"
        );
        assert_eq!(
            agent_reason(&"x".repeat(2000)).chars().count(),
            MAX_REASON_CHARS
        );
        assert_eq!(
            agent_reason("ü".repeat(600).as_str()).chars().count(),
            MAX_REASON_CHARS
        );
    }
}
