//! An open repository: keys, config, sealed-object I/O, the index, snapshots.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use arca_core::ports::{ObjectMeta, ObjectStore};
use bytes::Bytes;

use crate::crypto::{Keys, MasterKey, blob_aad, frame_aad, object_aad, repo_object_aad};
use crate::error::{FormatError, RepoError, Result};
use crate::format::{
    self, BlobEntry, Config, FLAG_ZSTD, GcMarker, IndexFile, MAX_CONFIG_LEN, MAX_KEY_FILE_LEN, MAX_OBJECT_LEN,
    MAX_PACK_HEADER_LEN, MAX_PACK_LEN, MAX_SNAPSHOT_LEN, MapEntry, PackHeader, Snapshot, decode_config,
    decode_gc_marker, decode_index, decode_map, decode_pack_header, decode_snapshot, sealed_len,
};
use crate::id::{Id, IdMap};
use crate::keys::{KeyWrapper, decode_key_file};
use arca_core::model::layout::RepositoryLayout;

pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

pub(crate) fn key_for(f: fn(&str) -> arca_core::Result<String>, id: &Id) -> Result<String> {
    f(&id.to_hex()).map_err(|e| RepoError::Internal(e.to_string()))
}

/// What every part of an open repository shares.
pub(crate) struct Inner {
    pub store: Arc<dyn ObjectStore>,
    pub location: String,
    pub keys: Keys,
    pub config: Config,
}

/// An open repository. Cheap to clone.
#[derive(Clone)]
pub struct Repository {
    pub(crate) inner: Arc<Inner>,
}

impl std::fmt::Debug for Repository {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Repository")
            .field("location", &self.inner.location)
            .finish_non_exhaustive()
    }
}

fn not_found(e: &arca_core::Error) -> bool {
    matches!(e, arca_core::Error::NotFound { .. })
}

/// The objects under `prefix`; `what` names them in an error ("listing {what}").
pub(crate) async fn list_objects(store: &dyn ObjectStore, prefix: &str, what: &str) -> Result<Vec<ObjectMeta>> {
    store
        .list(prefix)
        .await
        .map_err(|e| RepoError::store(format!("listing {what}"), e))
}

/// Reads a whole object that its format bounds to `max` bytes; a larger one is refused
/// before any of it is read ([`RepoError::TooLarge`]).
pub(crate) async fn get_bounded(store: &dyn ObjectStore, key: &str, max: u64) -> Result<Bytes> {
    match store.get_at_most(key, max).await {
        Ok(Some(bytes)) => Ok(bytes),
        Ok(None) => Err(RepoError::TooLarge {
            object: key.into(),
            max,
        }),
        Err(e) => Err(RepoError::store(format!("reading {key}"), e)),
    }
}

/// The config's sealed size at most.
const MAX_SEALED_CONFIG: u64 = sealed_len(MAX_CONFIG_LEN);

