//! A box's shield: `up` (the rules decide), `down` (every public
//! destination allowed, for a bounded time) or `block` (nothing at all).
//! The firewall in the box's namespace stays in every state: a lowered
//! shield widens what the gateway allows, never what bypasses it.

use std::time::Duration;

use paddock_clearance::EventKind;

use crate::EgressError;
use crate::audit::AuditDecision;
use crate::gateway::{BoxIdentity, Dest, Egress, now_ms};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shield {
    Up,
    Down { until_ms: i64 },
    Block,
}

impl Shield {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Up => "up",
            Self::Down { .. } => "down",
            Self::Block => "block",
        }
    }

    /// When a lowered shield goes up again (Unix ms); None otherwise.
    pub fn until_ms(self) -> Option<i64> {
        match self {
            Self::Down { until_ms } => Some(until_ms),
            _ => None,
        }
    }
}

impl Egress {
    pub fn shield_of(&self, box_id: &str) -> Shield {
        if let Some(shield) = self.shields().get(box_id).copied() {
            return match shield {
                Shield::Down { until_ms } if until_ms <= now_ms() => Shield::Up,
                other => other,
            };
        }
        let stored = match self.store().egress_shield(box_id) {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(box_id, error = %e, "cannot read a shield; blocking");
                return Shield::Block;
            }
        };
        let shield = match stored {
            Some((state, _)) if state == "block" => Shield::Block,
            Some((state, Some(until_ms))) if state == "down" && until_ms > now_ms() => {
                Shield::Down { until_ms }
            }
            _ => Shield::Up,
        };
        self.shields().insert(box_id.to_owned(), shield);
        shield
    }

    /// Changes a box's shield. `down` needs a TTL within the configured cap.
    /// Held requests of the box are refused: they were asked under the old
    /// state.
    pub fn set_shield(
        &self,
        who: &BoxIdentity,
        state: &str,
        ttl: Option<Duration>,
        by: &str,
    ) -> Result<Shield, EgressError> {
        let cap = Duration::from_secs(self.config().max_down_secs);
        let shield = match state {
            "up" => Shield::Up,
            "block" => Shield::Block,
            "down" => {
                let ttl = ttl.unwrap_or(cap);
                if ttl.is_zero() || ttl > cap {
                    return Err(EgressError::Invalid(format!(
                        "a lowered shield lasts between 1 and {} seconds",
                        cap.as_secs()
                    )));
                }
                Shield::Down {
                    until_ms: now_ms() + ttl.as_millis() as i64,
                }
            }
            other => {
                return Err(EgressError::Invalid(format!(
                    "shield state must be up, down or block, not {other:?}"
                )));
            }
        };
        let stored = match shield {
            Shield::Up => None,
            Shield::Down { until_ms } => Some(("down", Some(until_ms))),
            Shield::Block => Some(("block", None)),
        };
        self.store().set_egress_shield(&who.box_id, stored)?;
        self.shields().insert(who.box_id.clone(), shield);
        self.forget_box(
            who,
            &format!("the box's shield changed to {}", shield.as_str()),
        );
        let kind = match shield {
            Shield::Up | Shield::Block => EventKind::ShieldUp,
            Shield::Down { .. } => EventKind::ShieldDown,
        };
        let mut event = self.event(kind, who);
        event.action = shield.as_str().into();
        event.ok = true;
        event.reason = match shield {
            Shield::Down { until_ms } => format!("lowered by {by} until {until_ms} (unix ms)"),
            _ => format!("set to {} by {by}", shield.as_str()),
        };
        self.hub().publish(event);
        self.record(
            who,
            Dest::everywhere(),
            match shield {
                Shield::Up => AuditDecision::ShieldUp,
                Shield::Down { .. } => AuditDecision::ShieldDown,
                Shield::Block => AuditDecision::ShieldBlock,
            },
            by,
            "",
            "",
        );
        Ok(shield)
    }

    /// The box's firewall is gone with it.
    pub fn box_gone(&self, who: &BoxIdentity, reason: &str) {
        self.forget_identity(&who.box_id);
        self.forget_box(who, reason);
        self.shields().remove(&who.box_id);
        if let Err(e) = self.store().delete_box_egress_rules(&who.box_id) {
            tracing::warn!(box_id = %who.box_id, error = %e, "cannot drop the box's egress rules");
        }
        if let Err(e) = self.store().delete_box_http_rules(&who.box_id) {
            tracing::warn!(box_id = %who.box_id, error = %e, "cannot drop the box's HTTP rules");
        }
        let _ = self.reload_rules();
        let _ = self.reload_http_rules();
        let mut event = self.event(EventKind::ShieldDisengaged, who);
        event.reason = reason.to_owned();
        self.hub().publish(event);
    }
}
