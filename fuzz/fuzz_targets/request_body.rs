//! Fuzz target: `attrgate::fuzzing::request_body` must not panic on any input.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| attrgate::fuzzing::request_body(data));
