//! Keys and the two primitives built on them: keyed BLAKE3 blob ids and AES-256-GCM sealing
//! (format doc, section 2). Secret material never appears in `Debug` output and is zeroed
//! on drop.

use std::fmt;

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use zeroize::Zeroizing;

use crate::error::{FormatError, RepoError, Result};
use crate::id::Id;

pub const KEY_LEN: usize = 32;
/// Bytes a sealed object is longer than its plaintext: nonce plus tag.
pub const SEAL_OVERHEAD: usize = NONCE_LEN + 16;

/// The repository's master key: 32 random bytes from which every other key derives.
pub struct MasterKey(Zeroizing<[u8; KEY_LEN]>);

impl MasterKey {
    pub fn generate() -> Result<MasterKey> {
        let mut bytes = Zeroizing::new([0u8; KEY_LEN]);
        aws_lc_rs::rand::fill(bytes.as_mut()).map_err(|_| RepoError::Internal("system random source failed".into()))?;
        Ok(MasterKey(bytes))
    }

    pub fn from_bytes(bytes: &[u8]) -> Option<MasterKey> {
        let array: [u8; KEY_LEN] = bytes.try_into().ok()?;
        Some(MasterKey(Zeroizing::new(array)))
    }

    pub fn as_bytes(&self) -> &[u8; KEY_LEN] {
        &self.0
    }
}

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MasterKey(<redacted>)")
    }
}

/// An AES-256-GCM key with random nonces. Used for the data key and for key wrapping.
pub struct SealKey(LessSafeKey);

impl fmt::Debug for SealKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SealKey(<redacted>)")
    }
}

impl SealKey {
    pub fn new(key: &[u8; KEY_LEN]) -> Result<SealKey> {
        let unbound =
            UnboundKey::new(&AES_256_GCM, key).map_err(|_| RepoError::Internal("AES-256-GCM key rejected".into()))?;
        Ok(SealKey(LessSafeKey::new(unbound)))
    }

    /// Appends `nonce ‖ seal(plaintext) ‖ tag` to `out`.
    pub fn seal_into(&self, aad: &[u8], plaintext: &[u8], out: &mut Vec<u8>) -> Result<()> {
        let start = out.len();
        let mut nonce = [0u8; NONCE_LEN];
        aws_lc_rs::rand::fill(&mut nonce).map_err(|_| RepoError::Internal("system random source failed".into()))?;
        out.reserve(plaintext.len() + SEAL_OVERHEAD);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(plaintext);
        let tag = self
            .0
            .seal_in_place_separate_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(aad),
                &mut out[start + NONCE_LEN..],
            )
            .map_err(|_| RepoError::Internal("sealing failed".into()))?;
        out.extend_from_slice(tag.as_ref());
        Ok(())
    }

    pub fn seal(&self, aad: &[u8], plaintext: &[u8]) -> Result<Vec<u8>> {
        let mut out = Vec::with_capacity(plaintext.len() + SEAL_OVERHEAD);
        self.seal_into(aad, plaintext, &mut out)?;
        Ok(out)
    }

    /// Authenticates and decrypts `nonce ‖ ciphertext ‖ tag`.
    pub fn open(&self, aad: &[u8], sealed: &[u8]) -> Result<Vec<u8>, FormatError> {
        if sealed.len() < SEAL_OVERHEAD {
            return Err(FormatError::new("shorter than nonce and tag"));
        }
        let (nonce, body) = sealed.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| FormatError::new("bad nonce"))?;
        let mut buf = body.to_vec();
        let len = self
            .0
            .open_in_place(nonce, Aad::from(aad), &mut buf)
            .map_err(|_| FormatError::new("authentication failed"))?
            .len();
        buf.truncate(len);
        Ok(buf)
    }

    /// Authenticates and decrypts `nonce ‖ ciphertext ‖ tag` where it lies; returns the
    /// plaintext, a part of `sealed` (restore decrypts fetched pack ranges without copying).
    pub fn open_in_place<'a>(&self, aad: &[u8], sealed: &'a mut [u8]) -> Result<&'a mut [u8], FormatError> {
        if sealed.len() < SEAL_OVERHEAD {
            return Err(FormatError::new("shorter than nonce and tag"));
        }
        let (nonce, body) = sealed.split_at_mut(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| FormatError::new("bad nonce"))?;
        self.0
            .open_in_place(nonce, Aad::from(aad), body)
            .map_err(|_| FormatError::new("authentication failed"))
    }
}

