//! Entry points for fuzzing what a caller can present as a credential: a
//! JWT's header (read before any key is looked up). See
//! `paddock_egress::fuzzing` for how they are driven.

/// A bearer credential as the OIDC regime first reads it.
pub fn jwt_header(data: &[u8]) {
    if let Ok(token) = std::str::from_utf8(data) {
        let _ = jsonwebtoken::decode_header(token);
    }
}