impl Repository {
    /// Creates a repository: a key file first, then the config, whose presence is what
    /// makes a repository exist.
    pub async fn init(
        store: Arc<dyn ObjectStore>,
        location: &str,
        wrapper: &dyn KeyWrapper,
        config: Option<Config>,
    ) -> Result<Repository> {
        // Whatever its size, an object there means the repository exists: nothing of it is read.
        match store.get_at_most(RepositoryLayout::CONFIG, 0).await {
            Ok(_) => return Err(RepoError::AlreadyExists(location.into())),
            Err(e) if not_found(&e) => {}
            Err(e) => return Err(RepoError::store(format!("reading config of {location}"), e)),
        }
        let master = MasterKey::generate()?;
        let config = config.unwrap_or_else(|| Config::new(&Id::random().unwrap_or(Id([0; 32]))));
        config.validate().map_err(|e| RepoError::Invalid(e.to_string()))?;
        let key_file = wrapper.wrap(&master, now_ms()).await?;
        let key_bytes = serde_json::to_vec(&key_file).map_err(|e| RepoError::Internal(e.to_string()))?;
        let key_key = key_for(RepositoryLayout::key, &Id::random()?)?;
        store
            .put(&key_key, Bytes::from(key_bytes))
            .await
            .map_err(|e| RepoError::store("writing key file", e))?;
        let repo = Repository {
            inner: Arc::new(Inner {
                store,
                location: location.into(),
                keys: Keys::derive(&master)?,
                config,
            }),
        };
        let json = serde_json::to_vec(&repo.inner.config).map_err(|e| RepoError::Internal(e.to_string()))?;
        // The config is written only if none exists: of two concurrent inits one wins, and
        // the loser's key file (a master key nothing is sealed with) goes, so every key
        // file of the repository opens its config.
        let framed = format::frame(&json, 3);
        let sealed = repo
            .inner
            .keys
            .sealer()
            .seal(&repo_object_aad(RepositoryLayout::CONFIG), &framed)?;
        let written = repo
            .inner
            .store
            .put_if_absent(RepositoryLayout::CONFIG, Bytes::from(sealed))
            .await
            .map_err(|e| RepoError::store("writing config", e))?;
        if !written {
            repo.inner
                .store
                .delete(&key_key)
                .await
                .map_err(|e| RepoError::store("removing the key file of a lost init", e))?;
            return Err(RepoError::AlreadyExists(location.into()));
        }
        Ok(repo)
    }

    /// Opens a repository: tries every key file with `wrapper`, then reads the config.
    pub async fn open(store: Arc<dyn ObjectStore>, location: &str, wrapper: &dyn KeyWrapper) -> Result<Repository> {
        let config_bytes = match store.get_at_most(RepositoryLayout::CONFIG, MAX_SEALED_CONFIG).await {
            Ok(Some(bytes)) => bytes,
            Ok(None) => {
                return Err(RepoError::TooLarge {
                    object: RepositoryLayout::CONFIG.into(),
                    max: MAX_SEALED_CONFIG,
                });
            }
            Err(e) if not_found(&e) => return Err(RepoError::NotARepository(location.into())),
            Err(e) => return Err(RepoError::store(format!("reading config of {location}"), e)),
        };
        let key_objects = list_objects(store.as_ref(), RepositoryLayout::KEYS, "keys").await?;
        if key_objects.is_empty() {
            return Err(RepoError::corrupt(
                "keys/",
                "the repository has a config but no key file",
            ));
        }
        let mut master = None;
        for object in &key_objects {
            let bytes = get_bounded(store.as_ref(), &object.key, MAX_KEY_FILE_LEN).await?;
            let file = decode_key_file(&bytes).map_err(|e| RepoError::corrupt(&object.key, e))?;
            if let Some(key) = wrapper.unwrap(&file).await? {
                master = Some(key);
                break;
            }
        }
        let master = master.ok_or(RepoError::WrongPassword)?;
        let keys = Keys::derive(&master)?;
        let plain = match keys
            .sealer()
            .open(&repo_object_aad(RepositoryLayout::CONFIG), &config_bytes)
        {
            Ok(framed) => format::unframe_at_most(&framed, MAX_CONFIG_LEN),
            Err(e) => {
                // Version 1 sealed its config under the kind's name: such a repository is
                // told apart from a damaged one and refused by its version.
                if let Ok(framed) = keys.sealer().open(&object_aad("config"), &config_bytes) {
                    let version = format::unframe_at_most(&framed, MAX_CONFIG_LEN)
                        .ok()
                        .and_then(|plain| serde_json::from_slice::<serde_json::Value>(&plain).ok())
                        .and_then(|v| v.get("version").and_then(|v| v.as_u64()))
                        .map_or(1, |v| u32::try_from(v).unwrap_or(u32::MAX));
                    return Err(RepoError::UnsupportedVersion(version));
                }
                Err(e)
            }
        }
        .map_err(|e| RepoError::corrupt(RepositoryLayout::CONFIG, e))?;
        let config = match decode_config(&plain) {
            Ok(config) => config,
            Err(e) => {
                if let Ok(v) = serde_json::from_slice::<serde_json::Value>(&plain)
                    && let Some(version) = v.get("version").and_then(|v| v.as_u64())
                    && !u32::try_from(version).is_ok_and(|v| format::SUPPORTED_VERSIONS.contains(&v))
                {
                    return Err(RepoError::UnsupportedVersion(version as u32));
                }
                return Err(RepoError::corrupt(RepositoryLayout::CONFIG, e));
            }
        };
        Ok(Repository {
            inner: Arc::new(Inner {
                store,
                location: location.into(),
                keys,
                config,
            }),
        })
    }

    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    pub fn location(&self) -> &str {
        &self.inner.location
    }

