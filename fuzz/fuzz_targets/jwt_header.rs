#![no_main]
//! `jwt_header`: see paddock_fuzz_replay::TARGETS for the function it drives.

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    paddock_fuzz_replay::run("jwt_header", data);
});
