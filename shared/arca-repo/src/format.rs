//! Encoders and decoders of every repository object (format doc, sections 3–8). Decoders
//! take plaintext bytes and never panic or allocate beyond what the input can justify: they
//! are the fuzz targets' entry points (`fuzz/`).

use std::ops::Range;

use serde::{Deserialize, Serialize};

use crate::error::FormatError;
use crate::id::{ID_LEN, Id};

type Result<T> = std::result::Result<T, FormatError>;

pub const FORMAT_VERSION: u32 = 1;
/// Blob kinds (the first byte of a blob's associated data).
pub const KIND_DATA: u8 = 0;
pub const KIND_MAP: u8 = 1;
/// Blob flag: the payload is a zstd frame.
pub const FLAG_ZSTD: u8 = 1;
/// Largest plaintext a framed object may claim: bounds what a decoder allocates.
pub const MAX_OBJECT_LEN: usize = 256 << 20;

const PACK_MAGIC: &[u8; 4] = b"APK1";
const INDEX_MAGIC: &[u8; 4] = b"AIX1";
const MAP_MAGIC: &[u8; 4] = b"AMP1";
pub const ENTRY_LEN: usize = 2 + ID_LEN + 12;

/// Where a blob is inside its pack.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlobEntry {
    pub kind: u8,
    pub flags: u8,
    pub id: Id,
    pub offset: u32,
    pub stored_len: u32,
    pub raw_len: u32,
}

/// The header at the end of every pack.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PackHeader {
    pub created_ms: u64,
    pub blobs: Vec<BlobEntry>,
}

/// One index file: packs and their blobs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IndexFile {
    pub created_ms: u64,
    pub packs: Vec<(Id, Vec<BlobEntry>)>,
}

/// One entry of a block map.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MapEntry {
    Zero(u64),
    Data { len: u32, id: Id },
}