    pub fn store(&self) -> &Arc<dyn ObjectStore> {
        &self.inner.store
    }

    pub(crate) fn keys(&self) -> &Keys {
        &self.inner.keys
    }

    /// Seals and writes an object whose kind allows at most `max` bytes of plaintext: what
    /// readers would refuse is not written.
    pub(crate) async fn put_object(&self, key: &str, payload: &[u8], max: usize) -> Result<()> {
        if payload.len() > max {
            return Err(RepoError::Invalid(format!(
                "{key} would be {} bytes, more than the {max} the format allows",
                payload.len()
            )));
        }
        let framed = format::frame(payload, 3);
        let sealed = self.inner.keys.sealer().seal(&repo_object_aad(key), &framed)?;
        self.inner
            .store
            .put(key, Bytes::from(sealed))
            .await
            .map_err(|e| RepoError::store(format!("writing {key}"), e))
    }

    /// Reads, authenticates and unframes an object whose kind allows at most `max` bytes
    /// of plaintext.
    pub(crate) async fn get_object(&self, key: &str, max: usize) -> Result<Vec<u8>> {
        let sealed = get_bounded(self.inner.store.as_ref(), key, sealed_len(max)).await?;
        open_object(&self.inner.keys, key, &sealed, max).map_err(|e| RepoError::corrupt(key, e))
    }

    /// Every snapshot, oldest first. Manifests that vanish while listing (forget) are skipped.
    pub async fn snapshots(&self) -> Result<Vec<(Id, Snapshot)>> {
        let listed = list_objects(self.inner.store.as_ref(), RepositoryLayout::SNAPSHOTS, "snapshots").await?;
        let mut out = Vec::with_capacity(listed.len());
        for object in listed {
            let Some(id) = RepositoryLayout::id_of(&object.key).and_then(|s| Id::from_hex(s).ok()) else {
                continue;
            };
            match self.get_object(&object.key, MAX_SNAPSHOT_LEN).await {
                Ok(plain) => out.push((
                    id,
                    decode_snapshot(&plain).map_err(|e| RepoError::corrupt(&object.key, e))?,
                )),
                Err(RepoError::Store { source, .. }) if not_found(&source) => continue,
                Err(e) => return Err(e),
            }
        }
        out.sort_by(|a, b| a.1.created_ms.cmp(&b.1.created_ms).then(a.0.cmp(&b.0)));
        Ok(out)
    }

