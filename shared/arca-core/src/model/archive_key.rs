//! Keys that seal what agents write (resource archives): one per org, derived by the
//! control plane from a deployment-wide master key and handed to the org's agents with
//! each job's destination access. So every cluster of an org can restore what another
//! backed up, no key is ever stored next to the data, and nothing secret is derived from
//! public ids alone.

use std::fmt;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::ids::OrgId;
use crate::{Error, Result};

/// The deployment's master key (`ARCA_ARCHIVE_MASTER_KEY`, 64 hex digits; in
/// single-machine mode a key file in the data directory). `Debug` never prints it.
#[derive(Clone, PartialEq, Eq)]
pub struct ArchiveMasterKey([u8; 32]);

/// An org's archive key as it travels to agents: 64 hex digits. `Debug` never prints it.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ArchiveKeyHex(String);

impl ArchiveMasterKey {
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// 32 fresh random bytes (single-machine mode creates its key file with this).
    pub fn generate() -> Result<Self> {
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes).map_err(|e| Error::permanent(format!("no randomness: {e}")))?;
        Ok(Self(bytes))
    }

    /// 64 hex digits; `field` names where they came from, for the error.
    pub fn from_hex(field: &str, hex: &str) -> Result<Self> {
        decode_hex(hex.trim())
            .map(Self)
            .ok_or_else(|| Error::invalid(field, "must be 64 hex digits (32 bytes)"))
    }

    pub fn to_hex(&self) -> String {
        encode_hex(&self.0)
    }

    /// The org's key: HMAC-SHA256(master, "arca-archive-key-v1:" + org id). Versioned, so
    /// a future scheme can coexist with archives sealed under this one.
    pub fn for_org(&self, org: &OrgId) -> ArchiveKeyHex {
        ArchiveKeyHex(encode_hex(&hmac_sha256(
            &self.0,
            format!("arca-archive-key-v1:{org}").as_bytes(),
        )))
    }
}

impl ArchiveKeyHex {
    /// The 32 key bytes, `None` when the text is not 64 hex digits.
    pub fn bytes(&self) -> Option<[u8; 32]> {
        decode_hex(&self.0)
    }
}

impl fmt::Debug for ArchiveMasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ArchiveMasterKey(<redacted>)")
    }
}

impl fmt::Debug for ArchiveKeyHex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ArchiveKeyHex(<redacted>)")
    }
}

fn hmac_sha256(key: &[u8; 32], message: &[u8]) -> [u8; 32] {
    // RFC 2104 with a 64-byte block; the key is shorter than a block, so it is only padded.
    let mut inner_pad = [0x36u8; 64];
    let mut outer_pad = [0x5cu8; 64];
    for (i, byte) in key.iter().enumerate() {
        inner_pad[i] ^= byte;
        outer_pad[i] ^= byte;
    }
    let inner = Sha256::new().chain_update(inner_pad).chain_update(message).finalize();
    Sha256::new()
        .chain_update(outer_pad)
        .chain_update(inner)
        .finalize()
        .into()
}

fn encode_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn decode_hex(hex: &str) -> Option<[u8; 32]> {
    if hex.len() != 64 || !hex.is_ascii() {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hmac_matches_rfc_4231() {
        // Test case 2's key is 4 bytes ("Jefe"); zero-padding it to 32 bytes is the same
        // HMAC key, since HMAC pads every short key with zeros to the block size.
        let mut key = [0u8; 32];
        key[..4].copy_from_slice(b"Jefe");
        assert_eq!(
            encode_hex(&hmac_sha256(&key, b"what do ya want for nothing?")),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn each_org_gets_its_own_stable_key() {
        let master = ArchiveMasterKey::from_bytes([7; 32]);
        let (a, b) = (OrgId::new(), OrgId::new());
        assert_eq!(master.for_org(&a), master.for_org(&a));
        assert_ne!(master.for_org(&a), master.for_org(&b));
        assert_ne!(ArchiveMasterKey::from_bytes([8; 32]).for_org(&a), master.for_org(&a));
        assert!(master.for_org(&a).bytes().is_some());
    }

    #[test]
    fn keys_never_show_in_debug_and_parse_strictly() {
        let master = ArchiveMasterKey::generate().unwrap();
        let hex = master.to_hex();
        assert_eq!(ArchiveMasterKey::from_hex("k", &hex).unwrap(), master);
        assert!(!format!("{master:?}").contains(&hex));
        let org_key = master.for_org(&OrgId::new());
        assert!(!format!("{org_key:?}").contains(&serde_json::to_string(&org_key).unwrap()[1..10]));
        for bad in ["", "zz", &"a".repeat(63), &"g".repeat(64)] {
            let err = ArchiveMasterKey::from_hex("ARCA_ARCHIVE_MASTER_KEY", bad).unwrap_err();
            assert!(matches!(&err, Error::Invalid { field, .. } if field == "ARCA_ARCHIVE_MASTER_KEY"));
        }
    }
}
