//! Where a backup's resources are stored: a small trait, and its implementation on any
//! [`ObjectStore`] (layout in docs/resource-archive.md).
//!
//! Objects are content-addressed by a keyed BLAKE3 hash of their JSON, each compressed
//! with zstd and sealed with AES-256-GCM through `arca_repo::crypto` (keys derived from a
//! 32-byte key passed in; the repository crate will take key management over), and
//! appended to pack files of a few MiB: a backup of 10,000 objects writes a couple of
//! files, not 10,000. Pack indexes say which object is where; an object unchanged since an
//! earlier backup is found there and not written again. Each archive has an index split
//! per namespace whose entries point into the packs (pack, offset, length), so a restore
//! of one namespace or one kind reads that shard and the byte ranges of those objects only.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::ops::Range;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use arca_core::model::layout::ArchiveLayout;
use arca_core::ports::ObjectStore;
use arca_repo::crypto::{Keys, MasterKey, object_aad};
use arca_repo::id::{Id, IdMap};
use async_trait::async_trait;
use bytes::Bytes;
use futures::FutureExt;
use futures::future::{BoxFuture, Shared};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{Error, ResourceType, Result, Selection, Skipped};

mod gc;
pub use gc::CollectReport;

/// One object of an archive, as its index lists it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IndexEntry {
    pub resource: ResourceType,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    pub name: String,
    /// The object's uid in the source cluster: restore relinks ownerReferences with it.
    #[serde(default)]
    pub uid: String,
    /// Content id (hex): keyed hash of the object's JSON, bound to its sealed bytes.
    pub id: String,
    /// The pack holding the object (format 2); `None` in format 1 archives, whose objects
    /// are files of their own (`objects/<id[0..2]>/<id>`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pack: Option<String>,
    /// Where the sealed object starts in its pack, and its length.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub offset: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub len: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// A PVC the backup selected: the list the volume snapshot step works from.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PvcRef {
    pub namespace: String,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volume_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_class: Option<String>,
}

/// One shard of an archive's index: the objects of one namespace, or the cluster-scoped ones.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ShardRef {
    /// `None`: cluster-scoped objects.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    pub key: String,
    pub entries: usize,
    /// `plural.group` of the types present, so a restore of one kind skips other shards.
    pub resources: BTreeSet<String>,
}

/// What a backup says about itself, written last: an archive without one is incomplete.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    pub format: u32,
    pub archive_id: String,
    pub created_at: String,
    pub selection: Selection,
    pub objects: usize,
    /// Objects whose content was not in the store yet (the rest cost nothing).
    pub new_objects: usize,
    pub new_bytes: u64,
    pub skipped: Vec<Skipped>,
    pub pvcs: Vec<PvcRef>,
    /// CSI drivers of the archived PVs: a restore's precheck looks for them in the target.
    pub csi_drivers: BTreeSet<String>,
    pub shards: Vec<ShardRef>,
}

/// Which part of an archive to read.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReadFilter {
    /// Namespaces to read; `None`: all.
    pub namespaces: Option<BTreeSet<String>>,
    pub cluster_scoped: bool,
    /// `plural.group` of the types to read; `None`: all.
    pub resources: Option<BTreeSet<String>>,
}

impl ReadFilter {
    pub fn everything() -> Self {
        ReadFilter {
            namespaces: None,
            cluster_scoped: true,
            resources: None,
        }
    }

    fn wants_shard(&self, shard: &ShardRef) -> bool {
        let place = match &shard.namespace {
            None => self.cluster_scoped,
            Some(ns) => self.namespaces.as_ref().is_none_or(|set| set.contains(ns)),
        };
        place
            && self
                .resources
                .as_ref()
                .is_none_or(|set| shard.resources.iter().any(|r| set.contains(r)))
    }

    fn wants(&self, entry: &IndexEntry) -> bool {
        self.resources
            .as_ref()
            .is_none_or(|set| set.contains(&entry.resource.group_resource()))
    }
}

/// A store of resource archives.
#[async_trait]
pub trait ResourceArchive: Send + Sync {
    /// Starts a new archive.
    async fn begin(&self) -> Result<Box<dyn ArchiveWriter>>;
    /// Opens a finished archive.
    async fn open(&self, archive_id: &str) -> Result<Box<dyn ArchiveReader>>;
}

/// An archive being written. `put_object` may be called concurrently; `finish` after every
/// `put_object` has returned.
#[async_trait]
pub trait ArchiveWriter: Send + Sync {
    fn archive_id(&self) -> &str;
    /// Stores one object (its JSON bytes) and indexes it; true when its content was new.
    async fn put_object(&self, entry: NewEntry, json: Vec<u8>) -> Result<bool>;
    /// Writes the index and the manifest (filling in counts, shards and ids); returns the
    /// finished manifest.
    async fn finish(&self, manifest: Manifest) -> Result<Manifest>;
}

/// An object as given to [`ArchiveWriter::put_object`].
#[derive(Clone, Debug)]
pub struct NewEntry {
    pub resource: ResourceType,
    pub namespace: Option<String>,
    pub name: String,
    pub uid: String,
}

#[async_trait]
pub trait ArchiveReader: Send + Sync {
    fn manifest(&self) -> &Manifest;
    /// The index entries the filter asks for, reading only the shards it needs.
    async fn entries(&self, filter: &ReadFilter) -> Result<Vec<IndexEntry>>;
    async fn object(&self, entry: &IndexEntry) -> Result<Value>;
}

/// Format 2: objects in packs. Format 1 (one file per object) is still read.
const FORMAT: u32 = 2;
const READABLE_FORMATS: [u32; 2] = [1, 2];
/// zstd level 1: on small JSON objects as good as level 3 within a few percent, at about
/// half the CPU (docs/repository-format.md, section 3).
const ZSTD_LEVEL: i32 = 1;
/// A pack is uploaded once it holds this much.
const PACK_TARGET: usize = 8 << 20;
/// Once this many pack indexes exist, a backup merges them into its own and deletes them,
/// so that starting a backup stays a handful of reads.
const MERGE_PACK_INDEXES_AT: usize = 16;
/// A decompressed object, index or manifest larger than this is refused (hostile input).
const MAX_PLAIN: u64 = 256 << 20;
/// Reading: objects of one pack closer than this are fetched with one ranged read ...
const SPAN_GAP: u64 = 64 << 10;
/// ... of at most this many bytes ...
const SPAN_MAX: u64 = 1 << 20;
/// ... and fetched spans are kept up to this many bytes.
const SPAN_CACHE: u64 = 32 << 20;
const PACK_INDEX_MAGIC: &[u8; 4] = b"ARP1";
/// Longest time allowed between the final check against gc and the manifest write; gc's
/// grace period must be longer.
const FINAL_CHECK_LIMIT: std::time::Duration = std::time::Duration::from_secs(600);
/// Object id, pack number, offset, length.
const PACK_INDEX_ENTRY: usize = 32 + 4 + 4 + 4;