    /// `latest` (optionally of one name) or a unique id prefix.
    pub async fn find_snapshot(&self, spec: &str, name: Option<&str>) -> Result<(Id, Snapshot)> {
        let all = self.snapshots().await?;
        let mut matching: Vec<_> = all
            .into_iter()
            .filter(|(_, s)| name.is_none_or(|n| s.name == n))
            .collect();
        if spec == "latest" {
            return matching.pop().ok_or_else(|| {
                RepoError::SnapshotNotFound(match name {
                    Some(n) => format!("latest of {n}"),
                    None => "latest".into(),
                })
            });
        }
        if spec.len() < 4 || !spec.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(RepoError::Invalid(format!(
                "snapshot {spec:?}: expected `latest` or a hex id (prefix)"
            )));
        }
        let spec_lower = spec.to_ascii_lowercase();
        matching.retain(|(id, _)| id.to_hex().starts_with(&spec_lower));
        match matching.len() {
            0 => Err(RepoError::SnapshotNotFound(spec.into())),
            1 => Ok(matching.remove(0)),
            _ => Err(RepoError::AmbiguousSnapshot(spec.into())),
        }
    }

    /// Removes a snapshot's manifest; its data goes at the next gc.
    pub async fn forget(&self, id: &Id) -> Result<()> {
        let key = key_for(RepositoryLayout::snapshot, id)?;
        self.inner
            .store
            .delete(&key)
            .await
            .map_err(|e| RepoError::store(format!("deleting {key}"), e))
    }

    pub(crate) async fn write_snapshot(&self, snapshot: &Snapshot) -> Result<Id> {
        let id = Id::random()?;
        let json = serde_json::to_vec(snapshot).map_err(|e| RepoError::Internal(e.to_string()))?;
        self.put_object(&key_for(RepositoryLayout::snapshot, &id)?, &json, MAX_SNAPSHOT_LEN)
            .await?;
        Ok(id)
    }

    pub(crate) async fn write_index(&self, packs: Vec<(Id, Vec<BlobEntry>)>) -> Result<Id> {
        self.write_index_at(packs, now_ms()).await
    }

    /// Writes an index file with a given indexing time (gc keeps packs' original times).
    pub(crate) async fn write_index_at(&self, packs: Vec<(Id, Vec<BlobEntry>)>, created_ms: u64) -> Result<Id> {
        let id = Id::random()?;
        let file = IndexFile { created_ms, packs };
        self.put_object(
            &key_for(RepositoryLayout::index, &id)?,
            &format::encode_index(&file),
            MAX_OBJECT_LEN,
        )
        .await?;
        Ok(id)
    }

    pub(crate) async fn gc_markers(&self) -> Result<Vec<(String, GcMarker)>> {
        let listed = list_objects(self.inner.store.as_ref(), RepositoryLayout::GC_MARKERS, "gc markers").await?;
        let mut out = Vec::new();
        for object in listed {
            match self.get_object(&object.key, MAX_OBJECT_LEN).await {
                Ok(plain) => out.push((
                    object.key.clone(),
                    decode_gc_marker(&plain).map_err(|e| RepoError::corrupt(&object.key, e))?,
                )),
                Err(RepoError::Store { source, .. }) if not_found(&source) => continue,
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }

    /// Pack ids that exist in the store, with their sizes.
    pub(crate) async fn list_packs(&self) -> Result<IdMap<u64>> {
        let listed = list_objects(self.inner.store.as_ref(), RepositoryLayout::PACKS, "packs").await?;
        let mut out = IdMap::default();
        for object in listed {
            if let Some(id) = RepositoryLayout::id_of(&object.key).and_then(|s| Id::from_hex(s).ok()) {
                out.insert(id, object.size);
            }
        }
        Ok(out)
    }

    /// Reads and decodes the header at the end of a pack of `size` bytes.
    pub async fn read_pack_header(&self, pack: &Id, size: u64) -> Result<PackHeader> {
        let key = key_for(RepositoryLayout::pack, pack)?;
        let store = &self.inner.store;
        if size < 4 {
            return Err(RepoError::corrupt(&key, "shorter than a header length"));
        }
        if size > MAX_PACK_LEN {
            return Err(RepoError::TooLarge {
                object: key,
                max: MAX_PACK_LEN,
            });
        }
        let tail = store
            .get_range(&key, size - 4..size)
            .await
            .map_err(|e| RepoError::store(&key, e))?;
        let range = format::decode_pack_trailer(size, &tail).map_err(|e| RepoError::corrupt(&key, e))?;
        if range.end - range.start > sealed_len(MAX_PACK_HEADER_LEN) {
            return Err(RepoError::corrupt(
                &key,
                format!(
                    "header of {} bytes, more than the {} the format allows",
                    range.end - range.start,
                    sealed_len(MAX_PACK_HEADER_LEN)
                ),
            ));
        }
        let body = range.start;
        let sealed = store
            .get_range(&key, range)
            .await
            .map_err(|e| RepoError::store(&key, e))?;
        let plain = self
            .inner
            .keys
            .sealer()
            .open(&repo_object_aad(&key), &sealed)
            .map_err(|e| RepoError::corrupt(&key, e))?;
        let header = decode_pack_header(&plain).map_err(|e| RepoError::corrupt(&key, e))?;
        format::check_pack_bounds(&header, body).map_err(|e| RepoError::corrupt(&key, e))?;
        Ok(header)
    }

    /// Loads the index: every index file, minus packs that do not exist, with packs
    /// condemned by gc markers flagged. `adopt_orphans` reads the headers of packs that no
    /// index lists (a killed backup's uploads) and adds them.
    pub async fn load_index(&self, adopt_orphans: bool) -> Result<Index> {
        let existing = self.list_packs().await?;
        let listed = list_objects(self.inner.store.as_ref(), RepositoryLayout::INDEXES, "index").await?;
        let markers = self.gc_markers().await?;
        let condemned: HashSet<Id> = markers
            .iter()
            .flat_map(|(_, m)| m.pack_ids().unwrap_or_default())
            .collect();
        let mut index = Index::default();
        for object in listed {
            let Some(file_id) = RepositoryLayout::id_of(&object.key).and_then(|s| Id::from_hex(s).ok()) else {
                continue;
            };
            let plain = match self.get_object(&object.key, MAX_OBJECT_LEN).await {
                Ok(plain) => plain,
                // Replaced by a concurrent gc between list and get: its content is in the new file.
                Err(RepoError::Store { source, .. }) if not_found(&source) => continue,
                Err(e) => return Err(e),
            };
            let file = decode_index(&plain).map_err(|e| RepoError::corrupt(&object.key, e))?;
            index.files.push(file_id);
            for (pack, entries) in file.packs {
                match existing.get(&pack) {
                    Some(size) => {
                        // Blobs must lie inside the pack: a forged length must not become a
                        // multi-gigabyte read later.
                        let header = PackHeader {
                            created_ms: 0,
                            blobs: entries,
                        };
                        format::check_pack_bounds(&header, *size)
                            .map_err(|e| RepoError::corrupt(&object.key, format!("pack {pack}: {e}")))?;
                        let entries = header.blobs;
                        let doomed = condemned.contains(&pack);
                        index.add_pack(pack, *size, entries, file.created_ms, PackSource::Indexed, doomed)
                    }
                    None => index.missing_packs += 1,
                }
            }
        }
        if adopt_orphans {
            for (pack, size) in &existing {
                if index.pack_pos.contains_key(pack) || condemned.contains(pack) {
                    continue;
                }
                // An unreadable orphan is a torn or foreign object: not adoptable, gc's business.
                if let Ok(header) = self.read_pack_header(pack, *size).await {
                    index.add_pack(
                        *pack,
                        *size,
                        header.blobs,
                        header.created_ms,
                        PackSource::Adopted,
                        false,
                    );
                }
            }
        }
        index.existing = existing;
        Ok(index)
    }

    /// Reads one blob's plaintext (decrypted, decompressed, hash-checked).
    pub(crate) async fn read_blob(&self, index: &Index, id: &Id) -> Result<Vec<u8>> {
        let (pack, entry) = index.get(id).ok_or(RepoError::MissingBlob(*id))?;
        let key = key_for(RepositoryLayout::pack, &pack.id)?;
        let start = u64::from(entry.offset);
        let sealed = self
            .inner
            .store
            .get_range(&key, start..start + u64::from(entry.stored_len))
            .await
            .map_err(|e| RepoError::store(&key, e))?;
        open_blob(&self.inner.keys, entry, &sealed)
            .map_err(|e| RepoError::corrupt(format!("blob {id} in pack {}", pack.id), e))
    }

    pub async fn read_map(&self, index: &Index, id: &Id) -> Result<Vec<MapEntry>> {
        let plain = self.read_blob(index, id).await?;
        decode_map(&plain).map_err(|e| RepoError::corrupt(format!("map blob {id}"), e))
    }
}

/// Authenticates the sealed object stored at `key` (its associated data names that key)
/// and unframes its plaintext of at most `max` bytes (the `sealed_object` fuzz target's
/// entry point).
pub fn open_object(keys: &Keys, key: &str, sealed: &[u8], max: usize) -> std::result::Result<Vec<u8>, FormatError> {
    if sealed.len() as u64 > sealed_len(max) {
        return Err(FormatError::new(format!(
            "{} bytes, more than the {} its kind may be",
            sealed.len(),
            sealed_len(max)
        )));
    }
    let framed = keys.sealer().open(&repo_object_aad(key), sealed)?;
    format::unframe_at_most(&framed, max)
}

/// Authenticates, decompresses and hash-checks one sealed blob (for a blob in a frame, the
/// whole frame is opened: readers of many blobs use [`open_blob_in_place`]).
pub fn open_blob(keys: &Keys, entry: &BlobEntry, sealed: &[u8]) -> std::result::Result<Vec<u8>, String> {
    let mut sealed = sealed.to_vec();
    let mut scratch = BlobScratch::new()?;
    open_blob_in_place(keys, entry, &mut sealed, &mut scratch).map(<[u8]>::to_vec)
}

/// Bytes of a nonce: what tells one sealed frame from another.
const NONCE_LEN: usize = crate::crypto::SEAL_OVERHEAD - 16;

/// What [`open_blob_in_place`] reuses from one blob to the next: a zstd context and an
/// output buffer, so restore allocates nothing per block, and the plaintext of the last
/// frame opened, so the blobs of a frame read in a row cost one decryption and one
/// decompression.
pub struct BlobScratch {
    decompressor: zstd::bulk::Decompressor<'static>,
    out: Vec<u8>,
    /// The frame whose plaintext `out` holds: its nonce (random per seal, so it names one
    /// sealed frame) and length.
    frame: Option<([u8; NONCE_LEN], u32)>,
}

impl BlobScratch {
    pub fn new() -> std::result::Result<BlobScratch, String> {
        Ok(BlobScratch {
            decompressor: zstd::bulk::Decompressor::new().map_err(|e| format!("zstd: {e}"))?,
            out: Vec::new(),
            frame: None,
        })
    }

    /// Decompresses `payload` (a zstd frame that must hold exactly `raw_len` bytes) into `out`.
    fn decompress(&mut self, payload: &[u8], raw_len: usize) -> std::result::Result<(), String> {
        match zstd::zstd_safe::get_frame_content_size(payload) {
            Ok(Some(n)) if n != raw_len as u64 => return Err("zstd frame of another length".into()),
            Ok(_) => {}
            Err(_) => return Err("zstd: not a frame".into()),
        }
        self.out.clear();
        self.out.reserve(raw_len);
        self.decompressor
            .decompress_to_buffer(payload, &mut self.out)
            .map_err(|e| format!("zstd: {e}"))?;
        Ok(())
    }
}

/// [`open_blob`] without copies: decrypts `sealed` where it lies and decompresses into
/// `scratch`. Returns the plaintext, checked against its id. For a blob in a frame,
/// `sealed` is the whole frame; when `scratch` holds that frame already (the previous call
/// opened it: the same nonce and length), it is not opened again.
pub fn open_blob_in_place<'a>(
    keys: &Keys,
    entry: &BlobEntry,
    sealed: &'a mut [u8],
    scratch: &'a mut BlobScratch,
) -> std::result::Result<&'a [u8], String> {
    if sealed.len() != entry.stored_len as usize {
        return Err("short read".into());
    }
    let raw_len = entry.raw_len as usize;
    let zstd = entry.flags & FLAG_ZSTD != 0;
    let plain: &[u8] = if entry.in_frame() {
        let nonce: [u8; NONCE_LEN] = sealed
            .get(..NONCE_LEN)
            .and_then(|n| n.try_into().ok())
            .ok_or("shorter than nonce and tag")?;
        let frame = Some((nonce, entry.frame_len));
        if scratch.frame != frame {
            scratch.frame = None;
            let payload = keys
                .sealer()
                .open_in_place(&frame_aad(entry.frame_len), sealed)
                .map_err(|e| e.to_string())?;
            if zstd {
                scratch.decompress(payload, entry.frame_len as usize)?;
            } else {
                scratch.out.clear();
                scratch.out.extend_from_slice(payload);
            }
            if scratch.out.len() != entry.frame_len as usize {
                return Err("frame length mismatch".into());
            }
            scratch.frame = frame;
        }
        let start = entry.frame_offset as usize;
        scratch.out.get(start..start + raw_len).ok_or("blob beyond its frame")?
    } else {
        scratch.frame = None;
        let payload = keys
            .sealer()
            .open_in_place(&blob_aad(entry.kind, &entry.id), sealed)
            .map_err(|e| e.to_string())?;
        if zstd {
            scratch.decompress(payload, raw_len)?;
            &scratch.out
        } else {
            payload
        }
    };
    if plain.len() != raw_len {
        return Err("length mismatch".into());
    }
    if keys.blob_id(plain) != entry.id {
        return Err("content does not match its id".into());
    }
    Ok(plain)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PackSource {
    Indexed,
    /// Found in `data/` without an index entry, header read (a killed backup's upload).
    Adopted,
}

