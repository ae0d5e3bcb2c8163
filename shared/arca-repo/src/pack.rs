//! Building packs from sealed blobs and uploading them (format doc, sections 4 and 7).

use bytes::Bytes;
use std::ops::Range;
use tokio::task::JoinSet;

use crate::crypto::{Keys, blob_aad, frame_aad, repo_object_aad};
use crate::error::{RepoError, Result};
use crate::format::{self, BlobEntry, FLAG_FRAME, FLAG_ZSTD, KIND_DATA, MAX_PACK_BLOBS, PackHeader};
use crate::id::Id;
use crate::repo::{Repository, key_for, now_ms};
use arca_core::model::layout::RepositoryLayout;

/// What is sealed at one place of a pack, compressed (or not), ready to be appended: one
/// blob, or a frame of blobs (format version 3).
pub struct SealedBlob {
    pub data: Vec<u8>,
    /// One entry per blob it holds; the packer fills in `offset` and `stored_len`.
    pub entries: Vec<BlobEntry>,
}

/// A sealed unit of the pack at `key` (one of `format::sealed_units`) as it is stored, to be
/// appended to another pack unopened; `doing` names the work in an error ("repacking").
pub(crate) async fn read_sealed(repo: &Repository, key: &str, unit: &[BlobEntry], doing: &str) -> Result<SealedBlob> {
    let Some(e) = unit.first() else {
        return Err(RepoError::Internal(format!("{doing} {key}: an empty unit")));
    };
    let start = u64::from(e.offset);
    let data = repo
        .store()
        .get_range(key, start..start + u64::from(e.stored_len))
        .await
        .map_err(|err| RepoError::store(format!("{doing} {key}"), err))?
        .to_vec();
    Ok(SealedBlob {
        data,
        entries: unit.to_vec(),
    })
}

const PROBE: usize = 4096;

/// Compresses `plain` when that saves at least 1/32 of it, then seals it. `scratch` is a
/// reusable compression buffer; `compressor` a reusable zstd context (per worker thread).
pub fn seal_blob(
    keys: &Keys,
    compressor: &mut zstd::bulk::Compressor<'_>,
    scratch: &mut Vec<u8>,
    kind: u8,
    id: Id,
    plain: &[u8],
) -> Result<SealedBlob> {
    // Blocks are probed first (`compressible`): when neither piece compresses, the block is
    // stored raw without compressing it whole.
    let compressed = compressible(plain) && {
        scratch.clear();
        scratch.reserve(zstd::zstd_safe::compress_bound(plain.len()));
        compressor.compress_to_buffer(plain, scratch).is_ok() && scratch.len() < plain.len() - plain.len() / 32
    };
    if !compressed {
        return seal_uncompressed(keys, kind, id, plain);
    }
    sealed_single(keys, kind, FLAG_ZSTD, id, scratch, plain.len())
}

/// Seals a blob as it is (a block the probe found incompressible).
pub fn seal_uncompressed(keys: &Keys, kind: u8, id: Id, plain: &[u8]) -> Result<SealedBlob> {
    sealed_single(keys, kind, 0, id, plain, plain.len())
}

fn sealed_single(keys: &Keys, kind: u8, flags: u8, id: Id, payload: &[u8], raw_len: usize) -> Result<SealedBlob> {
    let data = keys.sealer().seal(&blob_aad(kind, &id), payload)?;
    Ok(SealedBlob {
        data,
        entries: vec![BlobEntry {
            kind,
            flags,
            id,
            raw_len: raw_len as u32,
            ..BlobEntry::default()
        }],
    })
}

/// Whether a block is worth compressing: false when a piece at its start and one at its
/// middle (4 KiB each, a quarter of a smaller block) both look random, their bytes'
/// entropy within [`RANDOM_MARGIN`] of what random bytes measure in a piece that long.
/// zstd spends as long failing on random data as compressing text, and a frame of text is
/// better without random blocks in it. A byte histogram costs a fraction of the zstd
/// attempt on the piece this probe once was (about 4% of a first backup's CPU on text,
/// measured with perf), and zstd's Huffman literals cannot save 1/32 of data whose order-0
/// entropy is that high, short of long repeats, which a 4 KiB piece does not show either.
pub fn compressible(plain: &[u8]) -> bool {
    let piece = PROBE.min(plain.len() / 4);
    if piece < 256 {
        return true;
    }
    let random = random_bits(piece) - RANDOM_MARGIN;
    [0, plain.len() / 2]
        .iter()
        .any(|&at| entropy_bits(&plain[at..at + piece]) < random)
}

