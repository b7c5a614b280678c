//! One box's secrets as the gateway sees them: placeholders to look for,
//! bindings to apply, values to inject.

use memchr::memmem;

use crate::{Binding, SecretValue};

/// Every placeholder starts so, which lets a scan find candidates with one
/// substring search whatever the number of secrets.
pub const PLACEHOLDER_PREFIX: &str = "pdk_ph_";
/// A placeholder's length: the prefix and 40 hex digits (160 bits).
pub const PLACEHOLDER_LEN: usize = PLACEHOLDER_PREFIX.len() + 40;

#[derive(Debug)]
pub struct BoxSecret {
    pub name: String,
    pub placeholder: String,
    pub env: Option<String>,
    pub bindings: Vec<Binding>,
    pub(crate) value: Option<SecretValue>,
    /// Removed since paddock started: the placeholder is known, worthless.
    pub removed: bool,
}

impl BoxSecret {
    /// The value to inject; None when it is removed or does not open.
    pub fn value(&self) -> Option<&SecretValue> {
        self.value.as_ref()
    }
}

#[derive(Debug)]
pub struct BoxSecrets {
    pub box_id: String,
    pub project: String,
    pub secrets: Vec<BoxSecret>,
}

impl BoxSecrets {
    /// The bindings that apply to a connection to `host:port`, with their
    /// secrets.
    pub fn bound_to<'a>(
        &'a self,
        host: &'a str,
        port: u16,
    ) -> impl Iterator<Item = (&'a BoxSecret, &'a Binding)> + 'a {
        self.secrets.iter().flat_map(move |s| {
            s.bindings
                .iter()
                .filter(move |b| b.hosts.iter().any(|h| h.matches(host, port)))
                .map(move |b| (s, b))
        })
    }

    /// Whether any secret is bound to `host:port`: the gateway terminates
    /// TLS only for such hosts.
    pub fn binds(&self, host: &str, port: u16) -> bool {
        self.bound_to(host, port).next().is_some()
    }

    /// The secret whose placeholder occurs in `text`, if any.
    pub fn find(&self, text: &[u8]) -> Option<&BoxSecret> {
        self.find_except(text, &[])
    }

    /// The first secret other than those named in `allowed` whose
    /// placeholder occurs in `text`.
    pub fn find_except(&self, text: &[u8], allowed: &[&str]) -> Option<&BoxSecret> {
        if self.secrets.is_empty() {
            return None;
        }
        memmem::find_iter(text, PLACEHOLDER_PREFIX.as_bytes()).find_map(|at| {
            let candidate = text.get(at..at + PLACEHOLDER_LEN)?;
            self.secrets.iter().find(|s| {
                s.placeholder.as_bytes() == candidate && !allowed.contains(&s.name.as_str())
            })
        })
    }

    pub fn is_empty(&self) -> bool {
        self.secrets.is_empty()
    }
}

/// Finds placeholders in a stream of chunks: a placeholder cut across two
/// chunks is still found, and nothing but a placeholder's length of tail
/// is kept between them.
#[derive(Debug, Default)]
pub struct StreamScan {
    tail: Vec<u8>,
}

impl StreamScan {
    /// The secret whose placeholder the stream holds once `chunk` is
    /// added, if any.
    pub fn feed<'s>(&mut self, secrets: &'s BoxSecrets, chunk: &[u8]) -> Option<&'s BoxSecret> {
        if secrets.is_empty() {
            return None;
        }
        // The seam: the kept tail and the chunk's first bytes.
        let head = &chunk[..chunk.len().min(PLACEHOLDER_LEN - 1)];
        self.tail.extend_from_slice(head);
        if let Some(found) = secrets.find(&self.tail) {
            return Some(found);
        }
        if let Some(found) = secrets.find(chunk) {
            return Some(found);
        }
        let keep = PLACEHOLDER_LEN - 1;
        if chunk.len() >= keep {
            self.tail.clear();
            self.tail.extend_from_slice(&chunk[chunk.len() - keep..]);
        } else if self.tail.len() > keep {
            let cut = self.tail.len() - keep;
            self.tail.drain(..cut);
        }
        None
    }
}
