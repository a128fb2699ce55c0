#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| figure2_protocol::fuzzing::www_authenticate(data));
