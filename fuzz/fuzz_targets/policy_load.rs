#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| zweck_fuzz::policy_load(data));
