//! Where a backup's resources are stored: a small trait, and its implementation on any
//! [`ObjectStore`] (layout in docs/resource-archive.md).
//!
//! Objects are content-addressed by a keyed BLAKE3 hash of their JSON, compressed with
//! zstd and sealed with AES-256-GCM through `arca_repo::crypto` (keys derived from a
//! 32-byte key passed in; the repository crate will take key management over). An object
//! unchanged since the previous backup has the same id and is not written again. Each
//! archive has an index split per namespace, so a restore of one namespace or one kind
//! reads that shard and those objects only.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::{Arc, Mutex, PoisonError};

use arca_core::ports::ObjectStore;
use arca_repo::crypto::{Keys, MasterKey, object_aad};
use async_trait::async_trait;
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{Error, ResourceType, Result, Selection, Skipped};

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
    /// Content id (hex): the object's key in the store.
    pub id: String,
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

/// An archive being written. `put_object` may be called concurrently.
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

const FORMAT: u32 = 1;
const ZSTD_LEVEL: i32 = 3;

/// [`ResourceArchive`] on an [`ObjectStore`], under `prefix`.
#[derive(Clone)]
pub struct ObjectStoreArchive {
    inner: Arc<Inner>,
}

struct Inner {
    store: Arc<dyn ObjectStore>,
    prefix: String,
    keys: Keys,
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
                prefix: prefix.trim_end_matches('/').to_string(),
                keys,
            }),
        })
    }
}

impl Inner {
    fn objects_prefix(&self) -> String {
        format!("{}/objects/", self.prefix)
    }

    fn object_key(&self, id: &str) -> String {
        format!("{}/objects/{}/{id}", self.prefix, &id[..2])
    }

    fn archive_key(&self, archive_id: &str, rest: &str) -> String {
        format!("{}/archives/{archive_id}/{rest}", self.prefix)
    }

    fn seal(&self, aad: &str, plain: &[u8]) -> Result<Vec<u8>> {
        let compressed = zstd::encode_all(plain, ZSTD_LEVEL).map_err(|e| Error::Format(format!("zstd: {e}")))?;
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
        zstd::decode_all(compressed.as_slice()).map_err(|e| Error::Format(format!("{aad}: zstd: {e}")))
    }

    async fn get_sealed_json<T: for<'de> Deserialize<'de>>(&self, key: &str, aad: &str) -> Result<T> {
        let sealed = self.store.get(key).await?;
        Ok(serde_json::from_slice(&self.open(aad, &sealed)?)?)
    }
}

#[async_trait]
impl ResourceArchive for ObjectStoreArchive {
    async fn begin(&self) -> Result<Box<dyn ArchiveWriter>> {
        // One listing tells which contents the store already holds: an object unchanged
        // since an earlier backup is then indexed without being written.
        let prefix = self.inner.objects_prefix();
        let known = self
            .inner
            .store
            .list(&prefix)
            .await?
            .into_iter()
            .filter_map(|meta| meta.key.rsplit('/').next().map(str::to_string))
            .collect();
        Ok(Box::new(Writer {
            inner: self.inner.clone(),
            archive_id: ulid::Ulid::new().to_string().to_lowercase(),
            state: Mutex::new(WriterState {
                known,
                shards: BTreeMap::new(),
                new_objects: 0,
                new_bytes: 0,
            }),
        }))
    }

    async fn open(&self, archive_id: &str) -> Result<Box<dyn ArchiveReader>> {
        if archive_id.is_empty() || !archive_id.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(Error::Invalid(format!("archive id {archive_id:?}")));
        }
        let key = self.inner.archive_key(archive_id, "manifest");
        let manifest: Manifest = self
            .inner
            .get_sealed_json(&key, &format!("resource-manifest/{archive_id}"))
            .await?;
        if manifest.format != FORMAT || manifest.archive_id != archive_id {
            return Err(Error::Format(format!(
                "{key}: not a format {FORMAT} manifest of {archive_id}"
            )));
        }
        Ok(Box::new(Reader {
            inner: self.inner.clone(),
            manifest,
        }))
    }
}

struct Writer {
    inner: Arc<Inner>,
    archive_id: String,
    state: Mutex<WriterState>,
}

struct WriterState {
    known: HashSet<String>,
    shards: BTreeMap<Option<String>, Vec<IndexEntry>>,
    new_objects: usize,
    new_bytes: u64,
}

impl Writer {
    fn state(&self) -> std::sync::MutexGuard<'_, WriterState> {
        // A panic elsewhere while holding the lock leaves consistent data (plain inserts).
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

fn shard_name(namespace: &Option<String>) -> String {
    match namespace {
        None => "cluster".to_string(),
        Some(ns) => format!("ns-{ns}"),
    }
}

#[async_trait]
impl ArchiveWriter for Writer {
    fn archive_id(&self) -> &str {
        &self.archive_id
    }

