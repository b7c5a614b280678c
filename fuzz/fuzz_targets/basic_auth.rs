#![no_main]
//! `basic_auth`: see paddock_fuzz_replay::TARGETS for the function it drives.

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    paddock_fuzz_replay::run("basic_auth", data);
});
