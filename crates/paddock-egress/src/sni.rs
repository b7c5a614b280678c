//! Reading the server name out of a TLS ClientHello without terminating
//! TLS: enough of the record is buffered to find the SNI extension, and the
//! same bytes are then sent on unchanged.

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
}

/// A ClientHello over more than this is refused rather than buffered.
pub const MAX_HELLO: usize = 16 * 1024 + 5;

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.pos.checked_add(n)?;
        let out = self.buf.get(self.pos..end)?;
        self.pos = end;
        Some(out)
    }
    fn u8(&mut self) -> Option<usize> {
        self.take(1).map(|b| b[0] as usize)
    }
    fn u16(&mut self) -> Option<usize> {
        self.take(2)
            .map(|b| u16::from_be_bytes([b[0], b[1]]) as usize)
    }
    fn u24(&mut self) -> Option<usize> {
        self.take(3)
            .map(|b| (b[0] as usize) << 16 | (b[1] as usize) << 8 | b[2] as usize)
    }
}

pub fn parse(buf: &[u8]) -> Hello {
    // Record header: type 22 (handshake), version 3.x, length.
    if buf.is_empty() {
        return Hello::Incomplete;
    }
    if buf[0] != 22 || (buf.len() > 1 && buf[1] != 3) {
        return Hello::NotTls;
    }
    if buf.len() < 5 {
        return Hello::Incomplete;
    }
    let record_len = u16::from_be_bytes([buf[3], buf[4]]) as usize;
    let Some(record) = buf.get(5..5 + record_len) else {
        return Hello::Incomplete;
    };
    client_hello(record).unwrap_or(Hello::NotTls)
}

fn client_hello(record: &[u8]) -> Option<Hello> {
    let mut r = Reader {
        buf: record,
        pos: 0,
    };
    if r.u8()? != 1 {
        return None; // not a ClientHello
    }
    let len = r.u24()?;
    // A hello split over several records is legal but never seen from real
    // clients for the first record; treat what we have as the hello.
    let body = r.take(len.min(record.len() - 4))?;
    let mut r = Reader { buf: body, pos: 0 };
    r.take(2)?; // client version
    r.take(32)?; // random
    let session = r.u8()?;
    r.take(session)?;
    let suites = r.u16()?;
    r.take(suites)?;
    let compression = r.u8()?;
    r.take(compression)?;
    if r.pos == body.len() {
        return Some(Hello::NoSni);
    }
    let ext_total = r.u16()?;
    let exts = r.take(ext_total)?;
    let mut r = Reader { buf: exts, pos: 0 };
    while r.pos < exts.len() {
        let kind = r.u16()?;
        let len = r.u16()?;
        let data = r.take(len)?;
        if kind == 0 {
            let mut s = Reader { buf: data, pos: 0 };
            let list_len = s.u16()?;
            let list = s.take(list_len)?;
            let mut s = Reader { buf: list, pos: 0 };
            while s.pos < list.len() {
                let name_type = s.u8()?;
                let name_len = s.u16()?;
                let name = s.take(name_len)?;
                if name_type == 0 {
                    let name = std::str::from_utf8(name).ok()?;
                    return Some(Hello::Sni(name.to_ascii_lowercase()));
                }
            }
        }
    }
    Some(Hello::NoSni)
}

/// A minimal ClientHello naming `server` (tests and benchmarks).
pub fn client_hello_for(server: &str) -> Vec<u8> {
    let name = server.as_bytes();
    let mut sni = Vec::new();
    sni.extend_from_slice(&((name.len() + 3) as u16).to_be_bytes());
    sni.push(0);
    sni.extend_from_slice(&(name.len() as u16).to_be_bytes());
    sni.extend_from_slice(name);
    let mut exts = Vec::new();
    exts.extend_from_slice(&0u16.to_be_bytes());
    exts.extend_from_slice(&(sni.len() as u16).to_be_bytes());
    exts.extend_from_slice(&sni);
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
        assert_eq!(parse(&garbage), Hello::NotTls);
    }
}
