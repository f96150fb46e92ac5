#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| app::core::fuzzing::money(data));