/// [`ResourceArchive`] on an [`ObjectStore`], under `prefix`.
#[derive(Clone)]
pub struct ObjectStoreArchive {
    inner: Arc<Inner>,
}

struct Inner {
    store: Arc<dyn ObjectStore>,
    layout: ArchiveLayout,
    keys: Keys,
    pack_target: usize,
    /// An immutable destination's date (S3 Object Lock): the store writes new objects
    /// retained until it, and a backup extends the packs it reuses to it.
    retain_until: Option<chrono::DateTime<chrono::Utc>>,
}

impl ObjectStoreArchive {
    /// `key`: 32 secret bytes of the backup repository. The archive derives its own keys
    /// from it, so its ids and ciphertexts never coincide with the data path's.
    pub fn new(store: Arc<dyn ObjectStore>, prefix: &str, key: &[u8; 32]) -> Result<Self> {
        let derived = blake3::derive_key("arca resource archive v1", key);
        let master = MasterKey::from_bytes(&derived).ok_or_else(|| Error::Format("archive key length".into()))?;
        let keys = Keys::derive(&master).map_err(|e| Error::Format(format!("deriving archive keys: {e}")))?;
        Ok(ObjectStoreArchive {
            inner: Arc::new(Inner {
                store,
                layout: ArchiveLayout::new(prefix),
                keys,
                pack_target: PACK_TARGET,
                retain_until: None,
            }),
        })
    }

    /// Backups into it retain every pack they reference until `until` (the job's
    /// `ObjectLockWrite`); the store must write with the same lock.
    pub fn with_retention(mut self, until: Option<chrono::DateTime<chrono::Utc>>) -> Self {
        if let Some(inner) = Arc::get_mut(&mut self.inner) {
            inner.retain_until = until;
        }
        self
    }

    /// Smaller packs, to test what happens at a pack boundary without megabytes of data.
    #[cfg(test)]
    fn with_pack_target(mut self, bytes: usize) -> Self {
        if let Some(inner) = Arc::get_mut(&mut self.inner) {
            inner.pack_target = bytes;
        }
        self
    }
}

thread_local! {
    /// zstd contexts are costly to set up (hundreds of KiB); one per thread is reused.
    static COMPRESSOR: std::cell::RefCell<Option<zstd::bulk::Compressor<'static>>> =
        const { std::cell::RefCell::new(None) };
    static DECOMPRESSOR: std::cell::RefCell<Option<zstd::bulk::Decompressor<'static>>> =
        const { std::cell::RefCell::new(None) };
}

fn compress(plain: &[u8]) -> Result<Vec<u8>> {
    let zstd_error = |e: std::io::Error| Error::Format(format!("zstd: {e}"));
    COMPRESSOR.with(|cell| {
        let mut slot = cell.borrow_mut();
        let compressor = match slot.as_mut() {
            Some(c) => c,
            None => slot.insert(zstd::bulk::Compressor::new(ZSTD_LEVEL).map_err(zstd_error)?),
        };
        compressor.compress(plain).map_err(zstd_error)
    })
}

fn decompress(frame: &[u8]) -> std::io::Result<Vec<u8>> {
    match zstd::zstd_safe::get_frame_content_size(frame) {
        Ok(Some(size)) if size <= MAX_PLAIN => DECOMPRESSOR.with(|cell| {
            let mut slot = cell.borrow_mut();
            let decompressor = match slot.as_mut() {
                Some(d) => d,
                None => slot.insert(zstd::bulk::Decompressor::new()?),
            };
            // `size` is at most MAX_PLAIN, which fits a usize on every supported target.
            decompressor.decompress(frame, usize::try_from(size).unwrap_or(0))
        }),
        Ok(Some(size)) => Err(std::io::Error::other(format!("{size} bytes decompressed is too large"))),
        // Streaming frames (format 1 files) do not say their size.
        _ => {
            let mut out = Vec::new();
            let mut decoder = zstd::stream::read::Decoder::new(frame)?;
            std::io::copy(&mut std::io::Read::take(&mut decoder, MAX_PLAIN + 1), &mut out)?;
            if out.len() as u64 > MAX_PLAIN {
                return Err(std::io::Error::other("decompressed object too large"));
            }
            Ok(out)
        }
    }
}

fn valid_file_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 64 && id.bytes().all(|b| b.is_ascii_alphanumeric())
}

fn new_file_id() -> String {
    ulid::Ulid::new().to_string().to_lowercase()
}

impl Inner {
    /// The packs the store holds now, with their sizes.
    async fn existing_packs(&self) -> Result<HashMap<String, u64>> {
        let prefix = self.layout.packs();
        Ok(self
            .store
            .list(&prefix)
            .await?
            .into_iter()
            .filter_map(|meta| {
                let name = meta.key.strip_prefix(&prefix)?;
                valid_file_id(name).then(|| (name.to_string(), meta.size))
            })
            .collect())
    }

    fn seal(&self, aad: &str, plain: &[u8]) -> Result<Vec<u8>> {
        let compressed = compress(plain)?;
        self.keys
            .sealer()
            .seal(&object_aad(aad), &compressed)
            .map_err(|e| Error::Format(format!("sealing: {e}")))
    }

    fn open(&self, aad: &str, sealed: &[u8]) -> Result<Vec<u8>> {
        let compressed = self
            .keys
            .sealer()
            .open(&object_aad(aad), sealed)
            .map_err(|e| Error::Format(format!("{aad}: {e}")))?;
        decompress(&compressed).map_err(|e| Error::Format(format!("{aad}: zstd: {e}")))
    }

    async fn get_sealed_json<T: for<'de> Deserialize<'de>>(&self, key: &str, aad: &str) -> Result<T> {
        let sealed = self.store.get(key).await?;
        Ok(serde_json::from_slice(&self.open(aad, &sealed)?)?)
    }

    /// Every pack index in the store: where each stored object is. An index that vanished
    /// since the listing (merged away by a concurrent backup) is passed over: its entries
    /// are in the index that replaced it, or at worst are written again.
    async fn load_pack_indexes(&self) -> Result<Known> {
        let mut known = Known::default();
        for meta in self.store.list(&self.layout.pack_indexes()).await? {
            let Some(index_id) = meta.key.rsplit('/').next().filter(|id| valid_file_id(id)) else {
                continue;
            };
            let sealed = match self.store.get(&meta.key).await {
                Ok(body) => body,
                Err(arca_core::Error::NotFound { .. }) => continue,
                Err(e) => return Err(e.into()),
            };
            let plain = self.open(&format!("resource-pack-index/{index_id}"), &sealed)?;
            known
                .read_pack_index(&plain)
                .map_err(|e| Error::Format(format!("{}: {e}", meta.key)))?;
            known.indexes.push(meta.key);
        }
        Ok(known)
    }
}