/// The keys of an open repository: sealing and blob ids, both derived from the master key.
pub struct Keys {
    seal: SealKey,
    id_key: Zeroizing<[u8; KEY_LEN]>,
}

impl fmt::Debug for Keys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Keys(<redacted>)")
    }
}

impl Keys {
    pub fn derive(master: &MasterKey) -> Result<Keys> {
        let aead = Zeroizing::new(blake3::derive_key("arca repository v1 aead", master.as_bytes()));
        let id_key = Zeroizing::new(blake3::derive_key("arca repository v1 blob id", master.as_bytes()));
        Ok(Keys {
            seal: SealKey::new(&aead)?,
            id_key,
        })
    }

    /// The blob id of `plaintext`: keyed BLAKE3, so ids say nothing outside this repository.
    pub fn blob_id(&self, plaintext: &[u8]) -> Id {
        Id(*blake3::keyed_hash(&self.id_key, plaintext).as_bytes())
    }

    pub fn sealer(&self) -> &SealKey {
        &self.seal
    }
}

/// Associated data of a blob: its kind and id, so a blob cannot pass for another.
pub fn blob_aad(kind: u8, id: &Id) -> [u8; 33] {
    let mut aad = [0u8; 33];
    aad[0] = kind;
    aad[1..].copy_from_slice(&id.0);
    aad
}

/// Associated data of a frame of data blobs (format version 3) of `frame_len` plaintext
/// bytes. A frame holds several blobs, so it cannot name one id as a blob's seal does: each
/// blob read from it is checked against its keyed-hash id instead, which no one without
/// the key can forge. The length binds the seal to the entries that describe it.
pub fn frame_aad(frame_len: u32) -> [u8; 18] {
    let mut aad = [0u8; 18];
    aad[0] = crate::format::KIND_DATA;
    aad[1..14].copy_from_slice(b"arca/v3/frame");
    aad[14..].copy_from_slice(&frame_len.to_le_bytes());
    aad
}

/// Associated data naming a kind of object: the resource archive's, and the repository's
/// in format version 1 (where `open` recognises an old config by it).
pub fn object_aad(kind: &str) -> Vec<u8> {
    format!("arca/v1/{kind}").into_bytes()
}

/// Associated data of a repository object other than a blob (format version 2): its object
/// key (`config`, `snapshots/<id>`, `index/<id>`, `gc/<id>`, and a pack's key for the
/// pack's header). A ciphertext copied under another key, such as an old snapshot
/// manifest over a newer one's, fails authentication.
pub fn repo_object_aad(key: &str) -> Vec<u8> {
    format!("arca/v2/{key}").into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealing_round_trips_and_detects_tampering_and_wrong_context() {
        let keys = Keys::derive(&MasterKey::generate().unwrap()).unwrap();
        let sealed = keys.sealer().seal(b"a", b"hello").unwrap();
        assert_eq!(keys.sealer().open(b"a", &sealed).unwrap(), b"hello");
        assert!(keys.sealer().open(b"b", &sealed).is_err());
        let mut flipped = sealed.clone();
        flipped[NONCE_LEN + 1] ^= 1;
        assert!(keys.sealer().open(b"a", &flipped).is_err());
        let other = Keys::derive(&MasterKey::generate().unwrap()).unwrap();
        assert!(other.sealer().open(b"a", &sealed).is_err());
    }

    #[test]
    fn blob_ids_depend_on_the_repository_key() {
        let a = Keys::derive(&MasterKey::generate().unwrap()).unwrap();
        let b = Keys::derive(&MasterKey::generate().unwrap()).unwrap();
        assert_eq!(a.blob_id(b"x"), a.blob_id(b"x"));
        assert_ne!(a.blob_id(b"x"), b.blob_id(b"x"));
        assert_ne!(a.blob_id(b"x"), a.blob_id(b"y"));
    }

    #[test]
    fn debug_output_hides_secrets() {
        let master = MasterKey::generate().unwrap();
        let hex = hex::encode(master.as_bytes());
        let keys = Keys::derive(&master).unwrap();
        for text in [format!("{master:?}"), format!("{keys:?}")] {
            assert!(text.contains("redacted") && !text.contains(&hex), "{text}");
        }
    }
}
