#![no_main]
//! `git_request`: see paddock_fuzz_replay::TARGETS for the function it drives.

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    paddock_fuzz_replay::run("git_request", data);
});
