//! Hostile repository objects (issue #17): whoever can write to the repository's bucket but
//! does not hold its key. Objects larger than their kind may be are refused before they are
//! read; lengths and counts inside objects are checked against the format's limits; key
//! files cannot ask `open` for unbounded argon2 work; a sealed object moved to another key
//! (an old snapshot manifest over a newer one, an index or pack header over another) fails
//! authentication; a repository of format version 1 is refused by its version; and a second
//! `init` never replaces the first repository's config or keys.
#![allow(clippy::unwrap_used)] // tests fail loudly on any error

mod common;

use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use arca_core::model::layout::RepositoryLayout;
use arca_core::ports::{ObjectMeta, ObjectStore};
use arca_embedded::LocalFsObjectStore;
use arca_repo::crypto::{Keys, MasterKey, object_aad, repo_object_aad};
use arca_repo::format::{
    self, Config, MAX_MAP_ENTRIES, MAX_OBJECT_LEN, MAX_PACK_BLOBS, MAX_PACK_LEN, MAX_SNAPSHOT_LEN,
};
use arca_repo::keys::KeyWrapper;
use arca_repo::{
    GcOptions, Id, PassphraseWrapper, RepoError, Repository, RestoreOptions, VolumeBackup, backup_volume, gc, restore,
};
use async_trait::async_trait;
use bytes::Bytes;
use common::{noise, small_config, wrapper};

/// A local store that remembers the largest body it handed out, to show that an object is
/// refused without being read. `hide_config` makes `config` look absent to reads (an
/// `init` whose existence check ran before another init wrote it).
struct Recording {
    inner: LocalFsObjectStore,
    root: PathBuf,
    largest: AtomicU64,
    hide_config: bool,
}

impl Recording {
    fn new(root: PathBuf) -> Recording {
        Recording {
            inner: LocalFsObjectStore::new(&root),
            root,
            largest: AtomicU64::new(0),
            hide_config: false,
        }
    }

    fn saw(&self, body: &Bytes) {
        self.largest.fetch_max(body.len() as u64, Ordering::Relaxed);
    }

    fn hidden(&self, key: &str) -> arca_core::Result<()> {
        if self.hide_config && key == RepositoryLayout::CONFIG {
            return Err(arca_core::Error::NotFound { what: key.into() });
        }
        Ok(())
    }

    /// An object of `len` bytes that takes no disk space (a sparse file) at `key`.
    fn sparse(&self, key: &str, len: u64) {
        let path = self.root.join(key);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::File::create(&path).unwrap().set_len(len).unwrap();
    }

    fn remove(&self, key: &str) {
        std::fs::remove_file(self.root.join(key)).unwrap();
    }
}

#[async_trait]
impl ObjectStore for Recording {
    async fn put(&self, key: &str, body: Bytes) -> arca_core::Result<()> {
        self.inner.put(key, body).await
    }
    async fn put_if_absent(&self, key: &str, body: Bytes) -> arca_core::Result<bool> {
        self.inner.put_if_absent(key, body).await
    }
    async fn get(&self, key: &str) -> arca_core::Result<Bytes> {
        self.hidden(key)?;
        let body = self.inner.get(key).await?;
        self.saw(&body);
        Ok(body)
    }
    async fn get_at_most(&self, key: &str, max: u64) -> arca_core::Result<Option<Bytes>> {
        self.hidden(key)?;
        let body = self.inner.get_at_most(key, max).await?;
        if let Some(body) = &body {
            self.saw(body);
        }
        Ok(body)
    }
    async fn get_range(&self, key: &str, range: Range<u64>) -> arca_core::Result<Bytes> {
        let body = self.inner.get_range(key, range).await?;
        self.saw(&body);
        Ok(body)
    }
    async fn list(&self, prefix: &str) -> arca_core::Result<Vec<ObjectMeta>> {
        self.inner.list(prefix).await
    }
    async fn delete(&self, key: &str) -> arca_core::Result<()> {
        self.inner.delete(key).await
    }
}

/// A repository with two snapshots of one volume (the second newer, other content).
struct Fixture {
    store: Arc<Recording>,
    repo: Repository,
    older: (Id, Vec<u8>),
    newer: (Id, Vec<u8>),
}

