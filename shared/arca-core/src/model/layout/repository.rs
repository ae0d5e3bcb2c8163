//! Keys inside one volume repository (`arca_repo`'s format), relative to its root.

use crate::{Error, Result};

/// Content ids are lowercase hex (a 256-bit keyed hash: 64 characters).
const ID_LEN: usize = 64;

/// Key layout of one repository, relative to the repository's root in its store.
///
/// Pack files are spread over 256 directories by the first byte of their id, which
/// keeps local-filesystem directories small and S3 prefixes evenly loaded.
pub struct RepositoryLayout;

impl RepositoryLayout {
    /// The repository's configuration (format version, wrapped data key).
    pub const CONFIG: &'static str = "config";

    pub fn pack(id: &str) -> Result<String> {
        let id = checked_id(id)?;
        Ok(format!("data/{}/{id}", &id[..2]))
    }

    pub fn index(id: &str) -> Result<String> {
        Ok(format!("index/{}", checked_id(id)?))
    }

    pub fn snapshot(id: &str) -> Result<String> {
        Ok(format!("snapshots/{}", checked_id(id)?))
    }

    /// A wrapping of the master key (passphrase or KMS).
    pub fn key(id: &str) -> Result<String> {
        Ok(format!("keys/{}", checked_id(id)?))
    }

    /// A garbage-collection marker: packs condemned at a time.
    pub fn gc_marker(id: &str) -> Result<String> {
        Ok(format!("gc/{}", checked_id(id)?))
    }

    /// The lock object of a running garbage collection.
    pub fn gc_lock(id: &str) -> Result<String> {
        Ok(format!("locks/{}", checked_id(id)?))
    }

    /// The id at the end of a listed key (`data/ab/<id>` -> `<id>`), if it is a well-formed one.
    pub fn id_of(key: &str) -> Option<&str> {
        let id = key.rsplit('/').next()?;
        checked_id(id).ok()
    }

    /// Prefixes to list each kind of object.
    pub const PACKS: &'static str = "data/";
    pub const INDEXES: &'static str = "index/";
    pub const SNAPSHOTS: &'static str = "snapshots/";
    pub const KEYS: &'static str = "keys/";
    pub const GC_MARKERS: &'static str = "gc/";
    pub const GC_LOCKS: &'static str = "locks/";
    /// The one gc lock, taken with a conditional write.
    pub const GC_LOCK: &'static str = "locks/gc";
}

fn checked_id(id: &str) -> Result<&str> {
    if id.len() == ID_LEN && id.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
        Ok(id)
    } else {
        Err(Error::invalid(
            "id",
            format!("expected {ID_LEN} lowercase hex characters, got {id:?}"),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "ab0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcd";

    #[test]
    fn keys_have_their_documented_shapes() {
        assert_eq!(RepositoryLayout::pack(ID).unwrap(), format!("data/ab/{ID}"));
        assert_eq!(RepositoryLayout::index(ID).unwrap(), format!("index/{ID}"));
        assert_eq!(RepositoryLayout::snapshot(ID).unwrap(), format!("snapshots/{ID}"));
        assert!(RepositoryLayout::pack(ID).unwrap().starts_with(RepositoryLayout::PACKS));
        assert_eq!(RepositoryLayout::key(ID).unwrap(), format!("keys/{ID}"));
        assert_eq!(RepositoryLayout::gc_marker(ID).unwrap(), format!("gc/{ID}"));
        assert_eq!(RepositoryLayout::gc_lock(ID).unwrap(), format!("locks/{ID}"));
        assert_eq!(RepositoryLayout::id_of(&RepositoryLayout::pack(ID).unwrap()), Some(ID));
        assert_eq!(RepositoryLayout::id_of("data/ab/x.tmp"), None);
    }

    #[test]
    fn ids_that_could_escape_or_collide_are_rejected() {
        for bad in ["", "../../etc/passwd", &ID.to_uppercase(), &ID[1..], &format!("{ID}0")] {
            assert!(RepositoryLayout::pack(bad).is_err(), "{bad:?}");
        }
    }
}
