#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| mimi_fuzz::presigned::run(data));
