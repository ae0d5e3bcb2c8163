//! The stable-toolchain side of `fuzz/`: every decoder of repository objects is fed a
//! deterministic corpus of mutations of valid objects (every truncation, every bit flip,
//! byte insertions and deletions, boundary values written over every length field, and
//! random multi-byte edits), and arbitrary bytes through proptest. A decoder must return an
//! error or a value, never panic; binary objects must refuse every truncation and re-encode
//! to the very bytes they decoded from.
#![allow(clippy::unwrap_used)] // tests fail loudly on any error

use arca_repo::crypto::{Keys, MasterKey};
use arca_repo::format::{
    self, BlobEntry, CdcParams, Config, GcMarker, IndexFile, MapEntry, PackHeader, Snapshot, SnapshotKind,
};
use arca_repo::keys::{KeyWrapper, decode_key_file};
use arca_repo::{BackupStats, Id, KdfParams, PassphraseWrapper};
use proptest::prelude::*;

/// Feeds `bytes` to every decoder. Binary decoders that accept must re-encode canonically.
fn decode_all(bytes: &[u8]) {
    if let Ok(h) = format::decode_pack_header(bytes) {
        assert_eq!(format::encode_pack_header(&h), bytes, "pack header re-encodes");
        let _ = format::check_pack_bounds(&h, bytes.len() as u64);
    }
    if let Ok(i) = format::decode_index(bytes) {
        assert_eq!(format::encode_index(&i), bytes, "index re-encodes");
    }
    if let Ok(m) = format::decode_map(bytes) {
        assert_eq!(format::encode_map(&m), bytes, "block map re-encodes");
    }
    if let Ok(plain) = format::unframe(bytes) {
        assert!(plain.len() <= format::MAX_OBJECT_LEN);
    }
    let _ = format::decode_config(bytes);
    let _ = format::decode_snapshot(bytes);
    let _ = format::decode_gc_marker(bytes);
    let _ = decode_key_file(bytes);
    let _ = arca_repo::lock::decode_lock(bytes);
    if bytes.len() >= 8 {
        let size = u64::from_le_bytes(bytes[..8].try_into().unwrap());
        if let Ok(r) = format::decode_pack_trailer(size, &bytes[8..]) {
            assert!(r.start <= r.end && r.end + 4 == size);
        }
    }
    blob(bytes);
}

/// A fixed key for the sealed layer: arbitrary bytes as a sealed blob, with an entry that
/// claims lengths taken from the input.
fn blob(bytes: &[u8]) {
    thread_local! {
        static KEYS: Keys = Keys::derive(&MasterKey::from_bytes(&[9; 32]).unwrap()).unwrap();
    }
    let word = |i: usize| {
        bytes
            .get(i..i + 4)
            .map_or(0, |w| u32::from_le_bytes(w.try_into().unwrap()))
    };
    let entry = BlobEntry {
        kind: bytes.first().copied().unwrap_or(0) & 1,
        // zstd and frame, in every combination
        flags: bytes.get(1).copied().unwrap_or(0) & 3,
        id: Id([3; 32]),
        offset: 0,
        stored_len: if bytes.len() > 2 && bytes[2] & 1 == 0 {
            bytes.len() as u32
        } else {
            word(3)
        },
        raw_len: word(7) % (1 << 24),
        frame_offset: word(11) % (1 << 24),
        frame_len: word(15) % (1 << 25),
    };
    KEYS.with(|keys| {
        assert!(
            arca_repo::repo::open_blob(keys, &entry, bytes).is_err(),
            "forged blob accepted"
        );
        let key = format!("index/{}", Id([5; 32]).to_hex());
        assert!(
            arca_repo::repo::open_object(keys, &key, bytes, format::MAX_OBJECT_LEN).is_err(),
            "forged sealed object accepted"
        );
    });
}

fn entry(i: u32) -> BlobEntry {
    BlobEntry {
        kind: (i % 2) as u8,
        flags: ((i / 2) % 2) as u8,
        id: Id([i as u8; 32]),
        offset: i * 1000,
        stored_len: 900 + i,
        raw_len: 65536,
        ..BlobEntry::default()
    }
}

