//! Rules at the HTTP level, for hosts the gateway reads: per box or
//! project, a host (`name` or `*.suffix`, a port or any), methods, a path
//! glob and, for a git push, the refs it updates — with allow, deny or
//! ask. Pure: what matches, and which match decides.
//!
//! Paths are compared normalised (unreserved characters decoded, dot
//! segments resolved) so `/repos/%61cme/../acme/x` is `/repos/acme/x`; a
//! path that cannot be read one way only (an encoded `/` or `\`, a NUL)
//! matches nothing and is refused where rules apply.

use crate::policy::{Action, PolicyError, Scope, normalise_name};

#[derive(Debug, thiserror::Error)]
pub enum HttpRuleError {
    #[error("{0:?} is not a host name or *.domain")]
    Host(String),
    #[error("{0:?} is not `METHODS /path-glob` (GET,HEAD /repos/acme/**; * for any method)")]
    Request(String),
    #[error("{0:?} is not a ref glob (refs/heads/main, refs/tags/*)")]
    Ref(String),
    #[error(transparent)]
    Policy(#[from] PolicyError),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpRule {
    pub id: i64,
    pub scope: Scope,
    /// Lower case; `*.suffix` for names under the suffix.
    pub host: String,
    pub port: Option<u16>,
    /// Upper case; empty: any method.
    pub methods: Vec<String>,
    pub path: String,
    /// A push must update a ref matching one of these; empty: any request.
    pub refs: Vec<String>,
    pub action: Action,
    pub expires_at_ms: Option<i64>,
    pub created_by: String,
}

/// One request as the rules see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpRequestView {
    pub method: String,
    /// Normalised ([`normalise_path`]).
    pub path: String,
    /// The refs a git push updates, when it is one and they were read.
    pub refs: Vec<String>,
}

/// `host` as a rule writes it: a name or `*.suffix`, lower case.
pub fn parse_host(text: &str) -> Result<String, HttpRuleError> {
    let bad = || HttpRuleError::Host(text.to_owned());
    match text.strip_prefix("*.") {
        Some(rest) => normalise_name(rest)
            .filter(|n| n.contains('.'))
            .map(|n| format!("*.{n}"))
            .ok_or_else(bad),
        None => normalise_name(text).ok_or_else(bad),
    }
}

/// `GET,HEAD /repos/acme/**` → (methods, path glob); `*` or no methods:
/// any.
pub fn parse_request(text: &str) -> Result<(Vec<String>, String), HttpRuleError> {
    let bad = || HttpRuleError::Request(text.to_owned());
    let text = text.trim();
    let (methods, path) = match text.split_once(char::is_whitespace) {
        Some((m, p)) => (m, p.trim()),
        None if text.starts_with('/') => ("*", text),
        None => return Err(bad()),
    };
    if !path.starts_with('/') || path.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(bad());
    }
    let methods: Vec<String> = if methods == "*" {
        Vec::new()
    } else {
        let list: Vec<String> = methods
            .split(',')
            .map(|m| m.trim().to_ascii_uppercase())
            .collect();
        if list
            .iter()
            .any(|m| m.is_empty() || !m.bytes().all(|b| b.is_ascii_uppercase()))
        {
            return Err(bad());
        }
        list
    };
    Ok((methods, path.to_owned()))
}

pub fn parse_ref(text: &str) -> Result<String, HttpRuleError> {
    let ok = text.starts_with("refs/")
        && !text.contains("..")
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/_.-*".contains(&b));
    ok.then(|| text.to_owned())
        .ok_or_else(|| HttpRuleError::Ref(text.to_owned()))
}

/// The path a server will act on: unreserved characters decoded, `.` and
/// `..` segments resolved, the query left off. None when it could be read
/// two ways (an encoded `/`, `\` or NUL; a bad escape).
pub fn normalise_path(raw: &str) -> Option<String> {
    let path = raw.split('?').next().unwrap_or("");
    let mut decoded = String::with_capacity(path.len());
    let bytes = path.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = path.get(i + 1..i + 3)?;
            let byte = u8::from_str_radix(hex, 16).ok()?;
            match byte {
                b'/' | b'\\' | 0 => return None,
                b if b.is_ascii_alphanumeric() || b"-._~".contains(&b) => decoded.push(b as char),
                _ => {
                    decoded.push('%');
                    decoded.push_str(&hex.to_ascii_uppercase());
                }
            }
            i += 3;
        } else {
            if bytes[i] == b'\\' {
                return None;
            }
            decoded.push(bytes[i] as char);
            i += 1;
        }
    }
    let mut segments: Vec<&str> = Vec::new();
    for segment in decoded.split('/').skip(1) {
        match segment {
            "." => {}
            ".." => {
                segments.pop();
            }
            s => segments.push(s),
        }
    }
    let trailing = matches!(decoded.rsplit('/').next(), Some("." | ".."));
    let mut out = format!("/{}", segments.join("/"));
    if trailing && !out.ends_with('/') {
        out.push('/');
    }
    Some(out)
}