async fn fixture(dir: &Path) -> Fixture {
    let store = Arc::new(Recording::new(dir.join("repo")));
    let as_dyn: Arc<dyn ObjectStore> = store.clone();
    let repo = Repository::init(as_dyn, "hostile", &wrapper(), Some(small_config()))
        .await
        .unwrap();
    let source = dir.join("disk.img");
    let first = noise(1, 300_000);
    std::fs::write(&source, &first).unwrap();
    let (a, _) = backup_volume(&repo, VolumeBackup::new("v", &source)).await.unwrap();
    let second = noise(2, 300_000);
    std::fs::write(&source, &second).unwrap();
    let (b, _) = backup_volume(&repo, VolumeBackup::new("v", &source)).await.unwrap();
    Fixture {
        store,
        repo,
        older: (a, first),
        newer: (b, second),
    }
}

async fn open(store: &Arc<Recording>) -> Result<Repository, RepoError> {
    let as_dyn: Arc<dyn ObjectStore> = store.clone();
    Repository::open(as_dyn, "hostile", &wrapper()).await
}

fn key_of(f: fn(&str) -> arca_core::Result<String>, id: &Id) -> String {
    f(&id.to_hex()).unwrap()
}

fn assert_too_large<T: std::fmt::Debug>(outcome: Result<T, RepoError>, key: &str) {
    match outcome {
        Err(RepoError::TooLarge { object, .. }) if object == key => {}
        other => panic!("{key}: expected a refusal as too large, got {other:?}"),
    }
}

#[tokio::test]
async fn objects_larger_than_their_kind_are_refused_before_they_are_read() {
    let dir = tempfile::tempdir().unwrap();
    let f = fixture(dir.path()).await;
    let store = &f.store;
    let stray = Id([0x11; 32]);
    // What a valid repository of this size reads at most in one piece (a pack header, an
    // index file): far below every limit below.
    let small = 1 << 20;

    let key = key_of(RepositoryLayout::snapshot, &stray);
    store.sparse(&key, MAX_SNAPSHOT_LEN as u64 * 2);
    store.largest.store(0, Ordering::Relaxed);
    assert_too_large(f.repo.snapshots().await, &key);
    assert_too_large(f.repo.find_snapshot("latest", None).await, &key);
    assert!(store.largest.load(Ordering::Relaxed) < small);
    store.remove(&key);

    for key in [
        key_of(RepositoryLayout::index, &stray),
        key_of(RepositoryLayout::gc_marker, &stray),
    ] {
        store.sparse(&key, MAX_OBJECT_LEN as u64 + 1024);
        store.largest.store(0, Ordering::Relaxed);
        assert_too_large(f.repo.load_index(false).await.map(|_| ()), &key);
        assert!(store.largest.load(Ordering::Relaxed) < small, "{key}");
        store.remove(&key);
    }

    // A key file is read before anything is authenticated: the first thing `open` meets.
    let key = key_of(RepositoryLayout::key, &Id([0; 32]));
    store.sparse(&key, 1 << 30);
    store.largest.store(0, Ordering::Relaxed);
    assert_too_large(open(store).await, &key);
    assert!(store.largest.load(Ordering::Relaxed) < small);
    store.remove(&key);

    let config = store.inner.get(RepositoryLayout::CONFIG).await.unwrap();
    store.sparse(RepositoryLayout::CONFIG, 1 << 30);
    store.largest.store(0, Ordering::Relaxed);
    assert_too_large(open(store).await, RepositoryLayout::CONFIG);
    assert!(store.largest.load(Ordering::Relaxed) < small);
    store.put(RepositoryLayout::CONFIG, config).await.unwrap();

    // A pack beyond the largest a writer makes: its header is not even looked for.
    let key = key_of(RepositoryLayout::pack, &stray);
    store.sparse(&key, MAX_PACK_LEN + 1);
    store.largest.store(0, Ordering::Relaxed);
    assert_too_large(f.repo.read_pack_header(&stray, MAX_PACK_LEN + 1).await, &key);
    let index = f.repo.load_index(true).await.unwrap();
    assert!(
        index.pack_position(&stray).is_none(),
        "an oversized pack is not adopted"
    );
    assert!(store.largest.load(Ordering::Relaxed) < small);
    store.remove(&key);

    // A huge lock is not read; gc treats it as held rather than run beside its holder.
    store.sparse(RepositoryLayout::GC_LOCK, 1 << 30);
    store.largest.store(0, Ordering::Relaxed);
    let err = gc(&f.repo, &GcOptions::default()).await.unwrap_err();
    assert!(
        matches!(&err, RepoError::Concurrent(m) if m.contains("locks/gc")),
        "{err}"
    );
    assert!(store.largest.load(Ordering::Relaxed) < small);
    store.remove(RepositoryLayout::GC_LOCK);

    // Everything is readable again.
    let repo = open(store).await.unwrap();
    assert_eq!(repo.snapshots().await.unwrap().len(), 2);
}

