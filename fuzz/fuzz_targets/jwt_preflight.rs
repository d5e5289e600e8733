//! Fuzz target: `attrgate::fuzzing::jwt_preflight` must not panic on any input.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| attrgate::fuzzing::jwt_preflight(data));
