//! The ref updates a push asks for: the pkt-lines at the start of a
//! `git-receive-pack` request body, read by the gate before the body goes
//! on to the backend.

/// One requested update.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RefUpdate {
    pub old: String,
    pub new: String,
    pub name: String,
}

impl RefUpdate {
    pub fn creates(&self) -> bool {
        zero(&self.old) && !zero(&self.new)
    }
}

fn zero(id: &str) -> bool {
    id.bytes().all(|b| b == b'0')
}

#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Parsed {
    /// More bytes are needed.
    Incomplete,
    /// The command list up to its flush packet.
    Done(Vec<RefUpdate>),
    /// Not a command list this parser understands (left to git to judge).
    Unknown,
}

pub(crate) fn parse(buf: &[u8]) -> Parsed {
    let mut updates = Vec::new();
    let mut at = 0;
    loop {
        let Some(head) = buf.get(at..at + 4) else {
            return Parsed::Incomplete;
        };
        let Some(len) = std::str::from_utf8(head)
            .ok()
            .and_then(|h| usize::from_str_radix(h, 16).ok())
        else {
            return Parsed::Unknown;
        };
        if len == 0 {
            return Parsed::Done(updates);
        }
        if len < 4 {
            return Parsed::Unknown;
        }
        let Some(line) = buf.get(at + 4..at + len) else {
            return Parsed::Incomplete;
        };
        at += len;
        // "old new name\0capabilities\n" (capabilities on the first only).
        let line = line.split(|b| *b == 0).next().unwrap_or(line);
        let Ok(line) = std::str::from_utf8(line) else {
            return Parsed::Unknown;
        };
        let mut parts = line.trim_end_matches('\n').split(' ');
        match (parts.next(), parts.next(), parts.next(), parts.next()) {
            (Some(old), Some(new), Some(name), None)
                if old.len() >= 40 && new.len() >= 40 && !name.is_empty() =>
            {
                updates.push(RefUpdate {
                    old: old.into(),
                    new: new.into(),
                    name: name.into(),
                });
            }
            // e.g. "shallow …" or push certificates: not ours to read.
            _ => return Parsed::Unknown,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pkt(s: &str) -> String {
        format!("{:04x}{s}", s.len() + 4)
    }

    #[test]
    fn command_lists_parse() {
        let z = "0".repeat(40);
        let a = "a".repeat(40);
        let body = format!(
            "{}{}0000PACK...",
            pkt(&format!(
                "{z} {a} refs/heads/agent/x\0report-status side-band-64k\n"
            )),
            pkt(&format!("{a} {z} refs/heads/old\n"))
        );
        let Parsed::Done(updates) = parse(body.as_bytes()) else {
            panic!("not parsed");
        };
        assert_eq!(updates.len(), 2);
        assert!(updates[0].creates());
        assert_eq!(updates[0].name, "refs/heads/agent/x");
        assert!(!updates[1].creates(), "a deletion");
        assert_eq!(parse(&body.as_bytes()[..10]), Parsed::Incomplete);
        assert_eq!(parse(b"zzzz"), Parsed::Unknown);
        assert_eq!(parse(pkt("shallow abc\n").as_bytes()), Parsed::Unknown);
        assert_eq!(parse(b"0002"), Parsed::Unknown);
    }
}
