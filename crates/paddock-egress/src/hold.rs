//! How a held connection ended, for the connection that waited on it.
//! (The request itself lives in the clearance hub, its one owner; who
//! decided is on the record, written by the request's owner.)

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Allowed,
    Denied { reason: String },
}