#[derive(Clone, Debug)]
pub struct PackInfo {
    pub id: Id,
    pub size: u64,
    pub entries: Vec<BlobEntry>,
    pub condemned: bool,
    /// When the pack was indexed (index file time) or created (header time, if adopted).
    pub time_ms: u64,
    pub source: PackSource,
}

/// The in-memory index: where every blob is.
#[derive(Default)]
pub struct Index {
    pub packs: Vec<PackInfo>,
    pack_pos: IdMap<u32>,
    /// Blob id -> (pack position, entry position).
    blobs: IdMap<(u32, u32)>,
    /// Index files loaded.
    pub files: Vec<Id>,
    /// Index entries dropped because their pack does not exist.
    pub missing_packs: usize,
    /// Packs present in the store, with sizes.
    pub existing: IdMap<u64>,
}

impl Index {
    pub(crate) fn add_pack(
        &mut self,
        id: Id,
        size: u64,
        entries: Vec<BlobEntry>,
        time_ms: u64,
        source: PackSource,
        condemned: bool,
    ) {
        if self.pack_pos.contains_key(&id) {
            return; // listed by two index files (a gc rewrite raced a load): same content
        }
        let pos = self.packs.len() as u32;
        for (i, e) in entries.iter().enumerate() {
            // Several copies of a blob: prefer one in a pack that is not condemned.
            let here = (pos, i as u32);
            match self.blobs.get(&e.id) {
                Some((p, _)) if !self.packs[*p as usize].condemned || condemned => {}
                _ => {
                    self.blobs.insert(e.id, here);
                }
            }
        }
        self.pack_pos.insert(id, pos);
        self.packs.push(PackInfo {
            id,
            size,
            entries,
            condemned,
            time_ms,
            source,
        });
    }