/// Where one stored object is: pack number (in [`Known::packs`]), offset, length.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Loc {
    pack: u32,
    offset: u32,
    len: u32,
}

/// The objects the store holds, from its pack indexes plus what this backup wrote.
#[derive(Default)]
struct Known {
    packs: Vec<String>,
    pack_numbers: HashMap<String, u32>,
    objects: IdMap<Loc>,
    /// The pack index files read.
    indexes: Vec<String>,
}

impl Known {
    /// Drops what lies in `packs` (condemned by gc): a backup never reuses it.
    fn forget_packs(&mut self, packs: &std::collections::HashSet<String>) {
        if packs.is_empty() {
            return;
        }
        let numbers: std::collections::HashSet<u32> =
            packs.iter().filter_map(|p| self.pack_numbers.get(p).copied()).collect();
        self.objects.retain(|_, loc| !numbers.contains(&loc.pack));
    }

    fn pack_number(&mut self, pack: &str) -> u32 {
        if let Some(n) = self.pack_numbers.get(pack) {
            return *n;
        }
        let n = u32::try_from(self.packs.len()).unwrap_or(u32::MAX);
        self.packs.push(pack.to_string());
        self.pack_numbers.insert(pack.to_string(), n);
        n
    }

    /// `"ARP1" ‖ pack count u32 ‖ (len u8 ‖ pack id)* ‖ entry count u32 ‖
    /// (object id [32] ‖ pack u32 ‖ offset u32 ‖ len u32)*`, little-endian.
    fn read_pack_index(&mut self, bytes: &[u8]) -> std::result::Result<(), String> {
        let mut r = bytes
            .strip_prefix(PACK_INDEX_MAGIC.as_slice())
            .ok_or("not a pack index")?;
        let mut take = |n: usize| -> std::result::Result<&[u8], String> {
            if r.len() < n {
                return Err("truncated pack index".into());
            }
            let (head, tail) = r.split_at(n);
            r = tail;
            Ok(head)
        };
        let u32_of = |b: &[u8]| u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
        let pack_count = u32_of(take(4)?) as usize;
        let mut numbers = Vec::with_capacity(pack_count.min(1 << 16));
        for _ in 0..pack_count {
            let len = take(1)?[0] as usize;
            let id = std::str::from_utf8(take(len)?).map_err(|_| "pack id not UTF-8")?;
            if !valid_file_id(id) {
                return Err(format!("pack id {id:?}"));
            }
            numbers.push(self.pack_number(id));
        }
        let entries = u32_of(take(4)?) as usize;
        for _ in 0..entries {
            let e = take(PACK_INDEX_ENTRY)?;
            let mut id = [0u8; 32];
            id.copy_from_slice(&e[..32]);
            let pack = *numbers
                .get(u32_of(&e[32..36]) as usize)
                .ok_or("pack number out of range")?;
            let loc = Loc {
                pack,
                offset: u32_of(&e[36..40]),
                len: u32_of(&e[40..44]),
            };
            self.objects.insert(Id(id), loc);
        }
        Ok(())
    }

    /// The pack index of `entries` (numbering only the packs they use).
    fn write_pack_index<'a>(&self, entries: impl Iterator<Item = (&'a Id, &'a Loc)>) -> Vec<u8> {
        let entries: Vec<(&Id, &Loc)> = entries.collect();
        let mut renumber: HashMap<u32, u32> = HashMap::new();
        let mut packs: Vec<&str> = Vec::new();
        for (_, loc) in &entries {
            renumber.entry(loc.pack).or_insert_with(|| {
                packs.push(&self.packs[loc.pack as usize]);
                (packs.len() - 1) as u32
            });
        }
        let mut out = Vec::with_capacity(16 + packs.len() * 27 + entries.len() * PACK_INDEX_ENTRY);
        out.extend_from_slice(PACK_INDEX_MAGIC);
        out.extend_from_slice(&(packs.len() as u32).to_le_bytes());
        for pack in packs {
            // Pack ids are checked (at most 64 ASCII characters) or made here (ULIDs).
            out.push(pack.len() as u8);
            out.extend_from_slice(pack.as_bytes());
        }
        out.extend_from_slice(&(entries.len() as u32).to_le_bytes());
        for (id, loc) in entries {
            out.extend_from_slice(&id.0);
            out.extend_from_slice(&renumber.get(&loc.pack).copied().unwrap_or(0).to_le_bytes());
            out.extend_from_slice(&loc.offset.to_le_bytes());
            out.extend_from_slice(&loc.len.to_le_bytes());
        }
        out
    }
}

#[async_trait]
impl ResourceArchive for ObjectStoreArchive {
    async fn begin(&self) -> Result<Box<dyn ArchiveWriter>> {
        // The pack indexes tell which contents the store already holds: an object
        // unchanged since an earlier backup is then indexed without being written.
        let mut known = self.inner.load_pack_indexes().await?;
        // Objects in packs a gc condemned are written again rather than reused (the
        // backup's side of the gc protocol, docs/resource-archive.md).
        known.forget_packs(&gc::condemned_packs(&self.inner).await?);
        Ok(Box::new(Writer {
            inner: self.inner.clone(),
            archive_id: new_file_id(),
            state: Mutex::new(WriterState {
                known,
                pack: None,
                written: Vec::new(),
                shards: BTreeMap::new(),
                new_objects: 0,
                new_bytes: 0,
                failed: false,
            }),
        }))
    }

    async fn open(&self, archive_id: &str) -> Result<Box<dyn ArchiveReader>> {
        if !valid_file_id(archive_id) {
            return Err(Error::Invalid(format!("archive id {archive_id:?}")));
        }
        let key = self.inner.layout.manifest(archive_id);
        let manifest: Manifest = self
            .inner
            .get_sealed_json(&key, &format!("resource-manifest/{archive_id}"))
            .await?;
        if !READABLE_FORMATS.contains(&manifest.format) || manifest.archive_id != archive_id {
            return Err(Error::Format(format!(
                "{key}: not a format {READABLE_FORMATS:?} manifest of {archive_id}"
            )));
        }
        Ok(Box::new(Reader {
            inner: self.inner.clone(),
            manifest,
            spans: Mutex::new(Spans::default()),
        }))
    }
}

