//! Finding what a login command asks of the person in what it prints.
//!
//! Agent CLIs colour their output and draw with cursor moves even on a
//! pipe, so the text is matched with its terminal control sequences taken
//! out; the whole output so far is matched each time, so a URL split
//! across two reads is still found.

use regex::Regex;

use crate::config::{ImageProfile, LoginShape};
use crate::{CoreError, Result};

/// Output kept while looking for the prompt.
pub(crate) const MAX_CAPTURE: usize = 64 * 1024;

/// What the login shows the person, once it has printed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoginPrompt {
    /// Nothing matched yet: the command starts, or waits on the network
    /// (a device-code login asks its provider for a code first).
    Starting,
    /// Open the URL; paste the code it gives back here.
    PasteCode { authorize_url: String },
    /// Open the URL and enter the user code there; nothing comes back
    /// here, the command notices the sign-in itself.
    DeviceCode {
        verification_url: String,
        user_code: String,
    },
}

pub(crate) struct PromptFinder {
    shape: LoginShape,
    url: Regex,
    user_code: Option<Regex>,
    seen: Vec<u8>,
}

impl PromptFinder {
    pub(crate) fn new(profile: &ImageProfile) -> Result<Self> {
        let url = Regex::new(&profile.url_pattern)
            .map_err(|e| CoreError::Activation(format!("bad url_pattern: {e}")))?;
        let user_code = match (&profile.user_code_pattern, profile.login) {
            (Some(p), _) => Some(
                Regex::new(p)
                    .map_err(|e| CoreError::Activation(format!("bad user_code_pattern: {e}")))?,
            ),
            (None, LoginShape::DeviceCode) => {
                return Err(CoreError::Activation(
                    "a device_code login needs user_code_pattern".into(),
                ));
            }
            (None, LoginShape::PasteCode) => None,
        };
        Ok(Self {
            shape: profile.login,
            url,
            user_code,
            seen: Vec::new(),
        })
    }

    /// Takes more output; the prompt once everything it needs is there.
    pub(crate) fn feed(&mut self, bytes: &[u8]) -> Option<LoginPrompt> {
        self.seen.extend_from_slice(bytes);
        let text = plain_text(&String::from_utf8_lossy(&self.seen));
        let url = self.url.find(&text)?.as_str().to_owned();
        match self.shape {
            LoginShape::PasteCode => Some(LoginPrompt::PasteCode { authorize_url: url }),
            LoginShape::DeviceCode => {
                let found = self.user_code.as_ref()?.captures(&text)?;
                let code = found.get(1).or_else(|| found.get(0))?.as_str().trim();
                (!code.is_empty()).then(|| LoginPrompt::DeviceCode {
                    verification_url: url,
                    user_code: code.to_owned(),
                })
            }
        }
    }

    /// More output than any prompt needs: the command prints something
    /// else.
    pub(crate) fn overflowed(&self) -> bool {
        self.seen.len() > MAX_CAPTURE
    }
}

/// What `profile` finds in a login command's whole `output`: a check for
/// a profile against what its agent is known to print.
pub fn find_prompt(profile: &ImageProfile, output: &[u8]) -> Result<Option<LoginPrompt>> {
    Ok(PromptFinder::new(profile)?.feed(output))
}

/// `text` without terminal control sequences: CSI (`ESC [ … final`), OSC
/// (`ESC ] … BEL` or `ESC \`), other two-byte escapes, and control
/// characters other than newline and tab. Carriage returns become
/// newlines, so a redrawn line still ends a match.
pub(crate) fn plain_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\u{1b}' => match chars.next() {
                Some('[') => {
                    for c in chars.by_ref() {
                        if ('\u{40}'..='\u{7e}').contains(&c) {
                            break;
                        }
                    }
                }
                Some(']') => {
                    while let Some(c) = chars.next() {
                        if c == '\u{7}' {
                            break;
                        }
                        if c == '\u{1b}' && chars.peek() == Some(&'\\') {
                            chars.next();
                            break;
                        }
                    }
                }
                _ => {}
            },
            '\r' => out.push('\n'),
            '\n' | '\t' => out.push(c),
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn profile(login: LoginShape, url: &str, code: Option<&str>) -> ImageProfile {
        toml::from_str::<ImageProfile>(&format!(
            "image = \"x\"\nlogin_command = [\"login\"]\nurl_pattern = '{url}'\n{}",
            code.map(|c| format!("user_code_pattern = '{c}'\n"))
                .unwrap_or_default()
        ))
        .map(|mut p| {
            p.login = login;
            p
        })
        .unwrap()
    }

    #[test]
    fn colours_cursor_moves_and_links_are_taken_out() {
        let raw = "\u{1b}[31mWelcome\u{1b}[9Gto\u{1b}[0m\r\n\
                   \u{1b}]8;id=1;https://a.test/x\u{7}https://a.test/x\u{1b}]8;;\u{7}\r\n\
                   \u{1b}]0;title\u{1b}\\done\u{7}";
        assert_eq!(plain_text(raw), "Welcometo\n\nhttps://a.test/x\n\ndone");
    }

    #[test]
    fn a_paste_code_prompt_is_found_across_reads() {
        let mut f =
            PromptFinder::new(&profile(LoginShape::PasteCode, r"https://\S+", None)).unwrap();
        assert_eq!(
            f.feed(b"visit:\nhttps://claude.ai/oauth/auth"),
            Some(LoginPrompt::PasteCode {
                authorize_url: "https://claude.ai/oauth/auth".into()
            })
        );
        let mut f =
            PromptFinder::new(&profile(LoginShape::PasteCode, r"https://\S+\n", None)).unwrap();
        assert_eq!(f.feed(b"visit:\nhttps://claude.ai/oauth/auth"), None);
        assert!(f.feed(b"orize?x=1\n").is_some());
    }

    #[test]
    fn a_device_code_prompt_needs_both_url_and_code() {
        let mut f = PromptFinder::new(&profile(
            LoginShape::DeviceCode,
            r"https://\S+/device",
            Some(r"one-time code[^\n]*\n\s*(\S+)"),
        ))
        .unwrap();
        assert_eq!(
            f.feed(b"1. Open this link\n   \x1b[94mhttps://auth.test/codex/device\x1b[0m\n"),
            None
        );
        assert_eq!(
            f.feed(
                b"2. Enter this one-time code \x1b[90m(expires in 15 minutes)\x1b[0m\n   \x1b[94m"
            ),
            None
        );
        assert_eq!(
            f.feed(b"ABCD-12345\x1b[0m\n"),
            Some(LoginPrompt::DeviceCode {
                verification_url: "https://auth.test/codex/device".into(),
                user_code: "ABCD-12345".into()
            })
        );
    }

    #[test]
    fn a_device_code_profile_without_a_code_pattern_is_refused() {
        let p = profile(LoginShape::DeviceCode, r"https://\S+", None);
        assert!(matches!(
            PromptFinder::new(&p),
            Err(CoreError::Activation(_))
        ));
    }
}
