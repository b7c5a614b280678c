//! The one event shape every surface carries, field for field the
//! `ClearanceEvent` of `org.terok.Clearance1`, so terok's clients read ours.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    /// A connection held for a person: always carries the `request_id` a
    /// verdict must cite.
    ConnectionBlocked,
    /// paddock's own: a refusal nobody can overrule (a deny rule, an
    /// address check, a raw packet, a refused DNS query). Kept apart from
    /// `connection_blocked` because terok's clients offer Allow/Deny for
    /// every one of those; they skip types they do not know.
    ConnectionRefused,
    /// paddock's own: another attempt joined a held request (same
    /// `request_id`); consoles and pop-ups update its count in place.
    ConnectionHeldAgain,
    VerdictApplied,
    ContainerStarted,
    ContainerExited,
    ShieldUp,
    ShieldDown,
    ShieldDisengaged,
    /// paddock's own: an egress rule was added or removed (terok's
    /// clients skip types they do not know).
    RuleAdded,
    RuleRemoved,
    /// paddock's own: a secret's placeholder sent where no binding puts
    /// it, refused (an exfiltration attempt, or a confused agent).
    SecretMisuse,
}

impl EventKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ConnectionBlocked => "connection_blocked",
            Self::ConnectionRefused => "connection_refused",
            Self::ConnectionHeldAgain => "connection_held_again",
            Self::VerdictApplied => "verdict_applied",
            Self::ContainerStarted => "container_started",
            Self::ContainerExited => "container_exited",
            Self::ShieldUp => "shield_up",
            Self::ShieldDown => "shield_down",
            Self::ShieldDisengaged => "shield_disengaged",
            Self::RuleAdded => "rule_added",
            Self::RuleRemoved => "rule_removed",
            Self::SecretMisuse => "secret_misuse",
        }
    }
}

/// Every field is always present on the wire (varlink structs have no
/// optional fields here); unused ones are empty, zero or false.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClearanceEvent {
    #[serde(rename = "type")]
    pub kind: String,
    /// The box id.
    pub container: String,
    pub request_id: String,
    /// The destination address (or the name, when nothing was resolved).
    pub dest: String,
    pub port: i64,
    /// IP protocol number: 6 TCP, 17 UDP, 58 ICMPv6, …
    pub proto: i64,
    pub domain: String,
    pub action: String,
    pub ok: bool,
    pub reason: String,
    /// `project`, `task`, `name`, `container_name`.
    pub dossier: BTreeMap<String, String>,
}

impl ClearanceEvent {
    pub fn new(kind: EventKind, container: &str) -> Self {
        Self {
            kind: kind.as_str().to_owned(),
            container: container.to_owned(),
            ..Self::default()
        }
    }

    pub fn with_dossier(mut self, project: &str, container_name: &str) -> Self {
        self.dossier.insert("project".into(), project.into());
        self.dossier.insert("task".into(), String::new());
        self.dossier.insert("name".into(), self.container.clone());
        self.dossier
            .insert("container_name".into(), container_name.into());
        self
    }
}

/// An event as published: serialised once, however many subscribers read
/// it, both as plain JSON (WebSocket) and as a whole varlink reply frame.
#[derive(Debug)]
pub struct Published {
    pub event: ClearanceEvent,
    pub json: String,
    /// `{"parameters":{"event":…},"continues":true}` and its NUL.
    pub varlink_frame: Vec<u8>,
}

impl Published {
    pub fn new(event: ClearanceEvent) -> Self {
        // A struct of strings, integers, a bool and a string map cannot fail
        // to serialise.
        let json = serde_json::to_string(&event).unwrap_or_default();
        let mut varlink_frame = Vec::with_capacity(json.len() + 48);
        varlink_frame.extend_from_slice(b"{\"parameters\":{\"event\":");
        varlink_frame.extend_from_slice(json.as_bytes());
        varlink_frame.extend_from_slice(b"},\"continues\":true}\0");
        Self {
            event,
            json,
            varlink_frame,
        }
    }
}