impl MapEntry {
    pub fn len(&self) -> u64 {
        match self {
            MapEntry::Zero(len) => *len,
            MapEntry::Data { len, .. } => u64::from(*len),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        if self.buf.len() < n {
            return Err(FormatError::new("truncated"));
        }
        let (head, tail) = self.buf.split_at(n);
        self.buf = tail;
        Ok(head)
    }
    fn u8(&mut self) -> Result<u8> {
        Ok(self.take(1)?[0])
    }
    fn u32(&mut self) -> Result<u32> {
        let mut b = [0u8; 4];
        b.copy_from_slice(self.take(4)?);
        Ok(u32::from_le_bytes(b))
    }
    fn u64(&mut self) -> Result<u64> {
        let mut b = [0u8; 8];
        b.copy_from_slice(self.take(8)?);
        Ok(u64::from_le_bytes(b))
    }
    fn id(&mut self) -> Result<Id> {
        let mut b = [0u8; ID_LEN];
        b.copy_from_slice(self.take(ID_LEN)?);
        Ok(Id(b))
    }
    fn magic(&mut self, magic: &[u8; 4], what: &str) -> Result<()> {
        if self.take(4)? != magic {
            return Err(FormatError::new(format!("not a {what} (bad magic)")));
        }
        Ok(())
    }
    /// A count of items of at least `min_item` bytes each, checked against what is left.
    fn count(&mut self, min_item: usize) -> Result<usize> {
        let n = self.u32()? as usize;
        if n.saturating_mul(min_item) > self.buf.len() {
            return Err(FormatError::new(format!("claims {n} items, more than the input holds")));
        }
        Ok(n)
    }
    fn end(&self) -> Result<()> {
        if self.buf.is_empty() {
            Ok(())
        } else {
            Err(FormatError::new("trailing bytes"))
        }
    }
}

fn put_entry(out: &mut Vec<u8>, e: &BlobEntry) {
    out.push(e.kind);
    out.push(e.flags);
    out.extend_from_slice(&e.id.0);
    out.extend_from_slice(&e.offset.to_le_bytes());
    out.extend_from_slice(&e.stored_len.to_le_bytes());
    out.extend_from_slice(&e.raw_len.to_le_bytes());
}

fn read_entry(r: &mut Reader<'_>) -> Result<BlobEntry> {
    let kind = r.u8()?;
    if kind > KIND_MAP {
        return Err(FormatError::new(format!("unknown blob kind {kind}")));
    }
    let flags = r.u8()?;
    if flags & !FLAG_ZSTD != 0 {
        return Err(FormatError::new(format!("unknown blob flags {flags:#x}")));
    }
    let entry = BlobEntry {
        kind,
        flags,
        id: r.id()?,
        offset: r.u32()?,
        stored_len: r.u32()?,
        raw_len: r.u32()?,
    };
    if entry.offset.checked_add(entry.stored_len).is_none() {
        return Err(FormatError::new("blob extends beyond 4 GiB"));
    }
    Ok(entry)
}

pub fn encode_pack_header(h: &PackHeader) -> Vec<u8> {
    let mut out = Vec::with_capacity(16 + h.blobs.len() * ENTRY_LEN);
    out.extend_from_slice(PACK_MAGIC);
    out.extend_from_slice(&h.created_ms.to_le_bytes());
    out.extend_from_slice(&(h.blobs.len() as u32).to_le_bytes());
    for e in &h.blobs {
        put_entry(&mut out, e);
    }
    out
}

pub fn decode_pack_header(bytes: &[u8]) -> Result<PackHeader> {
    let mut r = Reader { buf: bytes };
    r.magic(PACK_MAGIC, "pack header")?;
    let created_ms = r.u64()?;
    let n = r.count(ENTRY_LEN)?;
    let blobs = (0..n).map(|_| read_entry(&mut r)).collect::<Result<Vec<_>>>()?;
    r.end()?;
    Ok(PackHeader { created_ms, blobs })
}

/// The last 4 bytes of a pack of `pack_size` bytes (the u32-le length of its sealed header):
/// the byte range of the sealed header. A length that does not fit the pack is refused.
pub fn decode_pack_trailer(pack_size: u64, tail: &[u8]) -> Result<Range<u64>> {
    let len: [u8; 4] = tail
        .try_into()
        .map_err(|_| FormatError::new("pack trailer is not 4 bytes"))?;
    let len = u64::from(u32::from_le_bytes(len));
    if pack_size < 4 || len > pack_size - 4 {
        return Err(FormatError::new("header length beyond the pack"));
    }
    Ok(pack_size - 4 - len..pack_size - 4)
}

/// Checks a decoded header against its pack: every blob lies within the `body` bytes that
/// precede the sealed header.
pub fn check_pack_bounds(header: &PackHeader, body: u64) -> Result<()> {
    if header
        .blobs
        .iter()
        .any(|b| u64::from(b.offset) + u64::from(b.stored_len) > body)
    {
        return Err(FormatError::new("header points beyond the pack's blobs"));
    }
    Ok(())
}

pub fn encode_index(index: &IndexFile) -> Vec<u8> {
    let blobs: usize = index.packs.iter().map(|(_, b)| b.len()).sum();
    let mut out = Vec::with_capacity(16 + index.packs.len() * 36 + blobs * ENTRY_LEN);
    out.extend_from_slice(INDEX_MAGIC);
    out.extend_from_slice(&index.created_ms.to_le_bytes());
    out.extend_from_slice(&(index.packs.len() as u32).to_le_bytes());
    for (pack, entries) in &index.packs {
        out.extend_from_slice(&pack.0);
        out.extend_from_slice(&(entries.len() as u32).to_le_bytes());
        for e in entries {
            put_entry(&mut out, e);
        }
    }
    out
}

pub fn decode_index(bytes: &[u8]) -> Result<IndexFile> {
    let mut r = Reader { buf: bytes };
    r.magic(INDEX_MAGIC, "index")?;
    let created_ms = r.u64()?;
    let n = r.count(ID_LEN + 4)?;
    let mut packs = Vec::with_capacity(n);
    for _ in 0..n {
        let pack = r.id()?;
        let m = r.count(ENTRY_LEN)?;
        let entries = (0..m).map(|_| read_entry(&mut r)).collect::<Result<Vec<_>>>()?;
        packs.push((pack, entries));
    }
    r.end()?;
    Ok(IndexFile { created_ms, packs })
}

pub fn encode_map(entries: &[MapEntry]) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + entries.len() * (5 + ID_LEN));
    out.extend_from_slice(MAP_MAGIC);
    out.extend_from_slice(&(entries.len() as u32).to_le_bytes());
    for e in entries {
        match e {
            MapEntry::Zero(len) => {
                out.push(0);
                out.extend_from_slice(&len.to_le_bytes());
            }
            MapEntry::Data { len, id } => {
                out.push(1);
                out.extend_from_slice(&len.to_le_bytes());
                out.extend_from_slice(&id.0);
            }
        }
    }
    out
}

