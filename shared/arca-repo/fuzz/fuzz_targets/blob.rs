#![no_main]

use arca_repo::crypto::{Keys, MasterKey};
use arca_repo::format::BlobEntry;
use arca_repo::id::Id;

// A sealed blob as read from a pack, with an index entry whose lengths come from the input:
// authentication, decompression and the length checks must refuse it without panicking.
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if data.len() < 18 {
        return;
    }
    let Some(master) = MasterKey::from_bytes(&[9; 32]) else {
        return;
    };
    let Ok(keys) = Keys::derive(&master) else { return };
    let word = |i: usize| u32::from_le_bytes(data[i..i + 4].try_into().unwrap_or_default());
    let sealed = &data[18..];
    let entry = BlobEntry {
        kind: data[0] & 1,
        // zstd and frame, in every combination
        flags: data[1] & 3,
        id: Id([3; 32]),
        offset: 0,
        stored_len: if word(2) & 1 == 0 { sealed.len() as u32 } else { word(2) },
        raw_len: word(6) % (1 << 24),
        frame_offset: word(10) % (1 << 24),
        frame_len: word(14) % (1 << 25),
    };
    assert!(arca_repo::repo::open_blob(&keys, &entry, sealed).is_err());
    assert!(arca_repo::repo::open_object(&keys, "index/00", sealed, arca_repo::format::MAX_OBJECT_LEN).is_err());
});
