//! Boxes on other machines (spokes). The hub's box service stays the one
//! door: a box it placed on a spoke is found in the store's spoke table,
//! and get, list, exec, logs, stop, start, shield and destroy go to that spoke through the
//! [`Spokes`] seam (the spoke link, in `paddock-spoke`). Every other
//! operation on such a box is refused by name ([`CoreError::OnSpoke`]),
//! never tried on this machine's engine.
//!
//! What the hub keeps of a remote box — its spoke and its project — is
//! what IAM and the clearance events go by; a spoke's word changes only
//! the view shown of its own boxes.

use serde::{Deserialize, Serialize};

use crate::model::{BoxView, CreateBox, CreatedBox, ExecResult};
use crate::{BoxFuture, CoreError};

/// The name that places a box on the hub itself.
pub const LOCAL: &str = "local";

/// What the hub asks a spoke to do with its boxes.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
pub enum RemoteCall {
    Create {
        request: CreateBox,
    },
    Get {
        box_id: String,
    },
    List,
    Exec {
        box_id: String,
        argv: Vec<String>,
    },
    Logs {
        box_id: String,
        tail: Option<u32>,
    },
    Destroy {
        box_id: String,
    },
    Stop {
        box_id: String,
    },
    Start {
        box_id: String,
    },
    /// The box's shield (`up`, `down` for `ttl_secs`, `block`), set `by`.
    Shield {
        box_id: String,
        state: String,
        ttl_secs: Option<u64>,
        by: String,
    },
    /// A terminal in the box; its bytes go both ways on the link's
    /// `stream` (opened by the hub before it asks).
    OpenTerminal {
        box_id: String,
        command: Option<String>,
        term: String,
        cols: u16,
        rows: u16,
        stream: u64,
    },
    ResizeTerminal {
        exec_id: String,
        cols: u16,
        rows: u16,
    },
    SignalTerminal {
        exec_id: String,
        signal: String,
    },
    TerminalExit {
        exec_id: String,
    },
    /// A new activation link for a box waiting for its login.
    RenewActivation {
        box_id: String,
    },
}

/// A shield as a spoke set it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShieldSet {
    pub state: String,
    pub until_ms: Option<i64>,
}

/// A spoke's answer to a [`RemoteCall`].
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "reply", content = "value", rename_all = "snake_case")]
pub enum RemoteReply {
    Created(Box<CreatedBox>),
    View(Box<BoxView>),
    Views(Vec<BoxView>),
    Exec(ExecResult),
    Logs(String),
    Shield(ShieldSet),
    /// A terminal opened: the spoke's exec id for it.
    Terminal(String),
    /// A terminal's command's exit code; None while it runs.
    ExitCode(Option<i64>),
    /// A box's new activation link (the spoke's activation page).
    ActivationUrl(String),
    Done,
}

/// How a spoke's box service failed a call: the class decides the
/// status a surface answers with, the message is the spoke's words.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureKind {
    NotFound,
    Invalid,
    Conflict,
    LimitReached,
    Unavailable,
    Failed,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{message}")]
pub struct RemoteFailure {
    pub kind: FailureKind,
    pub message: String,
}

impl From<&CoreError> for RemoteFailure {
    fn from(e: &CoreError) -> Self {
        let kind = match e {
            CoreError::NotFound(_) | CoreError::NoSuchPath(_) => FailureKind::NotFound,
            CoreError::Invalid(_)
            | CoreError::ImageNotFound(_)
            | CoreError::RuntimeNotInstalled { .. }
            | CoreError::TooLarge { .. }
            | CoreError::BoxExited(_) => FailureKind::Invalid,
            CoreError::Conflict(_) | CoreError::WrongState { .. } | CoreError::OnSpoke { .. } => {
                FailureKind::Conflict
            }
            CoreError::LimitReached(_) => FailureKind::LimitReached,
            CoreError::EngineUnavailable(_) | CoreError::SpokeUnreachable(_) => {
                FailureKind::Unavailable
            }
            _ => FailureKind::Failed,
        };
        Self {
            kind,
            message: e.to_string(),
        }
    }
}

/// Why a call to a spoke gave no answer of the spoke's own.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpokeCallError {
    /// Not connected, or the link went before the answer came.
    #[error("spoke {0:?} is not connected")]
    Unreachable(String),
    /// The spoke answered with a failure.
    #[error(transparent)]
    Failed(RemoteFailure),
    /// The spoke answered, but not with what the call asks for.
    #[error("spoke {0:?} answered with something else than was asked")]
    Garbled(String),
}

/// A connected spoke's load, for placement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpokeLoad {
    pub name: String,
    pub boxes: u32,
    pub max_boxes: u32,
}