pub fn decode_map(bytes: &[u8]) -> Result<Vec<MapEntry>> {
    let mut r = Reader { buf: bytes };
    r.magic(MAP_MAGIC, "block map")?;
    let n = r.count(9)?;
    let mut entries = Vec::with_capacity(n);
    for _ in 0..n {
        entries.push(match r.u8()? {
            0 => MapEntry::Zero(r.u64()?),
            1 => MapEntry::Data {
                len: r.u32()?,
                id: r.id()?,
            },
            tag => return Err(FormatError::new(format!("unknown map entry tag {tag}"))),
        });
    }
    r.end()?;
    Ok(entries)
}

/// Frames an object's plaintext before sealing: `flag ‖ raw_len u32 ‖ payload`.
pub fn frame(payload: &[u8], zstd_level: i32) -> Vec<u8> {
    let compressed = zstd::bulk::compress(payload, zstd_level)
        .ok()
        .filter(|c| c.len() < payload.len());
    let (flag, body) = match &compressed {
        Some(c) => (1u8, c.as_slice()),
        None => (0u8, payload),
    };
    let mut out = Vec::with_capacity(5 + body.len());
    out.push(flag);
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(body);
    out
}

pub fn unframe(bytes: &[u8]) -> Result<Vec<u8>> {
    let mut r = Reader { buf: bytes };
    let flag = r.u8()?;
    let raw_len = r.u32()? as usize;
    if raw_len > MAX_OBJECT_LEN {
        return Err(FormatError::new(format!("claims {raw_len} bytes, above the limit")));
    }
    let body = r.buf;
    match flag {
        0 if body.len() == raw_len => Ok(body.to_vec()),
        0 => Err(FormatError::new("length mismatch")),
        1 => decompress_exact(body, raw_len),
        _ => Err(FormatError::new(format!("unknown frame flag {flag}"))),
    }
}

/// Decompresses a zstd frame that must expand to exactly `raw_len` bytes.
pub fn decompress_exact(body: &[u8], raw_len: usize) -> Result<Vec<u8>> {
    // Our frames record their content size: a frame claiming another size is refused before
    // anything is allocated for it.
    match zstd::zstd_safe::get_frame_content_size(body) {
        Ok(Some(n)) if n != raw_len as u64 => return Err(FormatError::new("zstd frame of another length")),
        Ok(_) => {}
        Err(_) => return Err(FormatError::new("zstd: not a frame")),
    }
    let out = zstd::bulk::decompress(body, raw_len).map_err(|e| FormatError::new(format!("zstd: {e}")))?;
    if out.len() != raw_len {
        return Err(FormatError::new("decompressed length mismatch"));
    }
    Ok(out)
}

/// Chunking parameters of streams.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CdcParams {
    pub min: u32,
    pub avg: u32,
    pub max: u32,
}

