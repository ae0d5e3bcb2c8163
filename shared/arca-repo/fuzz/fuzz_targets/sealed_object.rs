#![no_main]

use arca_repo::crypto::{Keys, MasterKey, repo_object_aad};

// A sealed object as read from the store (`config`, `snapshots/<id>`, `index/<id>`,
// `gc/<id>`): the first byte picks its key and size limit, the rest is the stored bytes.
// Forged bytes must be refused; bytes sealed under another key must be refused too.
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Some((&pick, stored)) = data.split_first() else {
        return;
    };
    let Some(master) = MasterKey::from_bytes(&[9; 32]) else {
        return;
    };
    let Ok(keys) = Keys::derive(&master) else { return };
    let id = "ab".repeat(32);
    let (key, max) = match pick % 4 {
        0 => ("config".to_string(), arca_repo::format::MAX_CONFIG_LEN),
        1 => (format!("snapshots/{id}"), arca_repo::format::MAX_SNAPSHOT_LEN),
        2 => (format!("index/{id}"), arca_repo::format::MAX_OBJECT_LEN),
        _ => (format!("gc/{id}"), arca_repo::format::MAX_OBJECT_LEN),
    };
    assert!(arca_repo::repo::open_object(&keys, &key, stored, max).is_err());
    // The same plaintext sealed for one key never opens under another.
    if let Ok(sealed) = keys.sealer().seal(&repo_object_aad(&key), &arca_repo::format::frame(stored, 1)) {
        assert_eq!(arca_repo::repo::open_object(&keys, &key, &sealed, max).is_ok(), stored.len() <= max);
        assert!(arca_repo::repo::open_object(&keys, "snapshots/other", &sealed, max).is_err());
    }
});
