//! How a held connection ended, for the connection that waited on it.
//! (The request itself lives in the clearance hub, its one owner.)

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Allowed { by: String },
    Denied { by: String, reason: String },
}
