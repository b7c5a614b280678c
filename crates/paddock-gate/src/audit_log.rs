//! The gate's audit log file: appended to by the hooks (other processes)
//! and the gate, pruned by retention. Appenders and the pruner take an
//! exclusive `flock` on the file, and an appender that got its lock on a
//! file the pruner has since replaced opens the new one and tries again,
//! so no record goes to a file nobody will read.

use std::io::Write;
use std::os::fd::AsRawFd;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// An exclusive `flock`, released when the file closes.
fn lock(file: &std::fs::File) -> std::io::Result<()> {
    loop {
        // SAFETY: flock on a descriptor this function's caller owns.
        let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) };
        if rc == 0 {
            return Ok(());
        }
        let e = std::io::Error::last_os_error();
        if e.kind() != std::io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

/// Whether `file` is still what `path` names.
fn still_named(file: &std::fs::File, path: &Path) -> std::io::Result<bool> {
    let open = file.metadata()?;
    match std::fs::metadata(path) {
        Ok(named) => Ok(named.ino() == open.ino() && named.dev() == open.dev()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

/// Appends one record (a line) to the log.
pub(crate) fn append(path: &Path, line: &[u8]) -> std::io::Result<()> {
    loop {
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?;
        lock(&file)?;
        if still_named(&file, path)? {
            return file.write_all(line);
        }
    }
}

/// Removes records older than `keep_since` (by their `time`); records
/// without a readable time are kept. Returns how many went.
pub fn prune(path: &Path, keep_since: time::OffsetDateTime) -> std::io::Result<usize> {
    let file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e),
    };
    lock(&file)?;
    if !still_named(&file, path)? {
        // Another pruner replaced it meanwhile: its work stands.
        return Ok(0);
    }
    let text = std::fs::read(path)?;
    let mut kept = Vec::with_capacity(text.len());
    let mut pruned = 0;
    for line in text.split_inclusive(|b| *b == b'\n') {
        if older(line, keep_since) {
            pruned += 1;
        } else {
            kept.extend_from_slice(line);
        }
    }
    if pruned == 0 {
        return Ok(0);
    }
    let mut name = path.as_os_str().to_owned();
    name.push(".pruning");
    let fresh = std::path::PathBuf::from(name);
    {
        let mut out = std::fs::File::create(&fresh)?;
        out.set_permissions(file.metadata()?.permissions())?;
        out.write_all(&kept)?;
        out.sync_all()?;
    }
    std::fs::rename(&fresh, path)?;
    Ok(pruned)
}

fn older(line: &[u8], keep_since: time::OffsetDateTime) -> bool {
    let Ok(record) = serde_json::from_slice::<serde_json::Value>(line) else {
        return false;
    };
    record["time"]
        .as_str()
        .and_then(|t| {
            time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339).ok()
        })
        .is_some_and(|at| at < keep_since)
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn prunes_old_records_and_appends_land_in_the_new_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("git-audit.jsonl");
        for line in [
            "{\"time\":\"2026-01-01T00:00:00Z\",\"outcome\":\"accepted\"}\n",
            "{\"time\":\"2026-06-01T00:00:00Z\",\"outcome\":\"refused\"}\n",
            "not a record\n",
        ] {
            append(&path, line.as_bytes()).unwrap();
        }
        assert_eq!(prune(&path, datetime!(2026-03-01 0:00 UTC)).unwrap(), 1);
        append(&path, b"{\"time\":\"2026-07-01T00:00:00Z\"}\n").unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(
            text,
            "{\"time\":\"2026-06-01T00:00:00Z\",\"outcome\":\"refused\"}\nnot a record\n\
             {\"time\":\"2026-07-01T00:00:00Z\"}\n"
        );
        assert_eq!(prune(&path, datetime!(2026-03-01 0:00 UTC)).unwrap(), 0);
        assert_eq!(
            prune(&dir.path().join("none"), datetime!(2026-03-01 0:00 UTC)).unwrap(),
            0
        );
    }

    #[test]
    fn an_append_waiting_on_a_prune_is_not_lost() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("git-audit.jsonl");
        append(&path, b"{\"time\":\"2020-01-01T00:00:00Z\"}\n").unwrap();
        // Hold the lock as a pruner would, start an appender, then replace
        // the file and let go: the appender must write to the new file.
        let held = std::fs::File::open(&path).unwrap();
        lock(&held).unwrap();
        let appender = {
            let path = path.clone();
            std::thread::spawn(move || append(&path, b"{\"late\":true}\n"))
        };
        let replaced = dir.path().join("fresh");
        std::fs::write(&replaced, "").unwrap();
        std::fs::rename(&replaced, &path).unwrap();
        drop(held);
        appender.join().unwrap().unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "{\"late\":true}\n");
    }
}