/// `*` matches within a segment, `**` across segments.
pub fn glob_matches(pattern: &str, text: &str) -> bool {
    fn go(p: &[u8], t: &[u8]) -> bool {
        match p {
            [] => t.is_empty(),
            [b'*', b'*', rest @ ..] => (0..=t.len()).any(|i| go(rest, &t[i..])),
            [b'*', rest @ ..] => {
                let segment = t.iter().position(|&b| b == b'/').unwrap_or(t.len());
                (0..=segment).any(|i| go(rest, &t[i..]))
            }
            [c, rest @ ..] => t.first() == Some(c) && go(rest, &t[1..]),
        }
    }
    go(pattern.as_bytes(), text.as_bytes())
}

fn host_matches(pattern: &str, host: &str) -> bool {
    match pattern.strip_prefix('*') {
        Some(suffix) => host.len() > suffix.len() && host.ends_with(suffix),
        None => pattern == host,
    }
}

impl HttpRule {
    fn applies(&self, box_id: &str, project: &str, now_ms: i64) -> bool {
        let scoped = match &self.scope {
            Scope::Box(id) => id == box_id,
            Scope::Project(p) => p == project,
        };
        scoped && self.expires_at_ms.is_none_or(|at| at > now_ms)
    }

    /// Whether the rule concerns connections to `host:port` at all (the
    /// gateway must then read them).
    pub fn covers(&self, host: &str, port: u16) -> bool {
        host_matches(&self.host, host) && self.port.is_none_or(|p| p == port)
    }

    fn matches(&self, host: &str, port: u16, req: &HttpRequestView) -> bool {
        self.covers(host, port)
            && (self.methods.is_empty() || self.methods.contains(&req.method))
            && glob_matches(&self.path, &req.path)
            && (self.refs.is_empty()
                || req
                    .refs
                    .iter()
                    .any(|r| self.refs.iter().any(|g| glob_matches(g, r))))
    }

    /// Which of two matching rules decides: a box's before its project's,
    /// one naming refs, the longer literal path, named methods, a named
    /// port, an exact host — then the stricter action.
    fn specificity(&self) -> (bool, bool, usize, bool, bool, bool, u8) {
        let literal = self.path.find('*').unwrap_or(self.path.len());
        (
            matches!(self.scope, Scope::Box(_)),
            !self.refs.is_empty(),
            literal,
            !self.methods.is_empty(),
            self.port.is_some(),
            !self.host.starts_with('*'),
            match self.action {
                Action::Deny => 2,
                Action::Ask => 1,
                Action::Allow => 0,
            },
        )
    }

    /// `GET,HEAD /path` as written.
    pub fn request_text(&self) -> String {
        let methods = if self.methods.is_empty() {
            "*".to_owned()
        } else {
            self.methods.join(",")
        };
        format!("{methods} {}", self.path)
    }
}

/// The rules of one box, as a snapshot.
pub struct HttpRuleSet<'a> {
    pub rules: &'a [HttpRule],
    pub box_id: &'a str,
    pub project: &'a str,
    pub now_ms: i64,
}

impl HttpRuleSet<'_> {
    fn live(&self) -> impl Iterator<Item = &HttpRule> {
        self.rules
            .iter()
            .filter(|r| r.applies(self.box_id, self.project, self.now_ms))
    }

    pub fn covers(&self, host: &str, port: u16) -> bool {
        self.live().any(|r| r.covers(host, port))
    }

    /// Whether some rule for this host looks at a push's refs (so its
    /// body's commands must be read before deciding).
    pub fn reads_refs(&self, host: &str, port: u16) -> bool {
        self.live()
            .any(|r| !r.refs.is_empty() && r.covers(host, port))
    }

    /// The rule that decides this request, if any does.
    pub fn decide(&self, host: &str, port: u16, req: &HttpRequestView) -> Option<&HttpRule> {
        self.live()
            .filter(|r| r.matches(host, port, req))
            .max_by_key(|r| r.specificity())
    }
}

/// The refs a git push (`git-receive-pack`'s request body) updates: its
/// commands, pkt-lines before the first flush. None: not a complete,
/// well-formed command list in `head`.
pub fn push_refs(head: &[u8]) -> Option<Vec<String>> {
    let mut refs = Vec::new();
    let mut at = 0;
    loop {
        let len = std::str::from_utf8(head.get(at..at + 4)?).ok()?;
        let len = usize::from_str_radix(len, 16).ok()?;
        if len == 0 {
            return Some(refs);
        }
        if len < 4 {
            return None;
        }
        let line = head.get(at + 4..at + len)?;
        let line = line.split(|&b| b == 0).next()?;
        let line = std::str::from_utf8(line).ok()?.trim_end_matches('\n');
        // `push-cert` and shallow lines carry no ref update.
        let mut parts = line.split(' ');
        if let (Some(old), Some(new), Some(name)) = (parts.next(), parts.next(), parts.next())
            && old.len() >= 40
            && new.len() >= 40
        {
            refs.push(name.to_owned());
        }
        at += len;
    }
}

#[cfg(test)]
mod tests;
