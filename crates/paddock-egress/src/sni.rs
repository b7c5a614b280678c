//! Reading the server name out of a TLS ClientHello without terminating
//! TLS: enough of the stream is buffered for rustls' `Acceptor` — the
//! parser rustls itself trusts with every server handshake — to read the
//! hello, and the same bytes are then sent on unchanged. Nothing here
//! decodes TLS by hand.

use rustls::server::Acceptor;

/// What the first bytes of a tunnel say.
#[derive(Debug, PartialEq, Eq)]
pub enum Hello {
    /// Not enough bytes yet.
    Incomplete,
    /// A ClientHello naming this server (lower case).
    Sni(String),
    /// A ClientHello without a server name.
    NoSni,
    /// Not TLS at all.
    NotTls,
    /// TLS, but no ClientHello rustls accepts; why.
    Malformed(String),
}

/// A ClientHello over more than this is refused rather than buffered.
pub const MAX_HELLO: usize = 16 * 1024 + 5;

/// What `buf`, the first bytes a client sent, says. Pure: called again
/// with more bytes, it reads them all afresh (a hello nearly always
/// arrives in one read).
pub fn parse(buf: &[u8]) -> Hello {
    // A TLS handshake record starts 22, 3.x; anything else is some other
    // protocol, said plainly rather than as a TLS error.
    match buf {
        [] => return Hello::Incomplete,
        [first, ..] if *first != 22 => return Hello::NotTls,
        [_, major, ..] if *major != 3 => return Hello::NotTls,
        _ => {}
    }
    let mut acceptor = Acceptor::default();
    let mut rest = buf;
    while !rest.is_empty() {
        match acceptor.read_tls(&mut rest) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) => return Hello::Malformed(e.to_string()),
        }
    }
    match acceptor.accept() {
        Ok(None) => Hello::Incomplete,
        Ok(Some(accepted)) => match accepted.client_hello().server_name() {
            Some(name) => Hello::Sni(name.to_ascii_lowercase()),
            None => Hello::NoSni,
        },
        Err((e, _alert)) => Hello::Malformed(e.to_string()),
    }
}

/// A minimal ClientHello naming `server` (tests and benchmarks).
pub fn client_hello_for(server: &str) -> Vec<u8> {
    client_hello(Some(server))
}

/// A minimal ClientHello as a TLS 1.2+ client sends it: one cipher suite,
/// the signature algorithms every such client offers (rustls requires
/// them), and the server's name when there is one.
fn client_hello(server: Option<&str>) -> Vec<u8> {
    let mut exts = Vec::new();
    if let Some(server) = server {
        let name = server.as_bytes();
        let mut sni = Vec::new();
        sni.extend_from_slice(&((name.len() + 3) as u16).to_be_bytes());
        sni.push(0);
        sni.extend_from_slice(&(name.len() as u16).to_be_bytes());
        sni.extend_from_slice(name);
        exts.extend_from_slice(&0u16.to_be_bytes());
        exts.extend_from_slice(&(sni.len() as u16).to_be_bytes());
        exts.extend_from_slice(&sni);
    }
    // signature_algorithms: rsa_pss_rsae_sha256, ecdsa_secp256r1_sha256.
    exts.extend_from_slice(&[0, 13, 0, 6, 0, 4, 0x08, 0x04, 0x04, 0x03]);
    let mut body = vec![3, 3];
    body.extend_from_slice(&[7; 32]);
    body.push(0); // session id
    body.extend_from_slice(&[0, 2, 0x13, 0x01]); // one cipher suite
    body.extend_from_slice(&[1, 0]); // null compression
    body.extend_from_slice(&(exts.len() as u16).to_be_bytes());
    body.extend_from_slice(&exts);
    let mut hs = vec![1];
    hs.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
    hs.extend_from_slice(&body);
    let mut record = vec![22, 3, 1];
    record.extend_from_slice(&(hs.len() as u16).to_be_bytes());
    record.extend_from_slice(&hs);
    record
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_server_name_in_any_prefix() {
        let hello = client_hello_for("Api.Example.com");
        for cut in 0..hello.len() {
            assert_eq!(parse(&hello[..cut]), Hello::Incomplete, "cut at {cut}");
        }
        assert_eq!(parse(&hello), Hello::Sni("api.example.com".into()));
    }

    #[test]
    fn refuses_what_is_not_tls() {
        assert_eq!(parse(b"GET / HTTP/1.1\r\n"), Hello::NotTls);
        assert_eq!(parse(&[22, 9, 0, 0, 0]), Hello::NotTls);
        let mut garbage = vec![22, 3, 1, 0, 10];
        garbage.extend_from_slice(&[1, 0xff, 0xff, 0xff, 0, 0, 0, 0, 0, 0]);
        assert!(
            matches!(parse(&garbage), Hello::Malformed(_)),
            "{:?}",
            parse(&garbage)
        );
        // Not a handshake message at all inside a handshake record.
        let mut alert = client_hello_for("a.example");
        alert[5] = 2; // ServerHello where a ClientHello belongs
        assert!(
            matches!(parse(&alert), Hello::Malformed(_)),
            "{:?}",
            parse(&alert)
        );
    }

    #[test]
    fn a_hello_without_a_name_says_so() {
        assert_eq!(parse(&client_hello(None)), Hello::NoSni);
    }

    #[test]
    fn a_name_that_is_no_host_name_is_malformed() {
        // An address where the name belongs is read as no name (RFC 6066
        // forbids it; rustls tolerates it); a name with a space is refused.
        assert_eq!(parse(&client_hello(Some("192.0.2.1"))), Hello::NoSni);
        assert!(matches!(
            parse(&client_hello(Some("a b.example"))),
            Hello::Malformed(_)
        ));
    }
}