/// The repository's parameters (`config`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Config {
    pub version: u32,
    pub repo_id: String,
    pub block_size: u32,
    pub map_segment_blocks: u32,
    pub cdc: CdcParams,
    pub zstd_level: i32,
    pub pack_target: u32,
}

impl Config {
    pub fn new(repo_id: &Id) -> Config {
        Config {
            version: FORMAT_VERSION,
            repo_id: repo_id.to_hex(),
            block_size: 64 << 10,
            map_segment_blocks: 16384,
            cdc: CdcParams {
                min: 16 << 10,
                avg: 64 << 10,
                max: 256 << 10,
            },
            zstd_level: 1,
            pack_target: 16 << 20,
        }
    }

    pub fn validate(&self) -> Result<()> {
        let ok = self.block_size.is_power_of_two()
            && (4096..=4 << 20).contains(&self.block_size)
            && (1..=1 << 20).contains(&self.map_segment_blocks)
            && self.cdc.min >= 64
            && self.cdc.min <= self.cdc.avg
            && self.cdc.avg <= self.cdc.max
            && self.cdc.max <= 16 << 20
            && (1 << 20..=1 << 30).contains(&self.pack_target)
            && (-7..=22).contains(&self.zstd_level);
        if ok {
            Ok(())
        } else {
            Err(FormatError::new("config parameters out of range"))
        }
    }
}

pub fn decode_config(bytes: &[u8]) -> Result<Config> {
    let config: Config = serde_json::from_slice(bytes).map_err(|e| FormatError::new(format!("config: {e}")))?;
    if config.version != FORMAT_VERSION {
        return Err(FormatError::new(format!("unsupported version {}", config.version)));
    }
    config.validate()?;
    Ok(config)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SnapshotKind {
    Volume,
    Stream,
}

/// What a backup did, kept in its manifest.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackupStats {
    /// Bytes of the source the backup read (changed ranges only, when given).
    pub bytes_read: u64,
    pub blocks_total: u64,
    pub blocks_zero: u64,
    /// Blocks whose content was new to the repository.
    pub blocks_new: u64,
    /// Blocks not read at all because the changed ranges excluded them.
    pub blocks_unchanged_skipped: u64,
    /// Plaintext bytes of new blobs and what they took after compression and sealing.
    pub bytes_new: u64,
    pub bytes_stored: u64,
    pub packs_written: u64,
    pub duration_ms: u64,
}

/// A snapshot manifest (`snapshots/<id>`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    pub version: u32,
    pub kind: SnapshotKind,
    pub name: String,
    pub created_ms: u64,
    pub size: u64,
    pub block_size: u32,
    pub map: Vec<String>,
    pub parent: Option<String>,
    #[serde(default)]
    pub hostname: Option<String>,
    #[serde(default)]
    pub stats: BackupStats,
}

impl Snapshot {
    pub fn map_ids(&self) -> Result<Vec<Id>> {
        self.map
            .iter()
            .map(|s| Id::from_hex(s).map_err(|_| FormatError::new(format!("bad map id {s:?}"))))
            .collect()
    }
}

pub fn decode_snapshot(bytes: &[u8]) -> Result<Snapshot> {
    let snap: Snapshot = serde_json::from_slice(bytes).map_err(|e| FormatError::new(format!("snapshot: {e}")))?;
    if snap.version != FORMAT_VERSION {
        return Err(FormatError::new(format!("unsupported version {}", snap.version)));
    }
    snap.map_ids()?;
    Ok(snap)
}

/// A garbage-collection marker (`gc/<id>`): packs condemned at a time.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GcMarker {
    pub version: u32,
    pub created_ms: u64,
    pub packs: Vec<String>,
}

impl GcMarker {
    pub fn pack_ids(&self) -> Result<Vec<Id>> {
        self.packs
            .iter()
            .map(|s| Id::from_hex(s).map_err(|_| FormatError::new(format!("bad pack id {s:?}"))))
            .collect()
    }
}

