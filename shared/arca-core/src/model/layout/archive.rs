//! Keys inside one resource archive store (`<cluster prefix>resources-<key id>`): the
//! sealed packs every archive of the store shares and their indexes, one folder per
//! archive (its manifest, written last, and its index files), and gc's markers and lock.

use super::ARCHIVES;

/// The manifest of an archive: written last, deleted first, so an archive without one is
/// incomplete and never opened.
const MANIFEST: &str = "manifest";

/// The keys of the resource archive store at `store` (a key prefix, without a trailing `/`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ArchiveLayout {
    store: String,
}

impl ArchiveLayout {
    pub fn new(store: &str) -> Self {
        ArchiveLayout {
            store: store.trim_end_matches('/').to_string(),
        }
    }

    /// The store's own prefix.
    pub fn store(&self) -> &str {
        &self.store
    }

    /// An archive's folder without the trailing `/`: a recovery point's location.
    pub fn archive(&self, archive_id: &str) -> String {
        format!("{}/{ARCHIVES}/{archive_id}", self.store)
    }

    /// A file of an archive (its manifest or an index file).
    pub fn archive_file(&self, archive_id: &str, file: &str) -> String {
        format!("{}/{file}", self.archive(archive_id))
    }

    pub fn manifest(&self, archive_id: &str) -> String {
        self.archive_file(archive_id, MANIFEST)
    }

    /// One of an archive's index files (one per namespace or kind: the archive's choice).
    pub fn index_file(&self, archive_id: &str, name: &str) -> String {
        format!("{}/index/{name}", self.archive(archive_id))
    }

    /// The prefix to list one archive's files.
    pub fn archive_files(&self, archive_id: &str) -> String {
        format!("{}/", self.archive(archive_id))
    }

    /// The prefix to list every archive's files.
    pub fn archives(&self) -> String {
        format!("{}/{ARCHIVES}/", self.store)
    }

    /// The archive whose manifest `key` is (a key listed under [`ArchiveLayout::archives`]).
    pub fn archive_of_manifest<'k>(&self, key: &'k str) -> Option<&'k str> {
        key.strip_prefix(&self.archives())?
            .strip_suffix(MANIFEST)?
            .strip_suffix('/')
            .filter(|id| !id.is_empty() && !id.contains('/'))
    }

    pub fn pack(&self, pack: &str) -> String {
        format!("{}{pack}", self.packs())
    }

    pub fn packs(&self) -> String {
        format!("{}/packs/", self.store)
    }

    pub fn pack_index(&self, id: &str) -> String {
        format!("{}{id}", self.pack_indexes())
    }

    pub fn pack_indexes(&self) -> String {
        format!("{}/pack-index/", self.store)
    }

    /// An object of the first format (one sealed object per key, before packs), spread
    /// over 256 folders by its id's first two characters; still read, never written.
    /// `None` for an id too short to be one.
    pub fn legacy_object(&self, id: &str) -> Option<String> {
        let fan = id.get(..2)?;
        Some(format!("{}/objects/{fan}/{id}", self.store))
    }

    pub fn gc_marker(&self, id: &str) -> String {
        format!("{}{id}", self.gc_markers())
    }

    pub fn gc_markers(&self) -> String {
        format!("{}/gc/", self.store)
    }

    /// The one gc lock, taken with a conditional write.
    pub fn gc_lock(&self) -> String {
        format!("{}/locks/gc", self.store)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::layout::{archive_location, split_location};

    #[test]
    fn keys_have_their_documented_shapes() {
        let l = ArchiveLayout::new("o/c/resources-g1-0123abcd/");
        assert_eq!(l.store(), "o/c/resources-g1-0123abcd");
        assert_eq!(l.archive("01abc"), "o/c/resources-g1-0123abcd/archives/01abc");
        assert_eq!(l.manifest("01abc"), "o/c/resources-g1-0123abcd/archives/01abc/manifest");
        assert_eq!(
            l.archive_file("01abc", "i1"),
            "o/c/resources-g1-0123abcd/archives/01abc/i1"
        );
        assert_eq!(
            l.index_file("01abc", "ns-a"),
            "o/c/resources-g1-0123abcd/archives/01abc/index/ns-a"
        );
        assert!(l.manifest("01abc").starts_with(&l.archive_files("01abc")));
        assert!(l.index_file("01abc", "ns-a").starts_with(&l.archive_files("01abc")));
        assert!(l.archive_files("01abc").starts_with(&l.archives()));
        assert_eq!(l.pack("p1"), "o/c/resources-g1-0123abcd/packs/p1");
        assert!(l.pack("p1").starts_with(&l.packs()));
        assert_eq!(l.pack_index("x"), "o/c/resources-g1-0123abcd/pack-index/x");
        assert!(l.pack_index("x").starts_with(&l.pack_indexes()));
        assert_eq!(l.gc_marker("m"), "o/c/resources-g1-0123abcd/gc/m");
        assert!(l.gc_marker("m").starts_with(&l.gc_markers()));
        assert_eq!(l.gc_lock(), "o/c/resources-g1-0123abcd/locks/gc");
        assert_eq!(
            l.legacy_object("abcdef").as_deref(),
            Some("o/c/resources-g1-0123abcd/objects/ab/abcdef")
        );
        assert_eq!(l.legacy_object("a"), None);
    }

    #[test]
    fn a_location_is_an_archive_of_its_store() {
        let l = ArchiveLayout::new("o/c/resources");
        assert_eq!(archive_location(l.store(), "01abc"), l.archive("01abc"));
        assert_eq!(split_location(&l.archive("01abc")), Some((l.store(), "01abc")));
    }

    #[test]
    fn only_manifests_name_archives() {
        let l = ArchiveLayout::new("s");
        assert_eq!(l.archive_of_manifest(&l.manifest("01abc")), Some("01abc"));
        assert_eq!(l.archive_of_manifest(&l.archive_file("01abc", "i1")), None);
        assert_eq!(l.archive_of_manifest("s/archives/manifest"), None);
        assert_eq!(l.archive_of_manifest("s/archives/a/b/manifest"), None);
        assert_eq!(l.archive_of_manifest("t/archives/01abc/manifest"), None);
    }
}