/// How far under random bytes' entropy a piece must measure to be tried: random pieces
/// spread by about 0.02 bits around [`random_bits`], and data zstd shrinks by 1/32 measures
/// under 7.75 bits.
const RANDOM_MARGIN: f64 = 0.15;

/// The order-0 entropy random bytes measure in a piece of `n` bytes: a sample reads low by
/// about 255 / (2 n ln 2) bits (7.96 at 4 KiB, 7.82 at 1 KiB).
fn random_bits(n: usize) -> f64 {
    8.0 - 255.0 / (2.0 * n as f64 * std::f64::consts::LN_2)
}

/// Order-0 entropy of `bytes` in bits per byte.
fn entropy_bits(bytes: &[u8]) -> f64 {
    let mut counts = [0u32; 256];
    for &b in bytes {
        counts[usize::from(b)] += 1;
    }
    let n = bytes.len() as f64;
    -counts
        .iter()
        .filter(|&&c| c > 0)
        .map(|&c| {
            let p = f64::from(c) / n;
            p * p.log2()
        })
        .sum::<f64>()
}

/// Compresses data blocks together as one frame (format version 3) and seals it: `blocks`
/// are the blocks' ids and byte ranges in `source`. A frame of adjacent ranges (the usual
/// case: consecutive new blocks of a read) is compressed where it lies; others are gathered
/// into `plain`, a reusable buffer, first. Stored raw when compression does not save 1/32.
pub fn seal_frame(
    keys: &Keys,
    compressor: &mut zstd::bulk::Compressor<'_>,
    scratch: &mut Vec<u8>,
    plain: &mut Vec<u8>,
    source: &[u8],
    blocks: &[(Id, Range<usize>)],
) -> Result<SealedBlob> {
    let mut entries = Vec::with_capacity(blocks.len());
    let mut frame_offset = 0usize;
    for (id, range) in blocks {
        entries.push(BlobEntry {
            kind: KIND_DATA,
            flags: FLAG_FRAME,
            id: *id,
            raw_len: range.len() as u32,
            frame_offset: frame_offset as u32,
            ..BlobEntry::default()
        });
        frame_offset += range.len();
    }
    let adjacent = blocks.windows(2).all(|w| w[0].1.end == w[1].1.start);
    let plain: &[u8] = match (blocks.first(), blocks.last()) {
        (Some(first), Some(last)) if adjacent => &source[first.1.start..last.1.end],
        _ => {
            plain.clear();
            for (_, range) in blocks {
                plain.extend_from_slice(&source[range.clone()]);
            }
            plain
        }
    };
    let frame_len = u32::try_from(plain.len())
        .ok()
        .filter(|&n| n <= format::MAX_FRAME_LEN)
        .ok_or_else(|| RepoError::Internal(format!("a frame of {} bytes", plain.len())))?;
    scratch.clear();
    scratch.reserve(zstd::zstd_safe::compress_bound(plain.len()));
    let compressed =
        compressor.compress_to_buffer(plain, scratch).is_ok() && scratch.len() < plain.len() - plain.len() / 32;
    let payload = if compressed { scratch.as_slice() } else { plain };
    for e in &mut entries {
        e.frame_len = frame_len;
        if compressed {
            e.flags |= FLAG_ZSTD;
        }
    }
    let data = keys.sealer().seal(&frame_aad(frame_len), payload)?;
    Ok(SealedBlob { data, entries })
}

struct Uploaded {
    id: Id,
    entries: Vec<BlobEntry>,
    buf: Option<Vec<u8>>,
}

/// Pack uploads in flight at once while the next pack fills. One at a time makes the backup
/// wait out each PUT's latency; a few overlap them. The packer holds at most
/// this many packs plus the one being built: (3 + 1) x (pack_target + 1/8) = 72 MiB at the
/// default 16 MiB packs, whatever the volume's size.
pub const UPLOADS_IN_FLIGHT: usize = 3;

