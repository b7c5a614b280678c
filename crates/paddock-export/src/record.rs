//! A decision log entry as a record: paddock's own shape (the one the
//! REST log and the console's export show) or OCSF Network Activity.

use paddock_store::AuditRow;
use serde_json::{Value, json};

/// The entry as paddock shows it everywhere: REST, the console, JSONL.
pub fn jsonl(r: &AuditRow) -> Value {
    json!({
        "id": r.id, "at": r.at_ms, "box_id": r.box_id, "project": r.project,
        "dest": r.dest, "port": r.port, "proto": r.proto, "domain": r.domain,
        "decision": r.decision, "decided_by": r.decided_by,
        "request_id": r.request_id, "reason": r.reason,
    })
}

/// The OCSF schema version the records follow.
const OCSF_VERSION: &str = "1.1.0";
const NETWORK_ACTIVITY: i64 = 4001;

/// OCSF's activity for a decision: a connection let through opens (1),
/// one refused is refused (5), anything else (a hold, a shield moved) is
/// other (99), named by the decision.
fn activity(decision: &str) -> (i64, &'static str) {
    match decision {
        "allowed" | "verdict_allow" | "injected" => (1, "Open"),
        "denied" | "verdict_deny" | "timeout" | "dropped" | "raw_block" | "dns_refused"
        | "malformed" | "shield_block" | "secret_misuse" => (5, "Refuse"),
        _ => (99, "Other"),
    }
}

/// OCSF's action: allowed (1), denied (2), or neither yet (0).
fn action(activity_id: i64) -> (i64, &'static str) {
    match activity_id {
        1 => (1, "Allowed"),
        5 => (2, "Denied"),
        _ => (0, "Unknown"),
    }
}

fn protocol_name(proto: u8) -> &'static str {
    match proto {
        6 => "tcp",
        17 => "udp",
        1 => "icmp",
        _ => "other",
    }
}

/// The entry as an OCSF Network Activity event (class 4001): the box is
/// the source endpoint, the destination the destination endpoint, what
/// decided and paddock's own names are under `unmapped`.
pub fn ocsf(r: &AuditRow) -> Value {
    let (activity_id, activity_name) = activity(&r.decision);
    let (action_id, action_name) = action(activity_id);
    let mut destination = json!({ "port": r.port });
    if r.dest.parse::<std::net::IpAddr>().is_ok() {
        destination["ip"] = json!(r.dest);
        if !r.domain.is_empty() {
            destination["hostname"] = json!(r.domain);
        }
    } else {
        destination["hostname"] = json!(r.dest);
    }
    let severity_id = if r.decision == "secret_misuse" { 4 } else { 1 };
    let message = if r.reason.is_empty() {
        format!("{} by {}", r.decision, r.decided_by)
    } else {
        format!("{} by {}: {}", r.decision, r.decided_by, r.reason)
    };
    json!({
        "class_uid": NETWORK_ACTIVITY,
        "class_name": "Network Activity",
        "category_uid": 4,
        "category_name": "Network Activity",
        "activity_id": activity_id,
        "activity_name": activity_name,
        "type_uid": NETWORK_ACTIVITY * 100 + activity_id,
        "type_name": format!("Network Activity: {activity_name}"),
        "time": r.at_ms,
        "severity_id": severity_id,
        "severity": if severity_id == 4 { "High" } else { "Informational" },
        "action_id": action_id,
        "action": action_name,
        "disposition_id": action_id,
        "status_id": match action_id { 1 => 1, 2 => 2, _ => 0 },
        "message": message,
        "metadata": {
            "version": OCSF_VERSION,
            "uid": r.id.to_string(),
            "log_name": "egress decisions",
            "product": {"name": "paddock", "vendor_name": "paddock", "version": env!("CARGO_PKG_VERSION")},
        },
        "src_endpoint": {"name": r.box_id, "uid": r.box_id},
        "dst_endpoint": destination,
        "connection_info": {
            "protocol_num": r.proto,
            "protocol_name": protocol_name(r.proto),
            "direction_id": 2,
            "direction": "Outbound",
        },
        "unmapped": {
            "project": r.project,
            "decision": r.decision,
            "decided_by": r.decided_by,
            "request_id": r.request_id,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(decision: &str, dest: &str, domain: &str) -> AuditRow {
        AuditRow {
            id: 7,
            at_ms: 1_700_000_000_123,
            box_id: "b1".into(),
            project: "p".into(),
            dest: dest.into(),
            port: 443,
            proto: 6,
            domain: domain.into(),
            decision: decision.into(),
            decided_by: "rule #3".into(),
            request_id: "r1".into(),
            reason: String::new(),
        }
    }

    #[test]
    fn an_allowed_connection_is_an_open_network_activity() {
        let event = ocsf(&entry("allowed", "api.example.test", ""));
        assert_eq!(event["class_uid"], 4001);
        assert_eq!(event["type_uid"], 400101);
        assert_eq!(event["action"], "Allowed");
        assert_eq!(event["time"], 1_700_000_000_123_i64);
        assert_eq!(event["metadata"]["uid"], "7");
        assert_eq!(event["dst_endpoint"]["hostname"], "api.example.test");
        assert!(event["dst_endpoint"].get("ip").is_none());
        assert_eq!(event["src_endpoint"]["name"], "b1");
        assert_eq!(event["connection_info"]["protocol_name"], "tcp");
        assert_eq!(event["unmapped"]["decided_by"], "rule #3");
    }

    #[test]
    fn refusals_and_misuse_are_denied_and_misuse_is_high() {
        let refused = ocsf(&entry("dns_refused", "10.0.0.9", "evil.test"));
        assert_eq!(
            (refused["type_uid"].clone(), refused["action_id"].clone()),
            (json!(400105), json!(2))
        );
        assert_eq!(refused["dst_endpoint"]["ip"], "10.0.0.9");
        assert_eq!(refused["dst_endpoint"]["hostname"], "evil.test");
        assert_eq!(ocsf(&entry("secret_misuse", "h", ""))["severity_id"], 4);
        let held = ocsf(&entry("held", "h", ""));
        assert_eq!(
            (held["activity_id"].clone(), held["action_id"].clone()),
            (json!(99), json!(0))
        );
    }

    #[test]
    fn jsonl_is_the_rest_shape() {
        let record = jsonl(&entry("allowed", "h", ""));
        let keys: Vec<&str> = record
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(
            keys,
            [
                "at",
                "box_id",
                "decided_by",
                "decision",
                "dest",
                "domain",
                "id",
                "port",
                "project",
                "proto",
                "reason",
                "request_id"
            ]
        );
    }
}