struct Writer {
    inner: Arc<Inner>,
    archive_id: String,
    state: Mutex<WriterState>,
}

/// The pack being filled.
struct OpenPack {
    number: u32,
    body: Vec<u8>,
}

struct WriterState {
    known: Known,
    pack: Option<OpenPack>,
    /// The objects this backup wrote: its pack index.
    written: Vec<(Id, Loc)>,
    shards: BTreeMap<Option<String>, Vec<IndexEntry>>,
    new_objects: usize,
    new_bytes: u64,
    /// A pack upload failed: objects indexed as in it are not stored, so no manifest.
    failed: bool,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic elsewhere while holding the lock leaves consistent data (plain inserts).
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn shard_name(namespace: &Option<String>) -> String {
    match namespace {
        None => "cluster".to_string(),
        Some(ns) => format!("ns-{ns}"),
    }
}

fn object_aad_of(id: &str) -> String {
    format!("resource-object/{id}")
}

impl Writer {
    async fn upload(&self, number: u32, body: Vec<u8>) -> Result<()> {
        let key = {
            let state = lock(&self.state);
            self.inner.layout.pack(&state.known.packs[number as usize])
        };
        if let Err(e) = self.inner.store.put(&key, Bytes::from(body)).await {
            lock(&self.state).failed = true;
            return Err(e.into());
        }
        Ok(())
    }
}

#[async_trait]
impl ArchiveWriter for Writer {
    fn archive_id(&self) -> &str {
        &self.archive_id
    }

    async fn put_object(&self, entry: NewEntry, json: Vec<u8>) -> Result<bool> {
        let id = self.inner.keys.blob_id(&json);
        let hex = id.to_hex();
        let stored = lock(&self.state).known.objects.get(&id).copied();
        let (loc, new, full) = match stored {
            Some(loc) => (loc, false, None),
            None => {
                // Compressed and sealed outside the lock; appended under it.
                let compressed = compress(&json)?;
                drop(json);
                let mut state = lock(&self.state);
                match state.known.objects.get(&id).copied() {
                    // The same content, put concurrently by another list.
                    Some(loc) => (loc, false, None),
                    None => {
                        let number = match &state.pack {
                            Some(pack) => pack.number,
                            None => {
                                let number = state.known.pack_number(&new_file_id());
                                state.pack = Some(OpenPack {
                                    number,
                                    body: Vec::with_capacity(self.inner.pack_target.min(PACK_TARGET) + 4096),
                                });
                                number
                            }
                        };
                        let WriterState { pack, .. } = &mut *state;
                        let Some(pack) = pack.as_mut() else {
                            return Err(Error::Format("no open pack".into()));
                        };
                        let offset = pack.body.len();
                        self.inner
                            .keys
                            .sealer()
                            .seal_into(&object_aad(&object_aad_of(&hex)), &compressed, &mut pack.body)
                            .map_err(|e| Error::Format(format!("sealing: {e}")))?;
                        let len = pack.body.len() - offset;
                        let too_big = || Error::Format("pack larger than 4 GiB".into());
                        let loc = Loc {
                            pack: number,
                            offset: u32::try_from(offset).map_err(|_| too_big())?,
                            len: u32::try_from(len).map_err(|_| too_big())?,
                        };
                        let full = if pack.body.len() >= self.inner.pack_target {
                            state.pack.take()
                        } else {
                            None
                        };
                        state.known.objects.insert(id, loc);
                        state.written.push((id, loc));
                        state.new_objects += 1;
                        state.new_bytes += len as u64;
                        (loc, true, full)
                    }
                }
            }
        };
        let NewEntry {
            resource,
            namespace,
            name,
            uid,
        } = entry;
        {
            let mut state = lock(&self.state);
            let pack = state.known.packs[loc.pack as usize].clone();
            state.shards.entry(namespace.clone()).or_default().push(IndexEntry {
                resource,
                namespace,
                name,
                uid,
                id: hex,
                pack: Some(pack),
                offset: u64::from(loc.offset),
                len: u64::from(loc.len),
            });
        }
        if let Some(full) = full {
            self.upload(full.number, full.body).await?;
        }
        Ok(new)
    }

