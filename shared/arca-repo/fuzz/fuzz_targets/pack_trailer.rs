#![no_main]

// The pack trailer (u32-le length of the sealed header) against the pack's size, then the
// decoded header's bounds against the blob region it implies.
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if data.len() < 12 {
        return;
    }
    let size = u64::from_le_bytes(data[..8].try_into().unwrap_or_default());
    if let Ok(range) = arca_repo::format::decode_pack_trailer(size, &data[8..12]) {
        assert!(range.end + 4 == size && range.start <= range.end);
        if let Ok(header) = arca_repo::format::decode_pack_header(&data[12..]) {
            let _ = arca_repo::format::check_pack_bounds(&header, range.start);
        }
    }
});