    /// Where a blob is (any copy, condemned or not: for reading).
    pub fn get(&self, id: &Id) -> Option<(&PackInfo, &BlobEntry)> {
        let (p, e) = *self.blobs.get(id)?;
        let pack = &self.packs[p as usize];
        Some((pack, &pack.entries[e as usize]))
    }

    /// The pack position of a blob a new snapshot may reference (not condemned).
    pub fn reusable(&self, id: &Id) -> Option<u32> {
        let (p, _) = *self.blobs.get(id)?;
        (!self.packs[p as usize].condemned).then_some(p)
    }

    /// The pack holding blob `id`, condemned or not.
    pub fn pack_of(&self, id: &Id) -> Option<Id> {
        let (p, _) = *self.blobs.get(id)?;
        Some(self.packs[p as usize].id)
    }

    pub fn pack_position(&self, id: &Id) -> Option<u32> {
        self.pack_pos.get(id).copied()
    }

    pub fn blob_count(&self) -> usize {
        self.blobs.len()
    }
}

/// Splits a snapshot into (offset, entry) pairs of its map blobs: the caller's walk helper.
pub fn entries_with_offsets(entries: &[MapEntry], start: u64) -> Vec<(u64, MapEntry)> {
    let mut offset = start;
    entries
        .iter()
        .map(|e| {
            let here = offset;
            offset += e.len();
            (here, *e)
        })
        .collect()
}