/// The hub's way to its spokes.
pub trait Spokes: Send + Sync {
    /// The connected spokes.
    fn loads(&self) -> Vec<SpokeLoad>;
    /// Asks `spoke` to do `call`, waiting for its answer.
    fn call<'a>(
        &'a self,
        spoke: &'a str,
        call: RemoteCall,
    ) -> BoxFuture<'a, Result<RemoteReply, SpokeCallError>>;

    fn is_connected(&self, spoke: &str) -> bool {
        self.loads().iter().any(|l| l.name == spoke)
    }

    /// Whether the hub runs boxes itself as well (`[spokes] boxes_here`).
    fn boxes_here(&self) -> bool {
        true
    }

    /// A byte stream both ways on `spoke`'s link, for a terminal.
    fn open_stream(&self, spoke: &str) -> Result<RemoteStream, SpokeCallError> {
        Err(SpokeCallError::Unreachable(spoke.to_owned()))
    }
}

/// Bytes both ways on a spoke's link: what arrives from the spoke, and
/// where to put what goes to it. Dropping `input` ends the stream's
/// input; `output` ends when the spoke ends it or the link goes.
pub struct RemoteStream {
    pub id: u64,
    pub output: tokio::sync::mpsc::Receiver<bytes::Bytes>,
    pub input: tokio::sync::mpsc::Sender<bytes::Bytes>,
}

/// Where a create goes: `None` is this machine. A named spoke must be
/// connected; otherwise the least loaded of this machine and the spokes
/// with room, this machine first on a tie (and when no spoke is linked).
pub(crate) fn place(
    named: Option<&str>,
    local: (u32, u32),
    spokes: &[SpokeLoad],
) -> Result<Option<String>, CoreError> {
    match named {
        Some(LOCAL) => return Ok(None),
        Some(name) => {
            return if spokes.iter().any(|s| s.name == name) {
                Ok(Some(name.to_owned()))
            } else {
                Err(CoreError::SpokeUnreachable(name.to_owned()))
            };
        }
        None => {}
    }
    // Loads compared as fractions without division: a/b < c/d ⇔ a·d < c·b.
    let lighter = |a: (u32, u32), b: (u32, u32)| {
        u64::from(a.0) * u64::from(b.1) < u64::from(b.0) * u64::from(a.1)
    };
    let mut best: (Option<&str>, (u32, u32)) = (None, local);
    for s in spokes.iter().filter(|s| s.boxes < s.max_boxes) {
        let load = (s.boxes, s.max_boxes.max(1));
        if best.1.0 >= best.1.1 || lighter(load, best.1) {
            best = (Some(&s.name), load);
        }
    }
    Ok(best.0.map(str::to_owned))
}

impl SpokeCallError {
    /// As the box service reports it for `id`.
    pub(crate) fn for_box(self, id: &str, spoke: &str) -> CoreError {
        match self {
            Self::Unreachable(_) => CoreError::SpokeUnreachable(spoke.to_owned()),
            Self::Garbled(_) => CoreError::Spoke {
                spoke: spoke.to_owned(),
                message: self.to_string(),
            },
            Self::Failed(f) => match f.kind {
                FailureKind::NotFound => CoreError::NotFound(id.to_owned()),
                FailureKind::Invalid => CoreError::Invalid(f.message),
                FailureKind::Conflict => CoreError::Conflict(f.message),
                FailureKind::LimitReached => CoreError::SpokeFull {
                    spoke: spoke.to_owned(),
                    message: f.message,
                },
                FailureKind::Unavailable => {
                    CoreError::EngineUnavailable(format!("on spoke {spoke:?}: {}", f.message))
                }
                FailureKind::Failed => CoreError::Spoke {
                    spoke: spoke.to_owned(),
                    message: f.message,
                },
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(name: &str, boxes: u32, max_boxes: u32) -> SpokeLoad {
        SpokeLoad {
            name: name.into(),
            boxes,
            max_boxes,
        }
    }

    #[test]
    fn a_named_spoke_must_be_connected() {
        let linked = [load("gpu-1", 0, 4)];
        assert_eq!(
            place(Some("gpu-1"), (0, 4), &linked).unwrap().as_deref(),
            Some("gpu-1")
        );
        assert!(matches!(
            place(Some("gpu-2"), (0, 4), &linked),
            Err(CoreError::SpokeUnreachable(name)) if name == "gpu-2"
        ));
        assert_eq!(place(Some(LOCAL), (4, 4), &linked).unwrap(), None);
    }

    #[test]
    fn the_least_loaded_takes_the_box_and_this_machine_wins_ties() {
        assert_eq!(place(None, (1, 4), &[]).unwrap(), None);
        assert_eq!(place(None, (1, 4), &[load("a", 2, 8)]).unwrap(), None);
        assert_eq!(
            place(None, (2, 4), &[load("a", 2, 8), load("b", 1, 8)])
                .unwrap()
                .as_deref(),
            Some("b")
        );
        // A full spoke takes nothing; a full hub gives way to any room.
        assert_eq!(place(None, (0, 4), &[load("a", 0, 0)]).unwrap(), None);
        assert_eq!(
            place(None, (4, 4), &[load("a", 7, 8)]).unwrap().as_deref(),
            Some("a")
        );
    }
}
