//! The fuzz targets of `fuzz/` by name, and their committed corpora
//! (`fuzz/corpus/<target>/`) replayed through the same entry functions
//! with no instrumented build, so `scripts/test` catches a regression on
//! any input a fuzzer once found interesting. `scripts/fuzz` runs the
//! fuzzers themselves (nightly Rust and cargo-fuzz) and adds to the
//! corpora.

use std::path::{Path, PathBuf};

/// The function a fuzz target drives: any input, and it must return.
pub type Entry = fn(&[u8]);

/// Every fuzz target: its name (as in `fuzz/fuzz_targets/<name>.rs`) and
/// the function it drives.
pub const TARGETS: &[(&str, Entry)] = &[
    ("proxy_request", paddock_egress::fuzzing::proxy_request),
    ("client_hello", paddock_egress::fuzzing::client_hello),
    ("dns_query", paddock_egress::fuzzing::dns_query),
    ("varlink_frames", paddock_clearance::fuzzing::varlink_frames),
    ("basic_auth", paddock_gate::fuzzing::basic_auth),
    ("git_request", paddock_gate::fuzzing::git_request),
    ("push_commands", paddock_gate::fuzzing::push_commands),
    ("jwt_header", paddock_iam::fuzzing::jwt_header),
    ("hook_answer", paddock_core::fuzzing::hook_answer),
];

/// `fuzz/corpus/<target>` in this repository.
pub fn corpus_dir(target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/corpus")
        .join(target)
}

/// Runs every file of a target's corpus through `entry`; the files run,
/// or the first that panicked (its name, and the panic's message).
pub fn replay(target: &str, entry: Entry) -> Result<usize, String> {
    let dir = corpus_dir(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .map_err(|e| format!("{}: {e}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    for file in &files {
        let data = std::fs::read(file).map_err(|e| format!("{}: {e}", file.display()))?;
        if let Err(panic) = std::panic::catch_unwind(|| entry(&data)) {
            let message = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                .unwrap_or_default();
            return Err(format!("{} panicked: {message}", file.display()));
        }
    }
    Ok(files.len())
}

/// Runs `data` through the target named `target` (how the fuzz targets
/// call their functions, so a target and its replay cannot drift apart).
pub fn run(target: &str, data: &[u8]) {
    if let Some((_, entry)) = TARGETS.iter().find(|(name, _)| *name == target) {
        entry(data);
    }
}