/// Uploaded packs between two index checkpoints. A backup killed midway leaves its uploads
/// indexed up to the last checkpoint (the next backup's dedup finds them through the index);
/// the few packs after it are adopted from their headers (`Repository::load_index`).
pub const INDEX_EVERY: usize = 8;

/// Appends blobs to packs, uploads full packs (a bounded number at a time), and writes an
/// index file (a checkpoint) every `index_every` packs and at `finish`.
pub struct Packer {
    repo: Repository,
    buf: Vec<u8>,
    entries: Vec<BlobEntry>,
    uploads: JoinSet<Result<Uploaded>>,
    max_uploads: usize,
    /// Pack buffers back from finished uploads, reused for the next packs: a fresh 16 MiB
    /// buffer per pack makes glibc raise its mmap threshold and keep freed packs in
    /// per-thread arenas (2 GiB backup: 137 MB peak RSS before, 59 MB for the pipeline with
    /// reused buffers and a local-fs store that no longer copies the body).
    free: Vec<Vec<u8>>,
    uploaded: Vec<(Id, Vec<BlobEntry>)>,
    index_every: usize,
    /// Every pack this packer wrote (ids only: the blob lists are in the index files, and
    /// keeping them here would grow with the volume).
    pub written: Vec<Id>,
    pub bytes_stored: u64,
}

impl Packer {
    pub fn new(repo: &Repository) -> Packer {
        Packer {
            repo: repo.clone(),
            buf: Vec::new(),
            entries: Vec::new(),
            uploads: JoinSet::new(),
            max_uploads: UPLOADS_IN_FLIGHT,
            free: Vec::new(),
            uploaded: Vec::new(),
            index_every: INDEX_EVERY,
            written: Vec::new(),
            bytes_stored: 0,
        }
    }

    /// At most `n` (at least 1) pack uploads in flight.
    pub fn with_uploads(mut self, n: usize) -> Packer {
        self.max_uploads = n.max(1);
        self
    }

    pub async fn add(&mut self, blob: SealedBlob) -> Result<()> {
        let target = self.repo.config().pack_target as usize;
        // A frame's entries go into one pack: one that would pass the count closes it first.
        if self.entries.len() + blob.entries.len() > MAX_PACK_BLOBS {
            self.seal_pack().await?;
        }
        if self.buf.capacity() == 0 {
            self.buf = self.free.pop().unwrap_or_default();
            self.buf.clear();
            self.buf.reserve(target + target / 8);
        }
        let (offset, stored_len) = (self.buf.len() as u32, blob.data.len() as u32);
        self.entries.extend(blob.entries.into_iter().map(|e| BlobEntry {
            offset,
            stored_len,
            ..e
        }));
        self.buf.extend_from_slice(&blob.data);
        self.bytes_stored += blob.data.len() as u64;
        // Readers refuse a header of more blobs (`format::MAX_PACK_BLOBS`): tiny stream
        // chunks close a pack by count before it reaches its size.
        if self.buf.len() >= target || self.entries.len() >= MAX_PACK_BLOBS {
            self.seal_pack().await?;
        }
        Ok(())
    }

    /// Closes the current pack and starts its upload, first waiting for a slot so that at
    /// most `max_uploads` packs are in memory besides the one being built.
    async fn seal_pack(&mut self) -> Result<()> {
        if self.entries.is_empty() {
            return Ok(());
        }
        while self.uploads.len() >= self.max_uploads {
            self.reap_one().await?;
        }
        let entries = std::mem::take(&mut self.entries);
        let mut buf = std::mem::take(&mut self.buf);
        let header = format::encode_pack_header(&PackHeader {
            created_ms: now_ms(),
            blobs: entries.clone(),
        });
        let id = Id::random()?;
        let key = key_for(RepositoryLayout::pack, &id)?;
        // Bound to the pack's key: a header copied into another pack does not authenticate.
        let sealed = self.repo.keys().sealer().seal(&repo_object_aad(&key), &header)?;
        buf.extend_from_slice(&sealed);
        buf.extend_from_slice(&(sealed.len() as u32).to_le_bytes());
        let store = self.repo.store().clone();
        self.uploads.spawn(async move {
            let body = Bytes::from(buf);
            store
                .put(&key, body.clone())
                .await
                .map_err(|e| RepoError::store(format!("uploading {key}"), e))?;
            // The store is done with the body: take the buffer back if nothing else holds it.
            let buf = body.try_into_mut().ok().map(Vec::from);
            Ok(Uploaded { id, entries, buf })
        });
        Ok(())
    }

