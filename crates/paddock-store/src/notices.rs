//! Messages between hubs that share one PostgreSQL: `NOTIFY` on a
//! channel, `LISTEN` on a connection of the listener's own (one that is
//! not the store's, so a long wait for a message never holds up a query).
//! A message sent while a listener is away is lost to it: it hears
//! [`Notice::Connected`] every time it is connected again, and asks the
//! others to say again what it may have missed.

use std::time::Duration;

use postgres::Client;
use postgres::fallible_iterator::FallibleIterator;
use tokio::sync::mpsc;

use crate::db::params;
use crate::{Result, Store, StoreError};

/// The largest payload PostgreSQL carries (its limit is 8000 bytes).
pub const MAX_NOTICE_BYTES: usize = 7900;

/// What a listener hears.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notice {
    /// (Again) listening: whatever was sent before may have been missed.
    Connected,
    Message(String),
}

impl Store {
    /// Sends `payload` to every hub listening on `channel`; nothing on
    /// SQLite, where there is no other hub.
    pub fn notify(&self, channel: &str, payload: &str) -> Result<()> {
        if payload.len() > MAX_NOTICE_BYTES {
            return Err(StoreError::Corrupt(format!(
                "a notice of {} bytes is over PostgreSQL's limit",
                payload.len()
            )));
        }
        let conn = self.conn();
        if conn.is_postgres() {
            conn.execute("SELECT pg_notify(?1, ?2)", params![channel, payload])?;
        }
        Ok(())
    }

    /// Listens on `channel` until the receiver is dropped; None on SQLite.
    pub fn listen(&self, channel: &str) -> Option<mpsc::UnboundedReceiver<Notice>> {
        let settings = self.settings.clone()?;
        let (heard, notices) = mpsc::unbounded_channel();
        let channel = channel.to_owned();
        std::thread::Builder::new()
            .name("paddock-store-listen".into())
            .spawn(move || keep_listening(&settings, &channel, &heard))
            .ok()?;
        Some(notices)
    }
}

fn keep_listening(
    settings: &postgres::Config,
    channel: &str,
    heard: &mpsc::UnboundedSender<Notice>,
) {
    let quoted = channel.replace('"', "\"\"");
    while !heard.is_closed() {
        match crate::pg::connect(settings) {
            Ok(mut client) => {
                if client
                    .batch_execute(&format!("LISTEN \"{quoted}\""))
                    .is_ok()
                    && heard.send(Notice::Connected).is_ok()
                {
                    relay(&mut client, heard);
                }
            }
            Err(e) => tracing::debug!(error = %e, "cannot listen for the other hubs yet"),
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// Passes on what arrives until the connection or the receiver goes.
fn relay(client: &mut Client, heard: &mpsc::UnboundedSender<Notice>) {
    loop {
        {
            let mut notifications = client.notifications();
            let mut arriving = notifications.timeout_iter(Duration::from_secs(1));
            loop {
                match arriving.next() {
                    Ok(Some(n)) => {
                        if heard.send(Notice::Message(n.payload().to_owned())).is_err() {
                            return;
                        }
                    }
                    Ok(None) => break,
                    Err(e) => {
                        tracing::warn!(error = %e, "lost the connection the other hubs' messages come on; listening again");
                        return;
                    }
                }
            }
        }
        if heard.is_closed() || client.is_closed() {
            return;
        }
    }
}