    async fn put_object(&self, entry: NewEntry, json: Vec<u8>) -> Result<bool> {
        let id = self.inner.keys.blob_id(&json).to_hex();
        let new = self.state().known.insert(id.clone());
        if new {
            let sealed = self.inner.seal(&format!("resource-object/{id}"), &json)?;
            let len = sealed.len() as u64;
            if let Err(e) = self
                .inner
                .store
                .put(&self.inner.object_key(&id), Bytes::from(sealed))
                .await
            {
                self.state().known.remove(&id);
                return Err(e.into());
            }
            let mut state = self.state();
            state.new_objects += 1;
            state.new_bytes += len;
        }
        let NewEntry {
            resource,
            namespace,
            name,
            uid,
        } = entry;
        self.state()
            .shards
            .entry(namespace.clone())
            .or_default()
            .push(IndexEntry {
                resource,
                namespace,
                name,
                uid,
                id,
            });
        Ok(new)
    }

    async fn finish(&self, mut manifest: Manifest) -> Result<Manifest> {
        let (shards, new_objects, new_bytes) = {
            let mut state = self.state();
            (std::mem::take(&mut state.shards), state.new_objects, state.new_bytes)
        };
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
            let key = self.inner.archive_key(&self.archive_id, &format!("index/{name}"));
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
        let key = self.inner.archive_key(&self.archive_id, "manifest");
        self.inner.store.put(&key, Bytes::from(sealed)).await?;
        Ok(manifest)
    }
}

struct Reader {
    inner: Arc<Inner>,
    manifest: Manifest,
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
        Ok(out)
    }

    async fn object(&self, entry: &IndexEntry) -> Result<Value> {
        if entry.id.len() != 64 || !entry.id.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(Error::Format(format!("object id {:?}", entry.id)));
        }
        self.inner
            .get_sealed_json(
                &self.inner.object_key(&entry.id),
                &format!("resource-object/{}", entry.id),
            )
            .await
    }
}

#[cfg(test)]
mod tests {
    use std::ops::Range;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use arca_core::ports::ObjectMeta;
    use arca_embedded::LocalFsObjectStore;
    use serde_json::json;

    use super::*;

    /// Counts the calls that reach the real store, to prove what a read does not touch.
    struct Counting {
        inner: LocalFsObjectStore,
        gets: AtomicUsize,
        puts: AtomicUsize,
    }

    #[async_trait]
    impl ObjectStore for Counting {
        async fn put(&self, key: &str, body: Bytes) -> arca_core::Result<()> {
            self.puts.fetch_add(1, Ordering::Relaxed);
            self.inner.put(key, body).await
        }
        async fn get(&self, key: &str) -> arca_core::Result<Bytes> {
            self.gets.fetch_add(1, Ordering::Relaxed);
            self.inner.get(key).await
        }
        async fn get_range(&self, key: &str, range: Range<u64>) -> arca_core::Result<Bytes> {
            self.inner.get_range(key, range).await
        }
        async fn list(&self, prefix: &str) -> arca_core::Result<Vec<ObjectMeta>> {
            self.inner.list(prefix).await
        }
        async fn delete(&self, key: &str) -> arca_core::Result<()> {
            self.inner.delete(key).await
        }
    }

    fn cm(ns: &str, name: &str, value: &str) -> (NewEntry, Vec<u8>) {
        let obj = json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"namespace": ns, "name": name, "uid": format!("uid-{ns}-{name}")}, "data": {"k": value}});
        (
            NewEntry {
                resource: ResourceType {
                    group: String::new(),
                    version: "v1".into(),
                    kind: "ConfigMap".into(),
                    plural: "configmaps".into(),
                    namespaced: true,
                },
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

    #[tokio::test]
    async fn round_trip_dedup_and_partial_reads() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Counting {
            inner: LocalFsObjectStore::new(dir.path()),
            gets: AtomicUsize::new(0),
            puts: AtomicUsize::new(0),
        });
        let archive = ObjectStoreArchive::new(store.clone(), "resources/", &[7; 32]).unwrap();
        let first = write(&archive, &[("a", "one", "1"), ("a", "two", "2"), ("b", "three", "3")]).await;
        assert_eq!((first.objects, first.new_objects), (3, 3));
        assert_eq!(first.shards.len(), 2);

        // The next backup: one object changed, two unchanged cost no write.
        let puts_before = store.puts.load(Ordering::Relaxed);
        let second = write(
            &archive,
            &[("a", "one", "1"), ("a", "two", "2-changed"), ("b", "three", "3")],
        )
        .await;
        assert_eq!((second.objects, second.new_objects), (3, 1));
        // One object, two index shards, one manifest.
        assert_eq!(store.puts.load(Ordering::Relaxed) - puts_before, 4);
        assert_ne!(first.archive_id, second.archive_id);

        // Reading one namespace reads the manifest, that shard and its objects only.
        let gets_before = store.gets.load(Ordering::Relaxed);
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
        assert_eq!(store.gets.load(Ordering::Relaxed) - gets_before, 3);

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
        let key = archive.inner.object_key(&entry.id);
        let mut body = store.get(&key).await.unwrap().to_vec();
        let last = body.len() - 1;
        body[last] ^= 1;
        store.put(&key, Bytes::from(body)).await.unwrap();
        assert!(reader.object(&entry).await.is_err());
        assert!(archive.open("../etc").await.is_err());
    }
}
