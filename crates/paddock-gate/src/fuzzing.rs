//! Entry points for fuzzing what a box can send the gate: the Basic
//! credential, the request's path, and a push's command list (pkt-lines).
//! See `paddock_egress::fuzzing` for how they are driven.

/// `Authorization: Basic …`, as the gate reads its token.
pub fn basic_auth(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = crate::request::basic_token(Some(text));
    }
}

/// A request's method, path and query (one per line of the input).
pub fn git_request(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut lines = text.splitn(3, '\n');
    let method = lines.next().unwrap_or("");
    let path = lines.next().unwrap_or("");
    let query = lines.next();
    let _ = crate::request::parse(method, path, query);
}

/// The start of a push's body: its ref updates, in pkt-line framing.
pub fn push_commands(data: &[u8]) {
    let _ = crate::commands::parse(data);
}
