#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = arca_repo::lock::decode_lock(data);
});