    async fn reap_one(&mut self) -> Result<()> {
        let Some(done) = self.uploads.join_next().await else {
            return Ok(());
        };
        let Uploaded { id, entries, buf } = done.map_err(|e| RepoError::Internal(format!("upload task: {e}")))??;
        if let Some(buf) = buf
            && self.free.len() <= self.max_uploads
        {
            self.free.push(buf);
        }
        self.written.push(id);
        self.uploaded.push((id, entries));
        if self.uploaded.len() >= self.index_every {
            let packs = std::mem::take(&mut self.uploaded);
            self.repo.write_index(packs).await?;
        }
        Ok(())
    }

    /// Uploads what is left and indexes every uploaded pack. After this returns, every
    /// blob added is durable and findable through the index.
    pub async fn finish(&mut self) -> Result<()> {
        self.seal_pack().await?;
        while !self.uploads.is_empty() {
            self.reap_one().await?;
        }
        if !self.uploaded.is_empty() {
            let packs = std::mem::take(&mut self.uploaded);
            self.repo.write_index(packs).await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::MasterKey;
    use crate::repo::{BlobScratch, open_blob, open_blob_in_place};

    fn text(seed: u64, len: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(len);
        let mut n = seed;
        while out.len() < len {
            n = n.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            out.extend_from_slice(
                format!(
                    "{{\"ts\":{},\"msg\":\"served {} in {} ms\"}}\n",
                    n >> 40,
                    n % 97,
                    n % 13
                )
                .as_bytes(),
            );
        }
        out.truncate(len);
        out
    }

    /// A frame of three blocks, placed as the packer places it (offset 0).
    fn sealed_frame(keys: &Keys, blocks: &[Vec<u8>]) -> SealedBlob {
        let mut compressor = zstd::bulk::Compressor::new(3).unwrap();
        let (mut scratch, mut plain) = (Vec::new(), Vec::new());
        // The blocks with a gap between each two: the frame is gathered, not taken in place.
        let (mut source, mut members) = (Vec::new(), Vec::new());
        for b in blocks {
            source.extend_from_slice(b"gap");
            members.push((keys.blob_id(b), source.len()..source.len() + b.len()));
            source.extend_from_slice(b);
        }
        let mut frame = seal_frame(keys, &mut compressor, &mut scratch, &mut plain, &source, &members).unwrap();
        // Without the gaps, in place: the same frame.
        let adjacent: Vec<u8> = blocks.concat();
        let mut at = 0;
        let members: Vec<_> = blocks
            .iter()
            .map(|b| {
                at += b.len();
                (keys.blob_id(b), at - b.len()..at)
            })
            .collect();
        let in_place = seal_frame(keys, &mut compressor, &mut scratch, &mut plain, &adjacent, &members).unwrap();
        assert_eq!(in_place.entries, frame.entries);
        assert_eq!(
            keys.sealer()
                .open(&frame_aad(frame.entries[0].frame_len), &in_place.data)
                .unwrap(),
            keys.sealer()
                .open(&frame_aad(frame.entries[0].frame_len), &frame.data)
                .unwrap()
        );
        let stored_len = frame.data.len() as u32;
        for e in &mut frame.entries {
            e.stored_len = stored_len;
        }
        frame
    }

    #[test]
    fn a_frame_opens_each_of_its_blobs_once_decrypted() {
        let keys = Keys::derive(&MasterKey::generate().unwrap()).unwrap();
        let blocks: Vec<Vec<u8>> = (0..3).map(|i| text(i, 8192)).collect();
        let frame = sealed_frame(&keys, &blocks);
        assert_eq!(frame.entries.len(), 3);
        assert!(
            frame
                .entries
                .iter()
                .all(|e| e.in_frame() && e.flags & FLAG_ZSTD != 0 && e.frame_len == 3 * 8192)
        );
        assert!(
            frame.data.len() < 3 * 8192 / 2,
            "text compresses: {} bytes",
            frame.data.len()
        );
        // Alone, each blob opens from the sealed frame.
        for (e, block) in frame.entries.iter().zip(&blocks) {
            assert_eq!(&open_blob(&keys, e, &frame.data).unwrap(), block);
        }
        // In place and in a row, as restore reads them: the first call decrypts the range,
        // the next ones find the frame in the scratch (the range is plaintext by then).
        let mut range = frame.data.clone();
        let mut scratch = BlobScratch::new().unwrap();
        for (e, block) in frame.entries.iter().zip(&blocks) {
            assert_eq!(
                open_blob_in_place(&keys, e, &mut range, &mut scratch).unwrap(),
                block.as_slice()
            );
        }
    }

    #[test]
    fn a_blob_claimed_at_another_place_of_its_frame_or_another_length_is_refused() {
        let keys = Keys::derive(&MasterKey::generate().unwrap()).unwrap();
        let blocks: Vec<Vec<u8>> = (0..3).map(|i| text(i, 8192)).collect();
        let frame = sealed_frame(&keys, &blocks);
        // The entry of block 0 pointing at block 1's bytes: its keyed hash does not match.
        let moved = BlobEntry {
            frame_offset: 8192,
            ..frame.entries[0]
        };
        assert_eq!(
            open_blob(&keys, &moved, &frame.data).unwrap_err(),
            "content does not match its id"
        );
        // A frame length other than the sealed one fails authentication (the seal binds it).
        let longer = BlobEntry {
            frame_len: 4 * 8192,
            ..frame.entries[0]
        };
        assert!(
            open_blob(&keys, &longer, &frame.data)
                .unwrap_err()
                .contains("authentication")
        );
        // Another repository's key opens nothing.
        let other = Keys::derive(&MasterKey::generate().unwrap()).unwrap();
        assert!(open_blob(&other, &frame.entries[0], &frame.data).is_err());
    }

    fn random(seed: u64, len: usize) -> Vec<u8> {
        // xorshift64*: no pattern zstd finds
        let mut x = seed | 1;
        (0..len)
            .map(|_| {
                x ^= x >> 12;
                x ^= x << 25;
                x ^= x >> 27;
                (x.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 56) as u8
            })
            .collect()
    }

    #[test]
    fn the_probe_tells_random_blocks_from_compressible_ones() {
        let block = 64 * 1024;
        assert!(!compressible(&random(1, block)), "random bytes");
        assert!(compressible(&text(1, block)), "log lines");
        assert!(compressible(&vec![0x5a; block]), "one byte repeated");
        // Hex of random bytes: high-entropy source, 4 bits per byte stored.
        let hex: Vec<u8> = random(2, block / 2)
            .iter()
            .flat_map(|b| format!("{b:02x}").into_bytes())
            .collect();
        assert!(compressible(&hex), "hex text");
        // Either piece compressible is enough: random first half, text second half.
        let mut mixed = random(3, block / 2);
        mixed.extend(text(3, block / 2));
        assert!(compressible(&mixed), "text in the middle");
        // What the probe calls random, zstd cannot shrink by 1/32 either.
        let r = random(4, block);
        assert!(zstd::bulk::compress(&r, 3).unwrap().len() >= r.len() - r.len() / 32);
        // 4 KiB blocks are probed by 1 KiB pieces, whose entropy reads lower.
        for seed in 10..60 {
            assert!(!compressible(&random(seed, 4096)), "random 4 KiB block {seed}");
        }
        assert!(compressible(&text(6, 4096)));
        // Small blocks are always tried.
        assert!(compressible(&random(5, 512)));
    }

    #[test]
    fn an_incompressible_frame_is_stored_raw() {
        let keys = Keys::derive(&MasterKey::generate().unwrap()).unwrap();
        let blocks: Vec<Vec<u8>> = (0..2).map(|i| random(i + 7, 8192)).collect();
        let frame = sealed_frame(&keys, &blocks);
        assert!(frame.entries.iter().all(|e| e.in_frame() && e.flags & FLAG_ZSTD == 0));
        for (e, block) in frame.entries.iter().zip(&blocks) {
            assert_eq!(&open_blob(&keys, e, &frame.data).unwrap(), block);
        }
    }
}
