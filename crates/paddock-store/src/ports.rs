//! Ports of boxes published through paddock's listener. A row goes with
//! its box (the foreign key cascades), so a destroyed box's ports close.

use crate::db::params;

use crate::{Result, Store};

impl Store {
    /// True when the port was not published yet.
    pub fn publish_port(&self, box_id: &str, port: u16, now_ms: i64) -> Result<bool> {
        let n = self.conn().execute(
            "INSERT INTO box_ports (box_id, port, created_at_ms) VALUES (?1, ?2, ?3) ON CONFLICT DO NOTHING",
            params![box_id, port, now_ms],
        )?;
        Ok(n == 1)
    }

    /// True when the port was published.
    pub fn unpublish_port(&self, box_id: &str, port: u16) -> Result<bool> {
        let n = self.conn().execute(
            "DELETE FROM box_ports WHERE box_id = ?1 AND port = ?2",
            params![box_id, port],
        )?;
        Ok(n == 1)
    }

    pub fn port_published(&self, box_id: &str, port: u16) -> Result<bool> {
        let n: i64 = self.conn().query_row(
            "SELECT COUNT(*) FROM box_ports WHERE box_id = ?1 AND port = ?2",
            params![box_id, port],
            |r| r.get(0),
        )?;
        Ok(n == 1)
    }

    pub fn published_ports(&self, box_id: &str) -> Result<Vec<u16>> {
        let conn = self.conn();
        let ports: Vec<u16> = conn.query_map(
            "SELECT port FROM box_ports WHERE box_id = ?1 ORDER BY port",
            params![box_id],
            |r| r.get(0),
        )?;
        Ok(ports)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use crate::Store;

    #[test]
    fn ports_are_published_once_and_go_with_their_box() {
        ports_are_published_once_and_go_with_their_box_on(&Store::open_in_memory().unwrap());
    }

    pub(crate) fn ports_are_published_once_and_go_with_their_box_on(s: &Store) {
        s.insert_box(&crate::boxes::test_row("b")).unwrap();
        assert!(s.publish_port("b", 8080, 1).unwrap());
        assert!(!s.publish_port("b", 8080, 2).unwrap());
        s.publish_port("b", 3000, 3).unwrap();
        assert_eq!(s.published_ports("b").unwrap(), vec![3000, 8080]);
        assert!(s.unpublish_port("b", 3000).unwrap());
        assert!(!s.unpublish_port("b", 3000).unwrap());
        s.delete_box("b").unwrap();
        assert!(!s.port_published("b", 8080).unwrap());
    }
}