    async fn finish(&self, mut manifest: Manifest) -> Result<Manifest> {
        let last = lock(&self.state).pack.take();
        if let Some(last) = last.filter(|p| !p.body.is_empty()) {
            self.upload(last.number, last.body).await?;
        }
        if lock(&self.state).failed {
            return Err(Error::Format("a pack upload failed: the archive is incomplete".into()));
        }
        // The final check against gc: every pack the archive relies on still exists, and
        // what lies in packs a gc condemned meanwhile is copied out of them.
        let check_started = std::time::Instant::now();
        let existing = self.inner.existing_packs().await?;
        let condemned = gc::condemned_packs(&self.inner).await?;
        let mut shards = std::mem::take(&mut lock(&self.state).shards);
        let relocated = self.relocate(&mut shards, &existing, &condemned).await?;
        let (new_objects, new_bytes, pack_index, merged) = {
            let mut state = lock(&self.state);
            // Few pack indexes: write one for this backup's objects. Many: one for
            // everything known that is still stored and not condemned, replacing those read.
            let merge = state.known.indexes.len() >= MERGE_PACK_INDEXES_AT;
            let pack_index = if merge {
                let known = &state.known;
                let usable = |loc: &Loc| {
                    let pack = &known.packs[loc.pack as usize];
                    (existing.contains_key(pack) || relocated.as_deref() == Some(pack.as_str()))
                        && !condemned.contains(pack)
                };
                Some(known.write_pack_index(known.objects.iter().filter(|(_, loc)| usable(loc))))
            } else if state.written.is_empty() {
                None
            } else {
                let written = std::mem::take(&mut state.written);
                Some(state.known.write_pack_index(written.iter().map(|(id, loc)| (id, loc))))
            };
            let merged = if merge {
                std::mem::take(&mut state.known.indexes)
            } else {
                Vec::new()
            };
            (state.new_objects, state.new_bytes, pack_index, merged)
        };
        // The pack index after the packs it lists, before the manifest that relies on them.
        if let Some(plain) = pack_index {
            let index_id = new_file_id();
            let sealed = self.inner.seal(&format!("resource-pack-index/{index_id}"), &plain)?;
            let key = self.inner.layout.pack_index(&index_id);
            self.inner.store.put(&key, Bytes::from(sealed)).await?;
            for old in merged {
                if let Err(e) = self.inner.store.delete(&old).await {
                    // Harmless: its entries are in the new index too.
                    tracing::warn!(key = %old, error = %e, "could not delete a merged pack index");
                }
            }
        }
        // Immutable: the packs this archive reuses from earlier backups are retained as
        // long as its own, before the manifest makes it an archive.
        if let Some(until) = self.inner.retain_until {
            let packs: BTreeSet<String> = shards
                .values()
                .flatten()
                .filter_map(|e| e.pack.as_deref().map(|p| self.inner.layout.pack(p)))
                .collect();
            arca_repo::immutability::retain_all(self.inner.store.as_ref(), packs, until)
                .await
                .map_err(|e| Error::Format(format!("retaining the archive's packs (S3 Object Lock): {e}")))?;
        }
        manifest.format = FORMAT;
        manifest.archive_id = self.archive_id.clone();
        manifest.new_objects = new_objects;
        manifest.new_bytes = new_bytes;
        manifest.objects = 0;
        manifest.shards.clear();
        for (namespace, mut entries) in shards {
            // Sorted so that the same cluster state gives the same index bytes.
            entries.sort_by(|a, b| (&a.resource, &a.name).cmp(&(&b.resource, &b.name)));
            let name = shard_name(&namespace);
            let key = self.inner.layout.index_file(&self.archive_id, &name);
            let aad = format!("resource-index/{}/{name}", self.archive_id);
            let sealed = self.inner.seal(&aad, &serde_json::to_vec(&entries)?)?;
            self.inner.store.put(&key, Bytes::from(sealed)).await?;
            manifest.objects += entries.len();
            manifest.shards.push(ShardRef {
                namespace,
                key,
                entries: entries.len(),
                resources: entries.iter().map(|e| e.resource.group_resource()).collect(),
            });
        }
        let aad = format!("resource-manifest/{}", self.archive_id);
        let sealed = self.inner.seal(&aad, &serde_json::to_vec(&manifest)?)?;
        // gc's grace period is far longer than this bound: a condemned pack checked
        // above cannot be deleted before the manifest naming it is visible.
        if check_started.elapsed() > FINAL_CHECK_LIMIT {
            return Err(Error::Concurrent(
                "the final check against gc took too long; run the backup again".into(),
            ));
        }
        let key = self.inner.layout.manifest(&self.archive_id);
        self.inner.store.put(&key, Bytes::from(sealed)).await?;
        Ok(manifest)
    }
}

impl Writer {
    /// Copies the objects `shards` reference in `condemned` packs into one new pack (a
    /// sealed object is bound to its id, not to its place, so its bytes move as they
    /// are) and points the entries there. Fails when a referenced pack is gone: a gc
    /// collected it while this backup ran longer than gc's grace period. Returns the new
    /// pack's name, if one was written.
    async fn relocate(
        &self,
        shards: &mut BTreeMap<Option<String>, Vec<IndexEntry>>,
        existing: &HashMap<String, u64>,
        condemned: &std::collections::HashSet<String>,
    ) -> Result<Option<String>> {
        let mut wanted: BTreeMap<String, (String, Range<u64>)> = BTreeMap::new();
        for e in shards.values().flatten() {
            let Some(pack) = &e.pack else { continue };
            if !existing.contains_key(pack) {
                return Err(Error::Concurrent(format!(
                    "pack {pack} this backup relies on was deleted by a concurrent gc; run the backup again"
                )));
            }
            if condemned.contains(pack) {
                wanted
                    .entry(e.id.clone())
                    .or_insert_with(|| (pack.clone(), e.offset..e.offset.saturating_add(e.len)));
            }
        }
        if wanted.is_empty() {
            return Ok(None);
        }
        let mut body = Vec::new();
        let mut moved: HashMap<String, Range<u64>> = HashMap::new();
        for (id, (pack, range)) in &wanted {
            let sealed = self
                .inner
                .store
                .get_range(&self.inner.layout.pack(pack), range.clone())
                .await?;
            let start = body.len() as u64;
            body.extend_from_slice(&sealed);
            moved.insert(id.clone(), start..body.len() as u64);
        }
        let name = new_file_id();
        self.inner
            .store
            .put(&self.inner.layout.pack(&name), Bytes::from(body))
            .await?;
        {
            let mut state = lock(&self.state);
            let number = state.known.pack_number(&name);
            let too_big = || Error::Format("pack larger than 4 GiB".into());
            for (id, range) in &moved {
                let loc = Loc {
                    pack: number,
                    offset: u32::try_from(range.start).map_err(|_| too_big())?,
                    len: u32::try_from(range.end - range.start).map_err(|_| too_big())?,
                };
                let id = Id::from_hex(id).map_err(|e| Error::Format(format!("object id {id}: {e}")))?;
                state.known.objects.insert(id, loc);
                state.written.push((id, loc));
            }
        }
        for e in shards.values_mut().flatten() {
            if e.pack.as_ref().is_some_and(|p| condemned.contains(p))
                && let Some(range) = moved.get(&e.id)
            {
                e.pack = Some(name.clone());
                e.offset = range.start;
                e.len = range.end - range.start;
            }
        }
        Ok(Some(name))
    }
}

/// A ranged read shared by every object it covers.
type SpanRead = Shared<BoxFuture<'static, std::result::Result<Bytes, String>>>;

/// Reading: the objects an `entries` call returned are fetched in spans (neighbours in a
/// pack together), each once, and kept a while: a restore of 10,000 objects makes a few
/// dozen reads rather than 10,000.
#[derive(Default)]
struct Spans {
    /// Planned spans per pack, sorted by start.
    planned: HashMap<String, Vec<Range<u64>>>,
    fetched: HashMap<(String, u64), SpanRead>,
    /// Fetched spans, oldest first, with their sizes: evicted beyond [`SPAN_CACHE`].
    order: VecDeque<((String, u64), u64)>,
    cached_bytes: u64,
}

impl Spans {
    fn plan(&mut self, entries: &[IndexEntry]) {
        let mut by_pack: HashMap<&str, Vec<Range<u64>>> = HashMap::new();
        for e in entries {
            if let Some(pack) = &e.pack {
                by_pack
                    .entry(pack.as_str())
                    .or_default()
                    .push(e.offset..e.offset.saturating_add(e.len));
            }
        }
        for (pack, mut ranges) in by_pack {
            ranges.sort_by_key(|r| r.start);
            let mut spans: Vec<Range<u64>> = Vec::new();
            for r in ranges {
                match spans.last_mut() {
                    Some(span)
                        if r.start <= span.end.saturating_add(SPAN_GAP)
                            && r.end.max(span.end) - span.start <= SPAN_MAX =>
                    {
                        span.end = span.end.max(r.end);
                    }
                    _ => spans.push(r),
                }
            }
            let planned = self.planned.entry(pack.to_string()).or_default();
            planned.extend(spans);
            planned.sort_by_key(|r| r.start);
        }
    }

