//! Input checks shared by every front-end, so each refuses the same things
//! with the same words.

use crate::CoreError;

pub const MAX_DESCRIPTION: usize = 1024;
pub const MAX_COMMAND: usize = 64 * 1024;
pub const MAX_IMAGE: usize = 255;

/// Box ids and projects: lowercase DNS-label style, so they are safe in
/// container names, network names, labels and URLs alike.
fn check_slug(what: &str, value: &str) -> Result<(), CoreError> {
    let ok = !value.is_empty()
        && value.len() <= 63
        && value
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !value.starts_with('-')
        && !value.ends_with('-');
    if ok {
        Ok(())
    } else {
        Err(CoreError::Invalid(format!(
            "{what} must be 1-63 characters of a-z, 0-9 and '-', not starting or ending with '-'"
        )))
    }
}

pub fn box_id(value: &str) -> Result<(), CoreError> {
    check_slug("box_id", value)
}

pub fn project(value: &str) -> Result<(), CoreError> {
    check_slug("project", value)
}

/// A Docker image reference: `[registry/]name[:tag][@digest]`.
pub fn image(value: &str) -> Result<(), CoreError> {
    let ok = !value.is_empty()
        && value.len() <= MAX_IMAGE
        && value.bytes().all(|b| {
            b.is_ascii_lowercase()
                || b.is_ascii_digit()
                || matches!(b, b'.' | b'_' | b'-' | b'/' | b':' | b'@')
        })
        && value
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_alphanumeric())
        && !value.contains("//");
    if ok {
        Ok(())
    } else {
        Err(CoreError::Invalid(
            "image must be a Docker image reference (lowercase name, optional :tag or @digest)"
                .into(),
        ))
    }
}

/// A box's time to live: at least a second, and no more than `max_secs`
/// when that is set (0: no limit). Ten years at most either way, so the
/// deadline fits the store's milliseconds.
pub fn ttl_secs(value: Option<u64>, max_secs: u64) -> Result<Option<u64>, CoreError> {
    const TEN_YEARS_SECS: u64 = 10 * 366 * 24 * 3600;
    let Some(ttl) = value else {
        return Ok(None);
    };
    let max = if max_secs == 0 {
        TEN_YEARS_SECS
    } else {
        max_secs.min(TEN_YEARS_SECS)
    };
    if ttl == 0 || ttl > max {
        return Err(CoreError::Invalid(format!(
            "ttl_secs must be between 1 and {max}"
        )));
    }
    Ok(Some(ttl))
}

pub fn description(value: &str) -> Result<(), CoreError> {
    if value.len() > MAX_DESCRIPTION {
        return Err(CoreError::Invalid(format!(
            "description is longer than {MAX_DESCRIPTION} bytes"
        )));
    }
    if value
        .chars()
        .any(|c| c.is_control() && c != '\n' && c != '\t')
    {
        return Err(CoreError::Invalid(
            "description contains control characters".into(),
        ));
    }
    Ok(())
}

pub fn command(value: &str) -> Result<(), CoreError> {
    if value.trim().is_empty() {
        return Err(CoreError::Invalid("command is empty".into()));
    }
    if value.len() > MAX_COMMAND {
        return Err(CoreError::Invalid(format!(
            "command is longer than {MAX_COMMAND} bytes"
        )));
    }
    if value.contains('\0') {
        return Err(CoreError::Invalid("command contains a NUL byte".into()));
    }
    Ok(())
}

/// A command given word by word: at least a program, the same caps as a
/// command line (in total), no NUL anywhere.
pub fn argv(words: &[String]) -> Result<(), CoreError> {
    match words.first() {
        None => return Err(CoreError::Invalid("argv is empty".into())),
        Some(program) if program.is_empty() => {
            return Err(CoreError::Invalid("argv names no program".into()));
        }
        Some(_) => {}
    }
    if words.len() > MAX_ARGV_WORDS {
        return Err(CoreError::Invalid(format!(
            "argv has more than {MAX_ARGV_WORDS} words"
        )));
    }
    if words.iter().map(String::len).sum::<usize>() > MAX_COMMAND {
        return Err(CoreError::Invalid(format!(
            "argv is longer than {MAX_COMMAND} bytes"
        )));
    }
    if words.iter().any(|w| w.contains('\0')) {
        return Err(CoreError::Invalid("argv contains a NUL byte".into()));
    }
    Ok(())
}

const MAX_ARGV_WORDS: usize = 4096;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttls() {
        assert_eq!(ttl_secs(None, 60).unwrap(), None);
        assert_eq!(ttl_secs(Some(60), 60).unwrap(), Some(60));
        assert_eq!(ttl_secs(Some(u64::MAX / 2), 0).ok(), None);
        for bad in [0, 61] {
            let err = ttl_secs(Some(bad), 60).unwrap_err().to_string();
            assert!(err.contains("between 1 and 60"), "{err}");
        }
    }

    #[test]
    fn slugs() {
        for ok in ["a", "demo-1", "x".repeat(63).as_str()] {
            assert!(box_id(ok).is_ok(), "{ok}");
        }
        for bad in ["", "-a", "a-", "A", "a_b", "a/b", "../x", &"x".repeat(64)] {
            assert!(box_id(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn images() {
        for ok in [
            "busybox",
            "paddock-box:latest",
            "reg.io:5000/a/b:1.2",
            "a@sha256:ab",
        ] {
            assert!(image(ok).is_ok(), "{ok}");
        }
        for bad in ["", "UPPER", "a b", "a//b", ":tag", &"a".repeat(300)] {
            assert!(image(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn descriptions_and_commands() {
        assert!(description("fine\nmultiline").is_ok());
        assert!(description("bell\x07").is_err());
        assert!(description(&"d".repeat(2000)).is_err());
        assert!(command("echo hi").is_ok());
        assert!(command("  ").is_err());
        assert!(command("a\0b").is_err());
    }
}
