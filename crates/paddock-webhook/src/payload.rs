//! What a delivery says, in each format. Everything from a box or its
//! agent (names, the agent's reason) is untrusted: chat payloads get it
//! with markup escaped and mentions and links broken, so a reason cannot
//! ping a channel or dress up a link.

use paddock_clearance::PendingView;
use serde_json::json;

use crate::config::Format;

/// A hold, or its end.
#[derive(Debug, Clone)]
pub enum Notice {
    Held(PendingView),
    Ended {
        request: PendingView,
        action: String,
        ok: bool,
        reason: String,
    },
}

impl Notice {
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Held(_) => "held",
            Self::Ended { .. } => "ended",
        }
    }

    pub fn request(&self) -> &PendingView {
        match self {
            Self::Held(r) | Self::Ended { request: r, .. } => r,
        }
    }
}

/// The body and the extra headers of one delivery.
pub struct Body {
    pub bytes: Vec<u8>,
    pub content_type: &'static str,
    pub headers: Vec<(&'static str, String)>,
}

/// Text safe for a chat: no markup (`&<>` escaped as Slack wants), no
/// mention (`@` followed by a zero-width joiner), no autolink (`://` and
/// `www.` broken the same way).
pub fn chat_safe(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('@', "@\u{2060}")
        .replace("://", ":\u{2060}//")
        .replace("www.", "www\u{2060}.")
}

/// Header text: printable ASCII only (ntfy's title and tags).
fn header_safe(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_ascii_graphic() || c == ' ' {
                c
            } else {
                '?'
            }
        })
        .collect()
}

fn destination(r: &PendingView) -> &str {
    if r.domain.is_empty() {
        &r.dest
    } else {
        &r.domain
    }
}

/// The sentence a person reads.
fn sentence(notice: &Notice) -> String {
    let r = notice.request();
    let what = format!(
        "box {} (project {}) → {}:{}",
        r.container,
        r.project,
        destination(r),
        r.port
    );
    match notice {
        Notice::Held(_) => {
            let mut text = format!("paddock holds {what} until a person decides.");
            if !r.agent_reason.is_empty() {
                text.push_str(&format!(" Agent says: {}", r.agent_reason));
            }
            text
        }
        Notice::Ended {
            action, ok, reason, ..
        } => {
            let outcome = match (action.as_str(), ok) {
                ("allow", true) => "allowed",
                ("deny", true) => "denied",
                _ => "not applied",
            };
            format!("paddock {outcome} {what}: {reason}")
        }
    }
}

pub fn body(notice: &Notice, format: Format, console_url: &str) -> Body {
    match format {
        Format::Json => {
            let mut value = json!({
                "type": notice.kind(),
                "request": notice.request(),
                "console_url": console_url,
            });
            if let Notice::Ended {
                action, ok, reason, ..
            } = notice
            {
                value["outcome"] = json!({"action": action, "ok": ok, "reason": reason});
            }
            Body {
                bytes: value.to_string().into_bytes(),
                content_type: "application/json",
                headers: Vec::new(),
            }
        }
        Format::Slack => {
            let text = format!(
                "{} <{}|Open the console>",
                chat_safe(&sentence(notice)),
                console_url
            );
            Body {
                bytes: json!({ "text": text }).to_string().into_bytes(),
                content_type: "application/json",
                headers: Vec::new(),
            }
        }
        Format::Ntfy => {
            let r = notice.request();
            let title = match notice {
                Notice::Held(_) => format!("paddock: {} wants {}", r.container, destination(r)),
                Notice::Ended { .. } => format!("paddock: {} decided", destination(r)),
            };
            let mut headers = vec![
                ("Title", header_safe(&title)),
                ("Tags", notice.kind().to_owned()),
                ("Click", header_safe(console_url)),
            ];
            if matches!(notice, Notice::Held(_)) {
                headers.push(("Priority", "high".to_owned()));
            }
            Body {
                bytes: chat_safe(&sentence(notice)).into_bytes(),
                content_type: "text/plain; charset=utf-8",
                headers,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chat_text_cannot_mention_link_or_mark_up() {
        let safe =
            chat_safe("<!channel> @here see https://evil.example or www.evil.example & <x|y>");
        assert!(!safe.contains('<') && !safe.contains('>'), "{safe}");
        assert!(!safe.contains("@here"), "{safe}");
        assert!(!safe.contains("https://"), "{safe}");
        assert!(!safe.contains("www."), "{safe}");
        assert!(safe.contains("&amp;"), "{safe}");
    }

    #[test]
    fn header_text_is_printable_ascii() {
        assert_eq!(header_safe("bö\r\nx"), "b???x");
    }
}
