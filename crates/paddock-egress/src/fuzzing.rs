//! Entry points for fuzzing what a box can send the gateway: a proxy
//! request's head, a TLS ClientHello, a DNS query. `fuzz/` drives them
//! with libFuzzer; the committed corpora replay through the same
//! functions as plain tests (`crates/paddock-fuzz-replay`). Each must
//! return for any input: a panic is the bug they look for.

use crate::http_rules;

/// A request head as the proxy reads it: the request line's target as a
/// URI and its authority, `Host`, a `Proxy-Authorization` credential,
/// and the path as HTTP rules normalise and match it.
pub fn proxy_request(data: &[u8]) {
    let head_end = data
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or(data.len());
    let Ok(head) = std::str::from_utf8(&data[..head_end]) else {
        return;
    };
    let mut lines = head.split("\r\n");
    let Some(request_line) = lines.next() else {
        return;
    };
    let mut parts = request_line.split(' ');
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    if let Ok(uri) = target.parse::<hyper::Uri>() {
        let _ = crate::proxy::authority_of(&uri, 80);
        if let Some(path) = uri.path_and_query()
            && let Some(normal) = http_rules::normalise_path(path.path())
        {
            let _ = http_rules::glob_matches("/repos/*/**", &normal);
        }
    }
    let _ = http_rules::parse_request(&format!("{method} {target}"));
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("host") {
            let _ = http_rules::parse_host(value);
            if let Ok(authority) = value.parse::<hyper::http::uri::Authority>() {
                let _ = (authority.host(), authority.port_u16());
            }
        } else if name.eq_ignore_ascii_case("proxy-authorization")
            && let Ok(value) = hyper::header::HeaderValue::from_str(value)
        {
            let mut headers = hyper::HeaderMap::new();
            headers.insert(hyper::header::PROXY_AUTHORIZATION, value);
            let _ = crate::own::Grants::default().identify(&headers);
        }
    }
}

/// The first bytes of a CONNECT tunnel, read for its SNI.
pub fn client_hello(data: &[u8]) {
    let _ = crate::sni::parse(data);
}

/// A query to the DNS responder, and the answers it could give (a
/// format error for what it cannot read).
pub fn dns_query(data: &[u8]) {
    let _ = crate::dns::format_error(data);
    if let Some(query) = crate::dns::parse_query(data) {
        let _ = crate::dns::answer(
            &query,
            hickory_proto::op::ResponseCode::NoError,
            &[std::net::Ipv4Addr::LOCALHOST],
        );
    }
}