fn snapshot() -> Snapshot {
    Snapshot {
        version: format::FORMAT_VERSION,
        kind: SnapshotKind::Volume,
        name: "pvc-1".into(),
        created_ms: 1_767_225_600_000,
        size: 3 << 20,
        block_size: 65536,
        map: vec![Id([1; 32]).to_hex(), Id([2; 32]).to_hex()],
        parent: Some(Id([4; 32]).to_hex()),
        hostname: Some("node-a".into()),
        stats: BackupStats {
            bytes_read: 10,
            blocks_total: 48,
            ..BackupStats::default()
        },
        origin: Some("ebs:snap-0123456789abcdef0".into()),
    }
}

/// One valid object of every kind, as its decoder sees it (plaintext, after unsealing).
fn corpus() -> Vec<(&'static str, Vec<u8>)> {
    let header = PackHeader {
        created_ms: 77,
        blobs: (0..4).map(entry).collect(),
    };
    let index = IndexFile {
        created_ms: 88,
        packs: vec![
            (Id([5; 32]), (0..3).map(entry).collect()),
            (Id([6; 32]), vec![]),
            (Id([7; 32]), vec![entry(9)]),
        ],
    };
    let map = vec![
        MapEntry::Zero(1 << 16),
        MapEntry::Data {
            len: 65536,
            id: Id([8; 32]),
        },
        MapEntry::Zero(3 << 16),
        MapEntry::Data {
            len: 100,
            id: Id([9; 32]),
        },
    ];
    let mut config = Config::new(&Id([1; 32]));
    config.cdc = CdcParams {
        min: 1024,
        avg: 4096,
        max: 16384,
    };
    let marker = GcMarker {
        version: 1,
        created_ms: 5,
        packs: vec![Id([1; 32]).to_hex(), Id([2; 32]).to_hex()],
    };
    let key_file = {
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let params = KdfParams {
            memory_kib: 64,
            iterations: 1,
            ..KdfParams::default()
        };
        let file = rt
            .block_on(PassphraseWrapper::with_params("p", params).wrap(&MasterKey::generate().unwrap(), 1))
            .unwrap();
        serde_json::to_vec(&file).unwrap()
    };
    let text = b"{\"log\":\"a line that compresses well\"}\n".repeat(20);
    let mut trailer = 1000u64.to_le_bytes().to_vec();
    trailer.extend_from_slice(&200u32.to_le_bytes());
    vec![
        ("pack header", format::encode_pack_header(&header)),
        ("index", format::encode_index(&index)),
        ("block map", format::encode_map(&map)),
        ("frame (zstd)", format::frame(&text, 3)),
        ("frame (raw)", format::frame(b"short", 3)),
        ("config", serde_json::to_vec(&config).unwrap()),
        ("snapshot", serde_json::to_vec(&snapshot()).unwrap()),
        ("gc marker", serde_json::to_vec(&marker).unwrap()),
        ("key file", key_file),
        ("pack trailer", trailer),
        ("lock", br#"{"created_ms":1767225600000,"hostname":"node-a"}"#.to_vec()),
    ]
}

/// Deterministic xorshift, so a failure reproduces.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

#[test]
fn the_corpus_is_valid() {
    let c = corpus();
    let get = |name: &str| &c.iter().find(|(n, _)| *n == name).unwrap().1;
    format::decode_pack_header(get("pack header")).unwrap();
    format::decode_index(get("index")).unwrap();
    format::decode_map(get("block map")).unwrap();
    format::unframe(get("frame (zstd)")).unwrap();
    format::unframe(get("frame (raw)")).unwrap();
    format::decode_config(get("config")).unwrap();
    format::decode_snapshot(get("snapshot")).unwrap();
    format::decode_gc_marker(get("gc marker")).unwrap();
    decode_key_file(get("key file")).unwrap();
    arca_repo::lock::decode_lock(get("lock")).unwrap();
    let t = get("pack trailer");
    assert_eq!(
        format::decode_pack_trailer(u64::from_le_bytes(t[..8].try_into().unwrap()), &t[8..]).unwrap(),
        796..996
    );
}

/// With `ARCA_FUZZ_CORPUS=<dir>`, writes the corpus as seeds for `cargo fuzz run <target>
/// <dir>/<target>` (each target's input layout: `pack_trailer` and `blob` take a prefix).
#[test]
fn write_fuzz_seeds_when_asked() {
    let Some(dir) = std::env::var_os("ARCA_FUZZ_CORPUS") else {
        return;
    };
    let dir = std::path::PathBuf::from(dir);
    for (name, bytes) in corpus() {
        let (target, seed) = match name {
            "pack header" => ("pack_header", bytes),
            "index" => ("index", bytes),
            "block map" => ("block_map", bytes),
            "frame (zstd)" | "frame (raw)" => ("frame", bytes),
            "config" => ("config", bytes),
            "snapshot" => ("snapshot", bytes),
            "gc marker" => ("gc_marker", bytes),
            "key file" => ("key_file", bytes),
            "lock" => ("lock", bytes),
            _ => {
                // pack_trailer: size u64 ‖ trailer u32 ‖ a header
                let header = corpus().remove(0).1;
                let mut seed = ((header.len() + 4 + 100) as u64).to_le_bytes().to_vec();
                seed.extend_from_slice(&(header.len() as u32).to_le_bytes());
                seed.extend_from_slice(&header);
                ("pack_trailer", seed)
            }
        };
        let path = dir.join(target);
        std::fs::create_dir_all(&path).unwrap();
        std::fs::write(path.join(name.replace([' ', '(', ')'], "_")), seed).unwrap();
    }
    // blob: kind ‖ flags ‖ stored_len u32 ‖ raw_len u32 ‖ sealed bytes (a real sealed blob)
    let keys = Keys::derive(&MasterKey::from_bytes(&[9; 32]).unwrap()).unwrap();
    let plain = b"block ".repeat(100);
    let id = keys.blob_id(&plain);
    let sealed = keys
        .sealer()
        .seal(&arca_repo::crypto::blob_aad(0, &id), &plain)
        .unwrap();
    let mut seed = vec![0u8, 0];
    seed.extend_from_slice(&0u32.to_le_bytes());
    seed.extend_from_slice(&(plain.len() as u32).to_le_bytes());
    seed.extend_from_slice(&sealed);
    std::fs::create_dir_all(dir.join("blob")).unwrap();
    std::fs::write(dir.join("blob/sealed"), seed).unwrap();
}

#[test]
fn every_truncation_is_refused() {
    for (name, valid) in corpus() {
        for cut in 0..valid.len() {
            decode_all(&valid[..cut]);
        }
        let refuses = |bytes: &[u8]| -> bool {
            match name {
                "pack header" => format::decode_pack_header(bytes).is_err(),
                "index" => format::decode_index(bytes).is_err(),
                "block map" => format::decode_map(bytes).is_err(),
                "frame (zstd)" | "frame (raw)" => format::unframe(bytes).is_err(),
                "config" => format::decode_config(bytes).is_err(),
                "snapshot" => format::decode_snapshot(bytes).is_err(),
                "gc marker" => format::decode_gc_marker(bytes).is_err(),
                "key file" => decode_key_file(bytes).is_err(),
                "lock" => arca_repo::lock::decode_lock(bytes).is_err(),
                _ => true,
            }
        };
        for cut in 0..valid.len() {
            assert!(refuses(&valid[..cut]), "{name}: truncation to {cut} bytes accepted");
        }
    }
}

#[test]
fn bit_flips_insertions_and_deletions_never_panic() {
    for (_, valid) in corpus() {
        let mut m = valid.clone();
        for i in 0..valid.len() {
            for bit in 0..8 {
                m[i] ^= 1 << bit;
                decode_all(&m);
                m[i] ^= 1 << bit;
            }
            for v in [0x00, 0x01, 0x7f, 0x80, 0xff, b'"', b'{', b'9', b'-'] {
                let old = m[i];
                m[i] = v;
                decode_all(&m);
                m[i] = old;
            }
            let mut deleted = valid.clone();
            deleted.remove(i);
            decode_all(&deleted);
            let mut inserted = valid.clone();
            inserted.insert(i, 0xff);
            decode_all(&inserted);
        }
        let mut appended = valid.clone();
        appended.push(0);
        decode_all(&appended);
    }
}

#[test]
fn boundary_values_over_every_length_field_never_panic() {
    // Every aligned 4- and 8-byte window overwritten with values that trip careless
    // arithmetic: counts, offsets and lengths of every binary object.
    let values: [u64; 7] = [0, 1, 0x7fff_ffff, 0xffff_ffff, 0x1_0000_0000, u64::MAX / 2, u64::MAX];
    for (_, valid) in corpus() {
        for at in 0..valid.len() {
            for v in values {
                let mut m = valid.clone();
                let w4 = (v as u32).to_le_bytes();
                let n = w4.len().min(m.len() - at);
                m[at..at + n].copy_from_slice(&w4[..n]);
                decode_all(&m);
                let mut m = valid.clone();
                let w8 = v.to_le_bytes();
                let n = w8.len().min(m.len() - at);
                m[at..at + n].copy_from_slice(&w8[..n]);
                decode_all(&m);
            }
        }
    }
}

#[test]
fn random_multi_byte_edits_never_panic() {
    let mut rng = Rng(0x5eed_cafe_f00d_1234);
    let corpus = corpus();
    for round in 0..30_000 {
        let (_, valid) = &corpus[round % corpus.len()];
        let mut m = valid.clone();
        for _ in 0..1 + rng.below(6) {
            match rng.below(5) {
                0 if !m.is_empty() => {
                    let i = rng.below(m.len());
                    m[i] = rng.next() as u8;
                }
                1 if !m.is_empty() => {
                    let i = rng.below(m.len());
                    let j = (i + 1 + rng.below(16)).min(m.len());
                    m.drain(i..j);
                }
                2 => {
                    let i = rng.below(m.len() + 1);
                    let junk: Vec<u8> = (0..rng.below(16)).map(|_| rng.next() as u8).collect();
                    m.splice(i..i, junk);
                }
                3 if m.len() > 1 => {
                    // splice in a piece of another valid object
                    let (_, other) = &corpus[rng.below(corpus.len())];
                    let from = rng.below(other.len());
                    let to = (from + rng.below(64)).min(other.len());
                    let i = rng.below(m.len());
                    m.splice(i..i, other[from..to].iter().copied());
                }
                _ => m.truncate(rng.below(m.len() + 1)),
            }
        }
        decode_all(&m);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    /// Arbitrary bytes, alone and behind each binary magic.
    #[test]
    fn arbitrary_bytes_never_panic(data in prop::collection::vec(any::<u8>(), 0..600), prefix in 0usize..5) {
        let prefixes: [&[u8]; 5] = [b"", b"APK1", b"AIX1", b"AMP1", b"\x01"];
        let mut input = prefixes[prefix].to_vec();
        input.extend_from_slice(&data);
        decode_all(&input);
    }

    /// Valid objects are accepted whatever their contents (the encoders and decoders agree).
    /// Valid blob entries are within the format's limits: a plaintext of at most
    /// `MAX_BLOB_LEN`, stored in at most its length plus nonce and tag.
    #[test]
    fn encoded_objects_round_trip(
        blobs in prop::collection::vec((0u8..2, 0u8..2, any::<[u8; 32]>(), 0u32..1 << 30, any::<u32>(), 0u32..=format::MAX_BLOB_LEN, any::<Option<(u32, u32)>>()), 0..40),
        zeros in prop::collection::vec(any::<u64>(), 0..20),
    ) {
        // Some entries in frames: a data blob somewhere in a frame of at most MAX_FRAME_LEN.
        let entries: Vec<BlobEntry> = blobs.iter().map(|&(kind, flags, id, offset, stored, raw_len, frame)| match frame {
            None => BlobEntry { kind, flags, id: Id(id), offset, stored_len: stored % (raw_len + 29), raw_len, ..BlobEntry::default() },
            Some((extra, at)) => {
                let raw_len = raw_len % (format::MAX_FRAME_LEN + 1);
                let frame_len = raw_len + extra % (format::MAX_FRAME_LEN - raw_len + 1);
                BlobEntry {
                    kind: format::KIND_DATA, flags: flags | format::FLAG_FRAME, id: Id(id), offset,
                    stored_len: stored % (frame_len + 29), raw_len,
                    frame_offset: at % (frame_len - raw_len + 1), frame_len,
                }
            }
        }).collect();
        let header = PackHeader { created_ms: 1, blobs: entries.clone() };
        prop_assert_eq!(format::decode_pack_header(&format::encode_pack_header(&header)).unwrap(), header);
        let index = IndexFile { created_ms: 2, packs: vec![(Id([1; 32]), entries.clone()), (Id([2; 32]), entries)] };
        prop_assert_eq!(format::decode_index(&format::encode_index(&index)).unwrap(), index);
        let map: Vec<MapEntry> = zeros.iter().enumerate().map(|(i, &z)| if i % 2 == 0 {
            MapEntry::Zero(z)
        } else {
            MapEntry::Data { len: z as u32, id: Id([i as u8; 32]) }
        }).collect();
        prop_assert_eq!(format::decode_map(&format::encode_map(&map)).unwrap(), map);
    }
}
