//! The session's notification server (`org.freedesktop.Notifications`,
//! Desktop Notifications Specification 1.2) over zbus: show or replace a
//! pop-up with paddock's actions, close it, and hear which action was
//! picked or that a pop-up was closed.

use std::collections::HashMap;

use futures_util::stream::{BoxStream, StreamExt};
use zbus::zvariant::Value;

use crate::tracker::{ACTIONS, Held};

#[zbus::proxy(
    interface = "org.freedesktop.Notifications",
    default_service = "org.freedesktop.Notifications",
    default_path = "/org/freedesktop/Notifications"
)]
trait Notifications {
    #[allow(clippy::too_many_arguments)]
    fn notify(
        &self,
        app_name: &str,
        replaces_id: u32,
        app_icon: &str,
        summary: &str,
        body: &str,
        actions: &[&str],
        hints: HashMap<&str, Value<'_>>,
        expire_timeout: i32,
    ) -> zbus::Result<u32>;

    fn close_notification(&self, id: u32) -> zbus::Result<()>;

    fn get_capabilities(&self) -> zbus::Result<Vec<String>>;

    fn get_server_information(&self) -> zbus::Result<(String, String, String, String)>;

    #[zbus(signal)]
    fn action_invoked(&self, id: u32, action_key: String) -> zbus::Result<()>;

    #[zbus(signal)]
    fn notification_closed(&self, id: u32, reason: u32) -> zbus::Result<()>;
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum DesktopError {
    /// No session bus to talk to (no desktop session, or
    /// `DBUS_SESSION_BUS_ADDRESS` unset).
    #[error("no session D-Bus: {0}")]
    NoBus(String),
    /// The bus is there, the notification server is not (or it failed).
    #[error("the desktop's notification server: {0}")]
    Server(String),
}

/// What the person did with a pop-up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Signal {
    Action { notification: u32, key: String },
    Closed { notification: u32 },
}

/// A connection to the session's notification server.
pub struct Desktop {
    proxy: NotificationsProxy<'static>,
    markup: bool,
    /// The server's name and version, for the log.
    pub server: String,
    /// Whether the server shows actions at all (without them a pop-up
    /// only informs).
    pub actions: bool,
}

fn server_error(e: zbus::Error) -> DesktopError {
    DesktopError::Server(e.to_string())
}

/// Text as the server will read it: servers that speak body markup get
/// `&`, `<` and `>` escaped, so what an agent wrote shows as written and
/// never as markup (a link, an image).
pub fn body_text(text: &str, markup: bool) -> String {
    if !markup {
        return text.to_owned();
    }
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            c => out.push(c),
        }
    }
    out
}

/// The pop-up's summary and body for a held request.
pub fn describe(held: &Held, markup: bool) -> (String, String) {
    let summary = format!(
        "paddock: {} wants {}:{}",
        held.container,
        held.destination(),
        held.port
    );
    let attempts = if held.attempts == 1 {
        "1 attempt".to_owned()
    } else {
        format!("{} attempts", held.attempts)
    };
    let mut body = format!("project {} · {attempts}", held.project);
    if held.destination() != held.dest {
        body.push_str(&format!(" · {}", held.dest));
    }
    if !held.agent_reason.is_empty() {
        body.push_str(&format!("\nagent says: {}", held.agent_reason));
    }
    (summary, body_text(&body, markup))
}

impl Desktop {
    /// Connects to the session bus and asks the server what it can do.
    pub async fn connect() -> Result<Self, DesktopError> {
        let connection = zbus::Connection::session()
            .await
            .map_err(|e| DesktopError::NoBus(e.to_string()))?;
        let proxy = NotificationsProxy::new(&connection)
            .await
            .map_err(server_error)?;
        let capabilities = proxy.get_capabilities().await.map_err(server_error)?;
        let (name, vendor, version, _) =
            proxy.get_server_information().await.map_err(server_error)?;
        Ok(Self {
            markup: capabilities.iter().any(|c| c == "body-markup"),
            actions: capabilities.iter().any(|c| c == "actions"),
            server: format!("{name} {version} ({vendor})"),
            proxy,
        })
    }

    /// Shows the request's pop-up (replacing `replaces`); its id.
    pub async fn show(&self, held: &Held, replaces: Option<u32>) -> Result<u32, DesktopError> {
        let (summary, body) = describe(held, self.markup);
        let actions: Vec<&str> = ACTIONS.iter().flat_map(|(k, l)| [*k, *l]).collect();
        let mut hints = HashMap::new();
        // Critical: it stays until decided (the hold's deadline ends it).
        hints.insert("urgency", Value::U8(2));
        hints.insert("category", Value::from("network"));
        self.proxy
            .notify(
                "paddock",
                replaces.unwrap_or(0),
                "network-wireless",
                &summary,
                &body,
                &actions,
                hints,
                0,
            )
            .await
            .map_err(server_error)
    }

    pub async fn close(&self, notification: u32) -> Result<(), DesktopError> {
        self.proxy
            .close_notification(notification)
            .await
            .map_err(server_error)
    }

    /// Actions picked and pop-ups closed, as they happen.
    pub async fn signals(&self) -> Result<BoxStream<'static, Signal>, DesktopError> {
        let actions = self
            .proxy
            .receive_action_invoked()
            .await
            .map_err(server_error)?
            .filter_map(|s| async move {
                let args = s.args().ok()?;
                Some(Signal::Action {
                    notification: args.id,
                    key: args.action_key,
                })
            });
        let closed = self
            .proxy
            .receive_notification_closed()
            .await
            .map_err(server_error)?
            .filter_map(|s| async move {
                let args = s.args().ok()?;
                Some(Signal::Closed {
                    notification: args.id,
                })
            });
        Ok(futures_util::stream::select(actions, closed).boxed())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn held(reason: &str) -> Held {
        Held {
            container: "box-a".into(),
            request_id: "r".into(),
            dest: "10.0.0.1".into(),
            domain: "api.example".into(),
            port: 443,
            project: "proj".into(),
            attempts: 2,
            agent_reason: reason.into(),
        }
    }

    #[test]
    fn an_agents_words_are_never_markup() {
        let (summary, body) = describe(&held("<a href=\"x\">docs</a> & more"), true);
        assert_eq!(summary, "paddock: box-a wants api.example:443");
        assert_eq!(
            body,
            "project proj · 2 attempts · 10.0.0.1\nagent says: &lt;a href=\"x\"&gt;docs&lt;/a&gt; &amp; more"
        );
        let (_, plain) = describe(&held("<b>"), false);
        assert!(plain.ends_with("agent says: <b>"), "{plain}");
    }
}
