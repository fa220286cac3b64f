#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| zweck_fuzz::csv_transform(data));
