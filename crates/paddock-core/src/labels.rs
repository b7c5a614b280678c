//! The labels that mark Docker objects as paddock's. Nothing without them is
//! ever listed, changed or removed.

pub const BOX: &str = "paddock.box";
pub const PROJECT: &str = "paddock.project";
pub const INSTANCE: &str = "paddock.instance";

/// Name shared by a box's container and network, so `docker ps` is readable.
pub fn object_name(box_id: &str) -> String {
    format!("paddock-{box_id}")
}