#[tokio::test]
async fn a_pack_trailer_claiming_a_huge_header_is_refused_without_reading_it() {
    let dir = tempfile::tempdir().unwrap();
    let f = fixture(dir.path()).await;
    let stray = Id([0x22; 32]);
    let key = key_of(RepositoryLayout::pack, &stray);
    let size: u64 = 64 << 20;
    f.store.sparse(&key, size);
    // The trailer claims that everything before it is the sealed header.
    let path = f.store.root.join(&key);
    let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    std::os::unix::fs::FileExt::write_at(&file, &(size as u32 - 4).to_le_bytes(), size - 4).unwrap();
    f.store.largest.store(0, Ordering::Relaxed);
    let err = f.repo.read_pack_header(&stray, size).await.unwrap_err();
    assert!(
        matches!(&err, RepoError::Corrupt { object, detail } if *object == key && detail.contains("more than")),
        "{err}"
    );
    assert!(f.store.largest.load(Ordering::Relaxed) < 1024);
}

/// Counts and lengths inside objects are held to the format's limits even when the input
/// is long enough to back them (what a sealed object's writer, holding the key, could
/// still get wrong or be made to write).
#[test]
fn counts_and_lengths_above_the_format_limits_are_refused() {
    let entry = |i: usize| format::BlobEntry {
        kind: 0,
        flags: 0,
        id: Id([(i % 251) as u8; 32]),
        offset: 0,
        stored_len: 64,
        raw_len: 64,
        ..format::BlobEntry::default()
    };
    let header = format::PackHeader {
        created_ms: 1,
        blobs: (0..=MAX_PACK_BLOBS).map(entry).collect(),
    };
    // Mapped to `()`: a failure would otherwise print all 2^18 entries.
    let err = format::decode_pack_header(&format::encode_pack_header(&header))
        .map(|_| ())
        .unwrap_err();
    assert!(err.to_string().contains("the format allows"), "{err}");

    let index = format::IndexFile {
        created_ms: 1,
        packs: vec![(Id([1; 32]), header.blobs)],
    };
    let err = format::decode_index(&format::encode_index(&index))
        .map(|_| ())
        .unwrap_err();
    assert!(err.to_string().contains("the format allows"), "{err}");

    let map = vec![format::MapEntry::Zero(1); MAX_MAP_ENTRIES + 1];
    let err = format::decode_map(&format::encode_map(&map)).map(|_| ()).unwrap_err();
    assert!(err.to_string().contains("the format allows"), "{err}");

    // One blob that claims 4 GiB of plaintext, or more stored bytes than its plaintext.
    for (stored_len, raw_len) in [(64, u32::MAX), (1 << 20, 64)] {
        let header = format::PackHeader {
            created_ms: 1,
            blobs: vec![format::BlobEntry {
                stored_len,
                raw_len,
                ..entry(0)
            }],
        };
        assert!(format::decode_pack_header(&format::encode_pack_header(&header)).is_err());
    }

    // A frame may not claim more than its kind's plaintext.
    let framed = format::frame(&vec![b'x'; format::MAX_CONFIG_LEN + 1], 1);
    let err = format::unframe_at_most(&framed, format::MAX_CONFIG_LEN).unwrap_err();
    assert!(err.to_string().contains("more than"), "{err}");
}

/// Key files are not sealed: anyone who can write to the bucket can add one, and `open`
/// runs the derivation a key file names before knowing whether the passphrase fits.
#[tokio::test]
async fn a_key_file_asking_for_huge_argon2_costs_is_refused_quickly_naming_the_parameter() {
    let dir = tempfile::tempdir().unwrap();
    let f = fixture(dir.path()).await;
    // Listed before the real key file, so `open` meets it first.
    let key = key_of(RepositoryLayout::key, &Id([0; 32]));
    for (kdf, named) in [
        (
            r#""memory_kib":4294967295,"iterations":3,"parallelism":1"#,
            "memory_kib",
        ),
        (
            r#""memory_kib":65536,"iterations":4294967295,"parallelism":1"#,
            "iterations",
        ),
        (
            r#""memory_kib":65536,"iterations":3,"parallelism":16777215"#,
            "parallelism",
        ),
    ] {
        let json = format!(
            r#"{{"version":1,"kind":"passphrase","created_ms":0,"kdf":{{"algorithm":"argon2id",{kdf}}},"salt":"AAAAAAAAAAAAAAAAAAAAAA==","wrapped":"AA=="}}"#
        );
        f.store.put(&key, Bytes::from(json)).await.unwrap();
        let started = Instant::now();
        let err = open(&f.store).await.unwrap_err();
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "took {:?}",
            started.elapsed()
        );
        let text = err.to_string();
        assert!(
            matches!(&err, RepoError::Corrupt { object, .. } if *object == key) && text.contains(named),
            "{text}"
        );
    }
    f.store.delete(&key).await.unwrap();
    open(&f.store).await.unwrap();
}

