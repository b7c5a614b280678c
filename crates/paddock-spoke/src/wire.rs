//! What hub and spoke say to each other over the spoke link: JSON text
//! frames on a WebSocket over mutual TLS. Small on purpose; every frame
//! is read under a size cap.

use serde::{Deserialize, Serialize};

/// The largest frame either side accepts.
pub const MAX_FRAME: usize = 64 * 1024;
/// The WebSocket path on the hub's spoke listener.
pub const CONNECT_PATH: &str = "/spoke/connect";

/// From a spoke.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum SpokeMessage {
    /// The first frame: what the spoke is and what it can take.
    Hello {
        version: String,
        max_boxes: u32,
        boxes: u32,
    },
    /// Whenever its load changes.
    Status { boxes: u32 },
}

/// From the hub.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum HubMessage {
    /// The spoke is connected under `name` (its certificate's).
    Welcome { name: String, hub_version: String },
    /// The connection is refused, and why; the hub closes it next.
    Refused { reason: String },
}
