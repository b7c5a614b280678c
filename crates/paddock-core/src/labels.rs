//! The labels that mark Docker objects as paddock's. Nothing without them is
//! ever listed, changed or removed.

pub const BOX: &str = "paddock.box";
pub const PROJECT: &str = "paddock.project";
pub const INSTANCE: &str = "paddock.instance";

/// A box's container name: readable in `docker ps`, and carrying the
/// instance, so two paddocks on one engine never claim the same name for
/// their boxes of the same id.
pub fn container_name(instance: &str, box_id: &str) -> String {
    let instance: String = instance
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-') {
                c
            } else {
                '-'
            }
        })
        .collect();
    format!("paddock-{instance}-{box_id}")
}

/// The name of a box's container made before names carried the instance.
pub fn legacy_container_name(box_id: &str) -> String {
    format!("paddock-{box_id}")
}

#[cfg(test)]
mod tests {
    #[test]
    fn two_instances_name_the_same_box_apart() {
        let one = super::container_name("p1", "jail");
        let two = super::container_name("p2", "jail");
        assert_ne!(one, two);
        assert_eq!(one, "paddock-p1-jail");
        assert_eq!(super::container_name("a b/c", "x"), "paddock-a-b-c-x");
    }
}
