//! Every fuzz target's committed corpus, replayed: no input panics, and
//! no target has lost its corpus.

use paddock_fuzz_replay::{TARGETS, corpus_dir, replay};

#[test]
fn every_corpus_replays_without_a_panic() {
    for (target, entry) in TARGETS {
        let ran = replay(target, *entry).unwrap_or_else(|e| panic!("{target}: {e}"));
        assert!(
            ran >= 3,
            "{target}: only {ran} inputs in {}",
            corpus_dir(target).display()
        );
    }
}

#[test]
fn every_fuzz_target_is_replayed() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/fuzz_targets");
    let mut on_disk: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| {
            let name = e.ok()?.file_name().into_string().ok()?;
            name.strip_suffix(".rs").map(str::to_owned)
        })
        .collect();
    on_disk.sort();
    let mut replayed: Vec<String> = TARGETS.iter().map(|(t, _)| (*t).to_owned()).collect();
    replayed.sort();
    assert_eq!(on_disk, replayed, "fuzz/fuzz_targets and TARGETS disagree");
}
