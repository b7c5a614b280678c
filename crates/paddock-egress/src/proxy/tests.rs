use super::*;

fn of(uri: &str, default_port: u16) -> Option<(String, u16)> {
    authority_of(&uri.parse().unwrap(), default_port).map(|(h, p)| (h.as_string(), p))
}

#[test]
fn a_port_that_is_written_must_be_a_port() {
    assert_eq!(
        of("http://example.com/", 80),
        Some(("example.com".into(), 80))
    );
    assert_eq!(
        of("http://example.com:8080/", 80),
        Some(("example.com".into(), 8080))
    );
    assert_eq!(
        of("http://u:p@example.com:81/", 80),
        Some(("example.com".into(), 81))
    );
    assert_eq!(of("http://[::1]:81/", 80), Some(("::1".into(), 81)));
    assert_eq!(
        of("http://example.com:/", 80),
        Some(("example.com".into(), 80))
    );
    assert_eq!(
        of("http://example.com:99999/", 80),
        None,
        "never port 80 instead"
    );
    assert_eq!(of("http://example.com:65536/", 80), None);
    assert_eq!(of("http://example.com:0/", 80), None);
    assert_eq!(of("example.com:443", 0), Some(("example.com".into(), 443)));
    assert_eq!(of("example.com:70000", 0), None);
}