/// Snapshot manifests are sealed under their own key: copying an older manifest over a
/// newer one (a rollback) or under a new id no longer passes for a snapshot.
#[tokio::test]
async fn a_snapshot_manifest_copied_to_another_id_fails_authentication() {
    let dir = tempfile::tempdir().unwrap();
    let f = fixture(dir.path()).await;
    let older = key_of(RepositoryLayout::snapshot, &f.older.0);
    let newer = key_of(RepositoryLayout::snapshot, &f.newer.0);
    let original = f.store.get(&newer).await.unwrap();
    let old_bytes = f.store.get(&older).await.unwrap();

    f.store.put(&newer, old_bytes.clone()).await.unwrap();
    let authentication_of = |err: RepoError, key: &str| {
        assert!(
            matches!(&err, RepoError::Corrupt { object, detail } if object == key && detail.contains("authentication")),
            "{err}"
        );
    };
    authentication_of(f.repo.snapshots().await.unwrap_err(), &newer);
    authentication_of(f.repo.find_snapshot("latest", Some("v")).await.unwrap_err(), &newer);
    authentication_of(
        f.repo.find_snapshot(&f.newer.0.to_hex(), None).await.unwrap_err(),
        &newer,
    );
    f.store.put(&newer, original).await.unwrap();

    let copy = key_of(RepositoryLayout::snapshot, &Id([0xee; 32]));
    f.store.put(&copy, old_bytes).await.unwrap();
    authentication_of(f.repo.snapshots().await.unwrap_err(), &copy);
    f.store.delete(&copy).await.unwrap();

    // Put back, the newest snapshot restores its own bytes.
    let (id, snap) = f.repo.find_snapshot("latest", Some("v")).await.unwrap();
    assert_eq!(id, f.newer.0);
    let target = dir.path().join("restored");
    restore(&f.repo, &id, &snap, &target, RestoreOptions::default())
        .await
        .unwrap();
    assert!(std::fs::read(&target).unwrap() == f.newer.1);
}

/// Index files and pack headers are sealed under their own key too.
#[tokio::test]
async fn an_index_file_or_a_pack_copied_to_another_id_fails_authentication() {
    let dir = tempfile::tempdir().unwrap();
    let f = fixture(dir.path()).await;

    let indexes = f.store.list(RepositoryLayout::INDEXES).await.unwrap();
    assert!(indexes.len() >= 2, "{indexes:?}");
    let (from, to) = (&indexes[0].key, &indexes[1].key);
    let original = f.store.get(to).await.unwrap();
    f.store.put(to, f.store.get(from).await.unwrap()).await.unwrap();
    let err = f.repo.load_index(false).await.map(|_| ()).unwrap_err();
    assert!(
        matches!(&err, RepoError::Corrupt { object, detail } if object == to && detail.contains("authentication")),
        "{err}"
    );
    f.store.put(to, original).await.unwrap();

    let packs = f.store.list(RepositoryLayout::PACKS).await.unwrap();
    assert!(packs.len() >= 2, "{packs:?}");
    let from = &packs[0];
    let to = RepositoryLayout::id_of(&packs[1].key)
        .map(|s| Id::from_hex(s).unwrap())
        .unwrap();
    let original = f.store.get(&packs[1].key).await.unwrap();
    f.store
        .put(&packs[1].key, f.store.get(&from.key).await.unwrap())
        .await
        .unwrap();
    let err = f.repo.read_pack_header(&to, from.size).await.unwrap_err();
    assert!(
        matches!(&err, RepoError::Corrupt { object, detail } if *object == packs[1].key && detail.contains("authentication")),
        "{err}"
    );
    // The same copy under a new id is not adopted as an orphan pack either.
    f.store.put(&packs[1].key, original).await.unwrap();
    let stray = Id([0x33; 32]);
    f.store
        .put(
            &key_of(RepositoryLayout::pack, &stray),
            f.store.get(&from.key).await.unwrap(),
        )
        .await
        .unwrap();
    assert!(f.repo.read_pack_header(&stray, from.size).await.is_err());
    let index = f.repo.load_index(true).await.unwrap();
    assert!(index.pack_position(&stray).is_none(), "a copied pack is not adopted");
}