    /// The planned span of `pack` holding `range`, if any.
    fn span_of(&self, pack: &str, range: &Range<u64>) -> Option<Range<u64>> {
        let spans = self.planned.get(pack)?;
        let after = spans.partition_point(|s| s.start <= range.start);
        spans[..after]
            .iter()
            .rev()
            .take(4)
            .find(|s| s.end >= range.end)
            .cloned()
    }
}

struct Reader {
    inner: Arc<Inner>,
    manifest: Manifest,
    spans: Mutex<Spans>,
}

impl Reader {
    /// The sealed bytes of a packed object: from its span when one is planned.
    async fn packed(&self, pack: &str, range: Range<u64>) -> Result<Bytes> {
        let key = self.inner.layout.pack(pack);
        let read = {
            let mut spans = lock(&self.spans);
            match spans.span_of(pack, &range) {
                None => None,
                Some(span) => {
                    let slot = (pack.to_string(), span.start);
                    let read = match spans.fetched.get(&slot) {
                        Some(read) => read.clone(),
                        None => {
                            let store = self.inner.store.clone();
                            let key = key.clone();
                            let fetch = span.clone();
                            let read = async move { store.get_range(&key, fetch).await.map_err(|e| e.to_string()) }
                                .boxed()
                                .shared();
                            spans.fetched.insert(slot.clone(), read.clone());
                            let size = span.end - span.start;
                            spans.order.push_back((slot, size));
                            spans.cached_bytes += size;
                            while spans.cached_bytes > SPAN_CACHE {
                                let Some((old, size)) = spans.order.pop_front() else {
                                    break;
                                };
                                spans.fetched.remove(&old);
                                spans.cached_bytes -= size;
                            }
                            read
                        }
                    };
                    Some((span, read))
                }
            }
        };
        if let Some((span, read)) = read {
            let len = range.end - range.start;
            match read.await {
                Ok(bytes) if bytes.len() as u64 >= range.end - span.start => {
                    let start = usize::try_from(range.start - span.start).unwrap_or(usize::MAX);
                    let end = start.saturating_add(usize::try_from(len).unwrap_or(usize::MAX));
                    if let Some(slice) = (end <= bytes.len()).then(|| bytes.slice(start..end)) {
                        return Ok(slice);
                    }
                }
                // A failed or short span read: this object alone, for its own error.
                _ => {
                    let mut spans = lock(&self.spans);
                    let slot = (pack.to_string(), span.start);
                    if spans.fetched.remove(&slot).is_some()
                        && let Some(i) = spans.order.iter().position(|(s, _)| *s == slot)
                        && let Some((_, size)) = spans.order.remove(i)
                    {
                        spans.cached_bytes -= size;
                    }
                }
            }
        }
        let bytes = self.inner.store.get_range(&key, range.clone()).await?;
        if bytes.len() as u64 != range.end - range.start {
            return Err(Error::Format(format!("{key}: short read at {range:?}")));
        }
        Ok(bytes)
    }
}

#[async_trait]
impl ArchiveReader for Reader {
    fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    async fn entries(&self, filter: &ReadFilter) -> Result<Vec<IndexEntry>> {
        let mut out = Vec::new();
        for shard in self.manifest.shards.iter().filter(|s| filter.wants_shard(s)) {
            let aad = format!(
                "resource-index/{}/{}",
                self.manifest.archive_id,
                shard_name(&shard.namespace)
            );
            let entries: Vec<IndexEntry> = self.inner.get_sealed_json(&shard.key, &aad).await?;
            out.extend(entries.into_iter().filter(|e| filter.wants(e)));
        }
        lock(&self.spans).plan(&out);
        Ok(out)
    }

    async fn object(&self, entry: &IndexEntry) -> Result<Value> {
        if entry.id.len() != 64 || !entry.id.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(Error::Format(format!("object id {:?}", entry.id)));
        }
        let aad = object_aad_of(&entry.id);
        let sealed = match &entry.pack {
            Some(pack) if valid_file_id(pack) && entry.len > 0 => {
                let end = entry
                    .offset
                    .checked_add(entry.len)
                    .ok_or_else(|| Error::Format(format!("object range of {}", entry.id)))?;
                self.packed(pack, entry.offset..end).await?
            }
            Some(pack) => return Err(Error::Format(format!("pack {pack:?} of object {}", entry.id))),
            None => {
                let key = (self.inner.layout.legacy_object(&entry.id))
                    .ok_or_else(|| Error::Format(format!("object id {:?}", entry.id)))?;
                self.inner.store.get(&key).await?
            }
        };
        Ok(serde_json::from_slice(&self.inner.open(&aad, &sealed)?)?)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use arca_core::ports::ObjectMeta;
    use arca_embedded::LocalFsObjectStore;
    use serde_json::json;

    use super::*;

    /// Counts the calls that reach the real store, to prove what a read does not touch.
    struct Counting {
        inner: LocalFsObjectStore,
        gets: AtomicUsize,
        ranges: AtomicUsize,
        puts: AtomicUsize,
    }

    impl Counting {
        fn new(dir: &std::path::Path) -> Self {
            Counting {
                inner: LocalFsObjectStore::new(dir),
                gets: AtomicUsize::new(0),
                ranges: AtomicUsize::new(0),
                puts: AtomicUsize::new(0),
            }
        }

        fn reads(&self) -> usize {
            self.gets.load(Ordering::Relaxed) + self.ranges.load(Ordering::Relaxed)
        }
    }

    #[async_trait]
    impl ObjectStore for Counting {
        async fn put_if_absent(&self, key: &str, body: Bytes) -> arca_core::Result<bool> {
            self.inner.put_if_absent(key, body).await
        }
        async fn put(&self, key: &str, body: Bytes) -> arca_core::Result<()> {
            self.puts.fetch_add(1, Ordering::Relaxed);
            self.inner.put(key, body).await
        }
        async fn get(&self, key: &str) -> arca_core::Result<Bytes> {
            self.gets.fetch_add(1, Ordering::Relaxed);
            self.inner.get(key).await
        }
        async fn get_range(&self, key: &str, range: Range<u64>) -> arca_core::Result<Bytes> {
            self.ranges.fetch_add(1, Ordering::Relaxed);
            self.inner.get_range(key, range).await
        }
        async fn list(&self, prefix: &str) -> arca_core::Result<Vec<ObjectMeta>> {
            self.inner.list(prefix).await
        }
        async fn delete(&self, key: &str) -> arca_core::Result<()> {
            self.inner.delete(key).await
        }
    }

