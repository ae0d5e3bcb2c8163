#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = arca_repo::format::decode_snapshot(data);
});
