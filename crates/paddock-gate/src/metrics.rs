//! What the gate counts for `/metrics`: ref updates pushed, by outcome,
//! and requests refused before git ran.
//!
//! The hooks that decide a push are other processes (`git receive-pack`
//! runs them), and their one record is the audit log they append to. So
//! the counts are read from that log when scraped: each scrape reads only
//! what was appended since the last. A log that shrank or was replaced
//! (pruned by retention, rotated) is counted again from its start: the
//! counters reset, as after a restart, which Prometheus' rates allow for.

use std::collections::BTreeMap;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use paddock_metrics::ReadFn;
use parking_lot::Mutex;

/// The outcomes a ref update is recorded with.
const OUTCOMES: [&str; 3] = ["accepted", "refused", "backed_up"];

/// Counts read so far, and where the next read starts.
#[derive(Default)]
struct Tally {
    offset: u64,
    /// The log's inode: another file under the name is counted afresh.
    inode: u64,
    /// The end of a record still being written.
    partial: Vec<u8>,
    updates: BTreeMap<String, u64>,
    refused_requests: u64,
}

impl Tally {
    fn count(&mut self, line: &[u8]) {
        let Ok(record) = serde_json::from_slice::<serde_json::Value>(line) else {
            return;
        };
        let outcome = record["outcome"].as_str().unwrap_or_default();
        if record.get("ref").is_some() {
            if let Some(known) = OUTCOMES.iter().find(|o| **o == outcome) {
                *self.updates.entry((*known).to_owned()).or_default() += 1;
            }
        } else if outcome == "refused" {
            self.refused_requests += 1;
        }
    }

    /// Reads what was appended since the last call.
    fn catch_up(&mut self, path: &Path) {
        let Ok(mut file) = std::fs::File::open(path) else {
            return;
        };
        let Ok(meta) = file.metadata() else { return };
        let len = meta.len();
        if len < self.offset || std::os::unix::fs::MetadataExt::ino(&meta) != self.inode {
            *self = Tally {
                inode: std::os::unix::fs::MetadataExt::ino(&meta),
                ..Tally::default()
            };
        }
        if len == self.offset || file.seek(SeekFrom::Start(self.offset)).is_err() {
            return;
        }
        let mut appended = Vec::new();
        let Ok(read) = file.take(len - self.offset).read_to_end(&mut appended) else {
            return;
        };
        self.offset += read as u64;
        self.partial.extend_from_slice(&appended);
        let Some(last_newline) = self.partial.iter().rposition(|b| *b == b'\n') else {
            return;
        };
        let complete: Vec<u8> = self.partial.drain(..=last_newline).collect();
        for line in complete.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
            self.count(line);
        }
    }
}

/// Registers the gate's families, read from the audit log at `path`.
pub fn register(path: PathBuf) {
    let tally = Arc::new(Mutex::new(Tally::default()));
    let (read_updates, path_updates) = (tally.clone(), path.clone());
    paddock_metrics::global().register(Arc::new(ReadFn::counter(
        "paddock_gate_ref_updates_total",
        "Ref updates pushed to the gate, by outcome (accepted, refused, backed_up).",
        &["outcome"],
        move || {
            let mut tally = read_updates.lock();
            tally.catch_up(&path_updates);
            OUTCOMES
                .iter()
                .map(|o| {
                    let n = tally.updates.get(*o).copied().unwrap_or(0);
                    (vec![(*o).to_owned()], n as f64)
                })
                .collect()
        },
    )));
    paddock_metrics::global().register(Arc::new(ReadFn::counter(
        "paddock_gate_requests_refused_total",
        "git requests the gate refused before git ran (token, project, size, hooks).",
        &[],
        move || {
            let mut tally = tally.lock();
            tally.catch_up(&path);
            vec![(Vec::new(), tally.refused_requests as f64)]
        },
    )));
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write as _;

    fn append(path: &Path, text: &str) {
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .unwrap();
        f.write_all(text.as_bytes()).unwrap();
    }

    #[test]
    fn counts_what_was_appended_once_and_starts_again_on_a_new_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("git-audit.jsonl");
        let mut tally = Tally::default();
        tally.catch_up(&path);
        assert!(tally.updates.is_empty(), "no log yet: nothing counted");

        append(
            &path,
            "{\"ref\":\"refs/heads/agent/x\",\"outcome\":\"accepted\"}\n\
             {\"ref\":\"refs/heads/main\",\"outcome\":\"refused\"}\n\
             {\"request\":\"/p.git/info/refs\",\"outcome\":\"refused\"}\n\
             not json\n\
             {\"ref\":\"refs/heads/agent/y\",\"outc",
        );
        tally.catch_up(&path);
        assert_eq!(tally.updates.get("accepted"), Some(&1));
        assert_eq!(tally.updates.get("refused"), Some(&1));
        assert_eq!(tally.refused_requests, 1);

        // The half-written record is counted once it ends, never twice.
        append(&path, "ome\":\"accepted\"}\n");
        tally.catch_up(&path);
        tally.catch_up(&path);
        assert_eq!(tally.updates.get("accepted"), Some(&2));

        // Replaced (another file, even a longer one): counted from its
        // start, a counter reset.
        let rotated = dir.path().join("new");
        std::fs::write(
            &rotated,
            "{\"ref\":\"r\",\"outcome\":\"backed_up\"}\n".repeat(9),
        )
        .unwrap();
        std::fs::rename(&rotated, &path).unwrap();
        tally.catch_up(&path);
        assert_eq!(tally.updates.get("backed_up"), Some(&9));
        assert_eq!(tally.updates.get("accepted"), None);
    }
}