/// Writes a repository whose config says `version`, sealed with `aad`: version 1 sealed it
/// under its kind's name (`arca/v1/config`), version 2 under its key.
async fn old_repository(store: &Arc<dyn ObjectStore>, version: u32, aad: &[u8]) {
    let master = MasterKey::generate().unwrap();
    let key_file = wrapper().wrap(&master, 0).await.unwrap();
    store
        .put(
            &key_of(RepositoryLayout::key, &Id([4; 32])),
            Bytes::from(serde_json::to_vec(&key_file).unwrap()),
        )
        .await
        .unwrap();
    let mut config = Config::new(&Id([5; 32]));
    config.version = version;
    let framed = format::frame(&serde_json::to_vec(&config).unwrap(), 3);
    let sealed = Keys::derive(&master).unwrap().sealer().seal(aad, &framed).unwrap();
    store.put(RepositoryLayout::CONFIG, Bytes::from(sealed)).await.unwrap();
}

#[tokio::test]
async fn a_repository_of_another_format_version_is_refused_by_its_version() {
    for (version, aad) in [(1, object_aad("config")), (4, repo_object_aad("config"))] {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn ObjectStore> = Arc::new(LocalFsObjectStore::new(dir.path().join("repo")));
        old_repository(&store, version, &aad).await;
        let err = Repository::open(store.clone(), "old", &wrapper()).await.unwrap_err();
        assert!(matches!(err, RepoError::UnsupportedVersion(v) if v == version), "{err}");
        let text = err.to_string();
        assert!(
            text.contains(&format!("version {version}"))
                && text.contains(&format!("reads versions 2 to {}", format::FORMAT_VERSION)),
            "{text}"
        );
        // Nor is it initialised over.
        let config = store.get(RepositoryLayout::CONFIG).await.unwrap();
        let err = Repository::init(store.clone(), "old", &wrapper(), None)
            .await
            .unwrap_err();
        assert!(matches!(err, RepoError::AlreadyExists(_)), "{err}");
        assert_eq!(store.get(RepositoryLayout::CONFIG).await.unwrap(), config);
    }
}

/// `init` writes the config with a conditional write: a second init, even one whose
/// existence check missed the first repository (it ran before the first config landed),
/// is refused, leaves the first config and key file as they were and removes its own key.
#[tokio::test]
async fn a_second_init_never_replaces_the_first_repository() {
    let dir = tempfile::tempdir().unwrap();
    let f = fixture(dir.path()).await;
    let config = f.store.get(RepositoryLayout::CONFIG).await.unwrap();
    let keys = f.store.list(RepositoryLayout::KEYS).await.unwrap();
    let other = PassphraseWrapper::with_params(
        "another passphrase",
        arca_repo::KdfParams {
            memory_kib: 64,
            iterations: 1,
            ..arca_repo::KdfParams::default()
        },
    );

    let as_dyn: Arc<dyn ObjectStore> = f.store.clone();
    let err = Repository::init(as_dyn, "hostile", &other, None).await.unwrap_err();
    assert!(matches!(err, RepoError::AlreadyExists(_)), "{err}");

    let blind = Arc::new(Recording {
        hide_config: true,
        ..Recording::new(f.store.root.clone())
    });
    let as_dyn: Arc<dyn ObjectStore> = blind.clone();
    let err = Repository::init(as_dyn, "hostile", &other, None).await.unwrap_err();
    assert!(matches!(err, RepoError::AlreadyExists(_)), "{err}");

    assert_eq!(f.store.get(RepositoryLayout::CONFIG).await.unwrap(), config);
    assert_eq!(f.store.list(RepositoryLayout::KEYS).await.unwrap(), keys);
    let repo = open(&f.store).await.unwrap();
    let (id, snap) = repo.find_snapshot("latest", Some("v")).await.unwrap();
    let target = dir.path().join("restored");
    restore(&repo, &id, &snap, &target, RestoreOptions::default())
        .await
        .unwrap();
    assert!(std::fs::read(&target).unwrap() == f.newer.1);
}