pub fn decode_gc_marker(bytes: &[u8]) -> Result<GcMarker> {
    let marker: GcMarker = serde_json::from_slice(bytes).map_err(|e| FormatError::new(format!("gc marker: {e}")))?;
    marker.pack_ids()?;
    Ok(marker)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(i: u8) -> BlobEntry {
        BlobEntry {
            kind: i % 2,
            flags: i % 2,
            id: Id([i; 32]),
            offset: u32::from(i) * 100,
            stored_len: 90,
            raw_len: 120,
        }
    }

    #[test]
    fn binary_objects_round_trip() {
        let header = PackHeader {
            created_ms: 7,
            blobs: (0..5).map(entry).collect(),
        };
        assert_eq!(decode_pack_header(&encode_pack_header(&header)).unwrap(), header);
        let index = IndexFile {
            created_ms: 9,
            packs: vec![(Id([1; 32]), vec![entry(1)]), (Id([2; 32]), vec![])],
        };
        assert_eq!(decode_index(&encode_index(&index)).unwrap(), index);
        let map = vec![
            MapEntry::Zero(1 << 40),
            MapEntry::Data {
                len: 65536,
                id: Id([3; 32]),
            },
        ];
        assert_eq!(decode_map(&encode_map(&map)).unwrap(), map);
        let text = b"hello hello hello hello hello hello hello".repeat(10);
        assert_eq!(unframe(&frame(&text, 1)).unwrap(), text);
        assert_eq!(unframe(&frame(b"x", 1)).unwrap(), b"x");
    }

    #[test]
    fn decoders_reject_truncation_lies_and_trailing_bytes() {
        let header = encode_pack_header(&PackHeader {
            created_ms: 7,
            blobs: (0..3).map(entry).collect(),
        });
        for cut in 0..header.len() {
            assert!(decode_pack_header(&header[..cut]).is_err(), "cut at {cut}");
        }
        let mut long = header.clone();
        long.push(0);
        assert!(decode_pack_header(&long).is_err());
        // A count far beyond the input must fail without allocating for it.
        let mut lying = encode_map(&[]);
        lying[4..8].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(decode_map(&lying).is_err());
        let mut huge = vec![1u8];
        huge.extend_from_slice(&u32::MAX.to_le_bytes());
        assert!(unframe(&huge).is_err());
    }

    #[test]
    fn json_objects_check_their_version() {
        let config = Config::new(&Id([5; 32]));
        let mut bytes = serde_json::to_vec(&config).unwrap();
        assert_eq!(decode_config(&bytes).unwrap(), config);
        bytes = String::from_utf8(bytes)
            .unwrap()
            .replace("\"version\":1", "\"version\":2")
            .into_bytes();
        assert!(decode_config(&bytes).is_err());
    }
}

#[cfg(test)]
mod fuzz_smoke {
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

        /// What `fuzz/` runs at length, in miniature: no decoder panics on arbitrary input.
        #[test]
        fn decoders_never_panic(data in prop::collection::vec(any::<u8>(), 0..512), magic in 0usize..4) {
            let mut input = data;
            let prefixes: [&[u8]; 4] = [b"APK1", b"AIX1", b"AMP1", b"\x01"];
            let mut prefixed = prefixes[magic].to_vec();
            prefixed.extend_from_slice(&input);
            for bytes in [&input[..], &prefixed[..]] {
                let _ = super::decode_pack_header(bytes);
                let _ = super::decode_index(bytes);
                let _ = super::decode_map(bytes);
                let _ = super::unframe(bytes);
                let _ = super::decode_config(bytes);
                let _ = super::decode_snapshot(bytes);
                let _ = super::decode_gc_marker(bytes);
                let _ = crate::keys::decode_key_file(bytes);
            }
            input.clear();
            prop_assert!(input.is_empty());
        }
    }
}