    fn configmaps() -> ResourceType {
        ResourceType {
            group: String::new(),
            version: "v1".into(),
            kind: "ConfigMap".into(),
            plural: "configmaps".into(),
            namespaced: true,
        }
    }

    fn cm(ns: &str, name: &str, value: &str) -> (NewEntry, Vec<u8>) {
        let obj = json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"namespace": ns, "name": name, "uid": format!("uid-{ns}-{name}")}, "data": {"k": value}});
        (
            NewEntry {
                resource: configmaps(),
                namespace: Some(ns.into()),
                name: name.into(),
                uid: format!("uid-{ns}-{name}"),
            },
            serde_json::to_vec(&obj).unwrap(),
        )
    }

    async fn write(archive: &ObjectStoreArchive, objects: &[(&str, &str, &str)]) -> Manifest {
        let writer = archive.begin().await.unwrap();
        for (ns, name, value) in objects {
            let (entry, json) = cm(ns, name, value);
            writer.put_object(entry, json).await.unwrap();
        }
        writer.finish(Manifest::default()).await.unwrap()
    }

    async fn keys_under(store: &dyn ObjectStore, prefix: &str) -> Vec<String> {
        store.list(prefix).await.unwrap().into_iter().map(|m| m.key).collect()
    }

    #[tokio::test]
    async fn round_trip_dedup_and_partial_reads() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Counting::new(dir.path()));
        let archive = ObjectStoreArchive::new(store.clone(), "resources/", &[7; 32]).unwrap();
        let first = write(&archive, &[("a", "one", "1"), ("a", "two", "2"), ("b", "three", "3")]).await;
        assert_eq!((first.objects, first.new_objects), (3, 3));
        assert_eq!(first.shards.len(), 2);
        assert_eq!(first.format, 2);
        // The three objects went into one pack.
        assert_eq!(keys_under(store.as_ref(), "resources/packs/").await.len(), 1);

        // The next backup: one object changed, two unchanged cost no write.
        let puts_before = store.puts.load(Ordering::Relaxed);
        let second = write(
            &archive,
            &[("a", "one", "1"), ("a", "two", "2-changed"), ("b", "three", "3")],
        )
        .await;
        assert_eq!((second.objects, second.new_objects), (3, 1));
        // One pack (the changed object), its pack index, two index shards, one manifest.
        assert_eq!(store.puts.load(Ordering::Relaxed) - puts_before, 5);
        assert_ne!(first.archive_id, second.archive_id);

        // Nothing changed: no pack, no pack index.
        let puts_before = store.puts.load(Ordering::Relaxed);
        let third = write(
            &archive,
            &[("a", "one", "1"), ("a", "two", "2-changed"), ("b", "three", "3")],
        )
        .await;
        assert_eq!((third.objects, third.new_objects, third.new_bytes), (3, 0, 0));
        assert_eq!(store.puts.load(Ordering::Relaxed) - puts_before, 3);

        // Reading one namespace reads the manifest, that shard and its objects only.
        let reads_before = store.reads();
        let reader = archive.open(&second.archive_id).await.unwrap();
        let filter = ReadFilter {
            namespaces: Some(["b".to_string()].into()),
            cluster_scoped: false,
            resources: None,
        };
        let entries = reader.entries(&filter).await.unwrap();
        assert_eq!(entries.len(), 1);
        assert_eq!(entries[0].name, "three");
        let obj = reader.object(&entries[0]).await.unwrap();
        assert_eq!(obj["data"]["k"], "3");
        assert_eq!(store.reads() - reads_before, 3);
        // A ranged read of that object's bytes, not of its pack.
        assert_eq!(store.ranges.load(Ordering::Relaxed), 1);

        let all = reader.entries(&ReadFilter::everything()).await.unwrap();
        let two = all.iter().find(|e| e.name == "two").unwrap();
        assert_eq!(reader.object(two).await.unwrap()["data"]["k"], "2-changed");
        let by_kind = ReadFilter {
            resources: Some(["secrets".to_string()].into()),
            ..ReadFilter::everything()
        };
        assert!(reader.entries(&by_kind).await.unwrap().is_empty());

        // The old archive still reads its own version.
        let old = archive.open(&first.archive_id).await.unwrap();
        let old_entries = old.entries(&ReadFilter::everything()).await.unwrap();
        let two = old_entries.iter().find(|e| e.name == "two").unwrap();
        assert_eq!(old.object(two).await.unwrap()["data"]["k"], "2");
    }

    #[tokio::test]
    async fn many_objects_few_files_and_few_reads() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Counting::new(dir.path()));
        // Small packs, so that the objects span several.
        let archive = ObjectStoreArchive::new(store.clone(), "r", &[5; 32])
            .unwrap()
            .with_pack_target(16 << 10);
        let writer: Arc<dyn ArchiveWriter> = Arc::from(archive.begin().await.unwrap());
        // Concurrent puts, as a backup's parallel lists make them.
        let tasks: Vec<_> = (0..8)
            .map(|t| {
                let writer = writer.clone();
                tokio::spawn(async move {
                    for i in 0..250 {
                        let value = format!("{t}-{i}-{}", "x".repeat(i % 50));
                        let (entry, json) = cm(&format!("ns-{t}"), &format!("cm-{i}"), &value);
                        assert!(writer.put_object(entry, json).await.unwrap());
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await.unwrap();
        }
        let manifest = writer.finish(Manifest::default()).await.unwrap();
        assert_eq!((manifest.objects, manifest.new_objects), (2000, 2000));
        let packs = keys_under(store.as_ref(), "r/packs/").await;
        assert!((2..50).contains(&packs.len()), "{} packs", packs.len());
        assert_eq!(keys_under(store.as_ref(), "r/pack-index/").await.len(), 1);

        // Reading everything back: ranged reads of spans, far fewer than objects.
        let reader = archive.open(&manifest.archive_id).await.unwrap();
        let entries = reader.entries(&ReadFilter::everything()).await.unwrap();
        let ranges_before = store.ranges.load(Ordering::Relaxed);
        let reader = &reader;
        let values: Vec<Value> = futures::stream::iter(entries.iter())
            .map(|e| async move { reader.object(e).await.unwrap() })
            .buffer_unordered(16)
            .collect()
            .await;
        assert_eq!(values.len(), 2000);
        for (e, v) in entries.iter().zip(&entries) {
            assert_eq!(e, v);
        }
        let one = entries
            .iter()
            .find(|e| e.name == "cm-7" && e.namespace.as_deref() == Some("ns-3"))
            .unwrap();
        assert_eq!(
            reader.object(one).await.unwrap()["data"]["k"],
            format!("3-7-{}", "x".repeat(7))
        );
        let ranges = store.ranges.load(Ordering::Relaxed) - ranges_before;
        assert!(
            ranges <= packs.len() * 2,
            "{ranges} ranged reads for {} packs",
            packs.len()
        );
        use futures::StreamExt;
    }

    #[tokio::test]
    async fn pack_indexes_are_merged_and_dedup_survives_it() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(LocalFsObjectStore::new(dir.path()));
        let archive = ObjectStoreArchive::new(store.clone(), "r", &[6; 32]).unwrap();
        let mut last = None;
        for round in 0..MERGE_PACK_INDEXES_AT + 2 {
            let changed = format!("v{round}");
            let m = write(&archive, &[("a", "same", "unchanged"), ("a", "moving", &changed)]).await;
            let expected_new = if round == 0 { 2 } else { 1 };
            assert_eq!(m.new_objects, expected_new, "round {round}");
            last = Some(m);
        }
        let indexes = keys_under(store.as_ref(), "r/pack-index/").await;
        assert!(indexes.len() <= 3, "{} pack indexes left", indexes.len());
        // Everything is still known: an unchanged backup writes nothing new.
        let again = write(&archive, &[("a", "same", "unchanged"), ("a", "moving", "v0")]).await;
        assert_eq!(again.new_objects, 0);
        let reader = archive.open(&last.unwrap().archive_id).await.unwrap();
        for e in reader.entries(&ReadFilter::everything()).await.unwrap() {
            reader.object(&e).await.unwrap();
        }
    }

    #[tokio::test]
    async fn format_1_archives_still_read() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(LocalFsObjectStore::new(dir.path()));
        let archive = ObjectStoreArchive::new(store.clone(), "r", &[4; 32]).unwrap();
        let inner = &archive.inner;
        // As the format 1 writer left them: one file per object, no pack fields.
        let (new, json) = cm("a", "old", "kept");
        let id = inner.keys.blob_id(&json).to_hex();
        let mut frame = Vec::new();
        zstd::stream::copy_encode(json.as_slice(), &mut frame, 3).unwrap();
        let sealed = inner
            .keys
            .sealer()
            .seal(&object_aad(&object_aad_of(&id)), &frame)
            .unwrap();
        store
            .put(&inner.layout.legacy_object(&id).unwrap(), Bytes::from(sealed))
            .await
            .unwrap();
        let archive_id = "01legacy";
        let entry = json!([{"resource": new.resource, "namespace": "a", "name": "old", "uid": new.uid, "id": id}]);
        let key = inner.layout.index_file(archive_id, "ns-a");
        let sealed = inner
            .seal(
                &format!("resource-index/{archive_id}/ns-a"),
                &serde_json::to_vec(&entry).unwrap(),
            )
            .unwrap();
        store.put(&key, Bytes::from(sealed)).await.unwrap();
        let manifest = Manifest {
            format: 1,
            archive_id: archive_id.into(),
            objects: 1,
            shards: vec![ShardRef {
                namespace: Some("a".into()),
                key,
                entries: 1,
                resources: ["configmaps".to_string()].into(),
            }],
            ..Manifest::default()
        };
        let sealed = inner
            .seal(
                &format!("resource-manifest/{archive_id}"),
                &serde_json::to_vec(&manifest).unwrap(),
            )
            .unwrap();
        store
            .put(&inner.layout.manifest(archive_id), Bytes::from(sealed))
            .await
            .unwrap();

        let reader = archive.open(archive_id).await.unwrap();
        let entries = reader.entries(&ReadFilter::everything()).await.unwrap();
        assert_eq!(entries[0].pack, None);
        assert_eq!(reader.object(&entries[0]).await.unwrap()["data"]["k"], "kept");
    }

    #[test]
    fn pack_indexes_round_trip_and_refuse_garbage() {
        let mut known = Known::default();
        let a = known.pack_number("packa");
        let b = known.pack_number("packb");
        let entries = [
            (
                Id([1; 32]),
                Loc {
                    pack: b,
                    offset: 7,
                    len: 9,
                },
            ),
            (
                Id([2; 32]),
                Loc {
                    pack: a,
                    offset: 0,
                    len: 3,
                },
            ),
        ];
        let bytes = known.write_pack_index(entries.iter().map(|(i, l)| (i, l)));
        let mut read = Known::default();
        read.pack_number("other");
        read.read_pack_index(&bytes).unwrap();
        let loc = read.objects[&Id([1; 32])];
        assert_eq!(
            (read.packs[loc.pack as usize].as_str(), loc.offset, loc.len),
            ("packb", 7, 9)
        );
        for cut in 0..bytes.len() {
            assert!(Known::default().read_pack_index(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        let mut bad = bytes.clone();
        bad[bytes.len() - 12] = 9; // pack number out of range
        assert!(Known::default().read_pack_index(&bad).is_err());
    }

    #[tokio::test]
    async fn stored_bytes_are_encrypted_and_authenticated() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(LocalFsObjectStore::new(dir.path()));
        let archive = ObjectStoreArchive::new(store.clone(), "r", &[1; 32]).unwrap();
        let manifest = write(&archive, &[("secret-ns", "plain-name", "visible-value")]).await;
        for meta in store.list("r/").await.unwrap() {
            let body = store.get(&meta.key).await.unwrap();
            let text = String::from_utf8_lossy(&body);
            assert!(
                !text.contains("visible-value") && !text.contains("plain-name"),
                "{}",
                meta.key
            );
        }
        // The wrong key opens nothing.
        let other = ObjectStoreArchive::new(store.clone(), "r", &[2; 32]).unwrap();
        assert!(other.open(&manifest.archive_id).await.is_err());
        // A tampered object fails authentication.
        let reader = archive.open(&manifest.archive_id).await.unwrap();
        let entry = reader.entries(&ReadFilter::everything()).await.unwrap().remove(0);
        let key = archive.inner.layout.pack(entry.pack.as_deref().unwrap());
        let mut body = store.get(&key).await.unwrap().to_vec();
        let last = (entry.offset + entry.len - 1) as usize;
        body[last] ^= 1;
        store.put(&key, Bytes::from(body)).await.unwrap();
        let fresh = archive.open(&manifest.archive_id).await.unwrap();
        let entry = fresh.entries(&ReadFilter::everything()).await.unwrap().remove(0);
        assert!(fresh.object(&entry).await.is_err());
        // An entry pointing elsewhere in the pack fails too (the id is in the AAD).
        let moved = IndexEntry {
            offset: entry.offset + 1,
            len: entry.len - 1,
            ..entry.clone()
        };
        assert!(fresh.object(&moved).await.is_err());
        assert!(archive.open("../etc").await.is_err());
    }
}
