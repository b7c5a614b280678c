//! What the gateway counts for `/metrics`: its decisions by outcome (the
//! decision log's vocabulary) and by what decided them, and each stored
//! rule's decisions.

use std::sync::{Arc, LazyLock};

use paddock_metrics::CounterVec;

use crate::audit::AuditDecision;

static DECISIONS: LazyLock<Arc<CounterVec>> = LazyLock::new(|| {
    paddock_metrics::counter(
        "paddock_egress_decisions_total",
        "Egress decisions by outcome, as the decision log names them, and by what decided \
         (rule, http_rule, profile, default, person, paddock).",
        &["decision", "by"],
    )
});

static RULE_DECISIONS: LazyLock<Arc<CounterVec>> = LazyLock::new(|| {
    paddock_metrics::counter(
        "paddock_egress_rule_decisions_total",
        "Decisions taken by each stored rule: its number, `http:` and its number for an HTTP rule.",
        &["rule"],
    )
});

/// Registers the families, so rates work from the first scrape.
pub fn register() {
    LazyLock::force(&DECISIONS);
    LazyLock::force(&RULE_DECISIONS);
}

/// What kind of thing decided, from the log's `decided_by`: a bounded set,
/// so the label never grows with names or rule numbers.
fn decider(decision: AuditDecision, decided_by: &str) -> &'static str {
    if matches!(
        decision,
        AuditDecision::VerdictAllow | AuditDecision::VerdictDeny
    ) {
        "person"
    } else if decided_by.starts_with("rule #") {
        "rule"
    } else if decided_by.starts_with("http rule #") {
        "http_rule"
    } else if decided_by.starts_with("profile:") {
        "profile"
    } else if decided_by == "default" {
        "default"
    } else {
        "paddock"
    }
}

pub(crate) fn decided(decision: AuditDecision, decided_by: &str) {
    DECISIONS.inc(&[decision.as_str(), decider(decision, decided_by)]);
    if let Some(rule) = rule_label(decided_by) {
        RULE_DECISIONS.inc(&[&rule]);
    }
}

/// The rule's label: its number (`12`), `http:12` for an HTTP rule. A
/// stored rule's number is borrowed from `decided_by`: nothing is
/// allocated on the gateway's path for the common case.
fn rule_label(decided_by: &str) -> Option<std::borrow::Cow<'_, str>> {
    fn number(rest: &str) -> Option<&str> {
        let end = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        (end > 0).then(|| &rest[..end])
    }
    if let Some(rest) = decided_by.strip_prefix("rule #") {
        number(rest).map(std::borrow::Cow::Borrowed)
    } else {
        let rest = decided_by.strip_prefix("http rule #")?;
        number(rest).map(|n| std::borrow::Cow::Owned(format!("http:{n}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deciders_are_a_bounded_set() {
        assert_eq!(decider(AuditDecision::Allowed, "rule #12"), "rule");
        assert_eq!(decider(AuditDecision::Denied, "profile:npm"), "profile");
        assert_eq!(decider(AuditDecision::Held, "default"), "default");
        assert_eq!(decider(AuditDecision::VerdictAllow, "alice"), "person");
        assert_eq!(decider(AuditDecision::VerdictDeny, "rule #3"), "person");
        assert_eq!(decider(AuditDecision::Denied, "resolver"), "paddock");
        assert_eq!(decider(AuditDecision::Allowed, "shield down"), "paddock");
        assert_eq!(decider(AuditDecision::Denied, "http rule #4"), "http_rule");
    }

    #[test]
    fn rules_are_labelled_by_number_only() {
        assert_eq!(rule_label("rule #12").as_deref(), Some("12"));
        assert_eq!(rule_label("http rule #4").as_deref(), Some("http:4"));
        assert_eq!(rule_label("rule #7 by alice").as_deref(), Some("7"));
        assert_eq!(rule_label("rule #").as_deref(), None);
        assert_eq!(rule_label("default"), None);
    }
}
