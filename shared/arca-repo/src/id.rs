//! 256-bit identifiers: blob ids (keyed hashes) and random ids of packs, indexes, snapshots.

use std::fmt;
use std::hash::{BuildHasher, Hash, Hasher};

use crate::error::{RepoError, Result};

pub const ID_LEN: usize = 32;

#[derive(Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Id(pub [u8; ID_LEN]);

impl Id {
    /// A fresh random id (packs, index files, snapshots, markers).
    pub fn random() -> Result<Id> {
        let mut bytes = [0u8; ID_LEN];
        aws_lc_rs::rand::fill(&mut bytes).map_err(|_| RepoError::Internal("system random source failed".into()))?;
        Ok(Id(bytes))
    }

    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    pub fn from_hex(s: &str) -> Result<Id> {
        let mut bytes = [0u8; ID_LEN];
        hex::decode_to_slice(s, &mut bytes)
            .map_err(|_| RepoError::Invalid(format!("{s:?} is not a 64-character hex id")))?;
        Ok(Id(bytes))
    }

    pub fn short(&self) -> String {
        hex::encode(&self.0[..4])
    }
}

impl fmt::Display for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Id({})", self.short())
    }
}

// Ids are uniformly distributed (keyed hashes or random), so 8 of their bytes are already a
// perfect hash; SipHash over 32 bytes would cost more than the table lookup.
impl Hash for Id {
    fn hash<H: Hasher>(&self, state: &mut H) {
        let mut word = [0u8; 8];
        word.copy_from_slice(&self.0[..8]);
        state.write_u64(u64::from_le_bytes(word));
    }
}

#[derive(Default, Clone, Copy)]
pub struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        // Only reached for non-Id keys; a simple FNV-style fold keeps it correct.
        for b in bytes {
            self.0 = (self.0 ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

#[derive(Default, Clone, Copy)]
pub struct BuildIdHasher;

impl BuildHasher for BuildIdHasher {
    type Hasher = IdHasher;
    fn build_hasher(&self) -> IdHasher {
        IdHasher(0)
    }
}

pub type IdMap<V> = std::collections::HashMap<Id, V, BuildIdHasher>;
pub type IdSet = std::collections::HashSet<Id, BuildIdHasher>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trips_and_rejects_garbage() {
        let id = Id::random().unwrap();
        assert_eq!(Id::from_hex(&id.to_hex()).unwrap(), id);
        assert!(Id::from_hex("zz").is_err());
        assert!(Id::from_hex(&id.to_hex()[1..]).is_err());
    }
}
