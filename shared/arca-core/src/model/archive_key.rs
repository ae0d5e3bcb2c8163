//! Keys that seal what agents write (resource archives, and the volume repositories'
//! passphrases): one per **cluster and key generation**, derived by the control plane
//! from a deployment-wide master key and handed to an agent with one job's destination
//! access. So a compromised cluster holds its own keys only, no key is ever stored next
//! to the data, and nothing secret is derived from public ids alone.
//!
//! Rotation: a cluster's key generation goes up ([`KeyId::generation`]); its next
//! backups write new repositories under the new key (the repositories' folders carry the
//! key id, `crate::model::layout`), while each existing point names its key by where it
//! lies, so it stays restorable. The master key itself rotates through an
//! [`ArchiveKeyring`]: the first key derives new generations, the others still open what
//! they derived (docs/security.md).

use std::fmt;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::ids::{ClusterId, OrgId};
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

    /// A secret of any form (Secrets Manager's generated strings): its SHA-256 under a
    /// label, so the key is 32 uniform bytes whatever the text looks like.
    pub fn from_secret_text(field: &str, text: &str) -> Result<Self> {
        let text = text.trim();
        if text.len() < MIN_SECRET_TEXT {
            return Err(Error::invalid(
                field,
                format!("a master key text must be at least {MIN_SECRET_TEXT} characters"),
            ));
        }
        Ok(Self(
            Sha256::new()
                .chain_update(b"arca-archive-master-key-v1:")
                .chain_update(text.as_bytes())
                .finalize()
                .into(),
        ))
    }

    pub fn to_hex(&self) -> String {
        encode_hex(&self.0)
    }

    /// Names the key without revealing it: the first 4 bytes of HMAC(key, label), 8 hex
    /// digits, part of every [`KeyId`] it derives.
    pub fn fingerprint(&self) -> String {
        encode_hex(&hmac_sha256(&self.0, b"arca-archive-master-fingerprint")[..4])
    }

    /// One cluster's key of one generation: HMAC-SHA256(master, "arca-archive-key-v2:" +
    /// org + ":" + cluster + ":" + generation).
    fn derive(&self, org: &OrgId, cluster: &ClusterId, generation: u32) -> ArchiveKeyHex {
        ArchiveKeyHex(encode_hex(&hmac_sha256(
            &self.0,
            format!("arca-archive-key-v2:{org}:{cluster}:{generation}").as_bytes(),
        )))
    }
}

/// The master part of the ids of keys that a destination's customer key wraps (the
/// [`KeyId::master`] of those keys): 8 hex digits of SHA-256 over the destination's id.
/// It names the destination, not the KMS key, so a change of KMS key (a re-wrap) keeps
/// every key id, and with it every repository the keys seal.
pub fn customer_key_master(destination: &crate::ids::DestinationId) -> String {
    encode_hex(
        &Sha256::new()
            .chain_update(b"arca-customer-key-v1:")
            .chain_update(destination.to_string().as_bytes())
            .finalize()[..4],
    )
}

/// The shortest master key text [`ArchiveMasterKey::from_secret_text`] accepts.
const MIN_SECRET_TEXT: usize = 32;

/// Which key sealed a repository: the cluster's key generation and the fingerprint of
/// the master key that derived it. Written `g<generation>-<fingerprint>`, the suffix of
/// the repositories' folders, so every stored point names its key.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct KeyId {
    pub generation: u32,
    pub master: String,
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "g{}-{}", self.generation, self.master)
    }
}

impl std::str::FromStr for KeyId {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        let invalid = || Error::invalid("keyId", format!("{s:?} is not a key id (g<generation>-<8 hex digits>)"));
        let (generation, master) = s
            .strip_prefix('g')
            .and_then(|rest| rest.split_once('-'))
            .ok_or_else(invalid)?;
        // One spelling per id: digits without leading zeros, lowercase hex.
        let canonical = generation.bytes().all(|b| b.is_ascii_digit()) && !generation.starts_with('0');
        let hex = master.len() == 8 && master.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        let generation: u32 = generation.parse().map_err(|_| invalid())?;
        if !canonical || !hex {
            return Err(invalid());
        }
        Ok(KeyId {
            generation,
            master: master.to_string(),
        })
    }
}

impl Serialize for KeyId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for KeyId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// The deployment's master keys: the first derives the keys of new generations; the
/// others, older masters kept during a rotation, still derive the keys of what they
/// sealed. `Debug` never prints them.
#[derive(Clone, PartialEq, Eq)]
pub struct ArchiveKeyring {
    masters: Vec<ArchiveMasterKey>,
}

impl ArchiveKeyring {
    /// `current` first, then older masters still needed to open existing points.
    pub fn new(current: ArchiveMasterKey, older: Vec<ArchiveMasterKey>) -> Self {
        let mut masters = vec![current];
        masters.extend(older);
        Self { masters }
    }

    /// A keyring from a comma- or newline-separated list of master keys, current first:
    /// each 64 hex digits (`hex`) or a secret text of at least 32 characters.
    pub fn parse(field: &str, text: &str, form: MasterKeyForm) -> Result<Self> {
        let masters = text
            .split([',', '\n'])
            .map(str::trim)
            .filter(|k| !k.is_empty())
            .map(|k| match form {
                MasterKeyForm::Hex => ArchiveMasterKey::from_hex(field, k),
                MasterKeyForm::SecretText => ArchiveMasterKey::from_secret_text(field, k),
            })
            .collect::<Result<Vec<_>>>()?;
        let mut masters = masters.into_iter();
        let current = masters
            .next()
            .ok_or_else(|| Error::invalid(field, "no master key in it"))?;
        Ok(Self::new(current, masters.collect()))
    }

    /// The id of `generation`'s key under the current master.
    pub fn current_id(&self, generation: u32) -> KeyId {
        KeyId {
            generation,
            master: self.masters[0].fingerprint(),
        }
    }

    /// The key `id` names for `cluster`; an error when its master is no longer in the
    /// ring (a rotation removed it while points it sealed remain).
    pub fn key(&self, org: &OrgId, cluster: &ClusterId, id: &KeyId) -> Result<ArchiveKeyHex> {
        self.masters
            .iter()
            .find(|m| m.fingerprint() == id.master)
            .map(|m| m.derive(org, cluster, id.generation))
            .ok_or_else(|| {
                Error::conflict_of(
                    crate::error::ConflictKind::ArchiveKeyRetired,
                    format!(
                        "the master key {} that derived key {id} is not configured any more; \
                     add it back to the deployment's master keys (after the current one) to open what it sealed",
                        id.master
                    ),
                )
            })
    }

    /// The ids of every key `generation`s up to `latest` of a cluster may have, under
    /// every master in the ring (what a maintenance run may find).
    pub fn all_ids(&self, latest: u32) -> Vec<KeyId> {
        self.masters
            .iter()
            .flat_map(|m| {
                (1..=latest.max(1)).map(move |generation| KeyId {
                    generation,
                    master: m.fingerprint(),
                })
            })
            .collect()
    }
}

/// How [`ArchiveKeyring::parse`] reads each key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MasterKeyForm {
    /// 64 hex digits: `ARCA_ARCHIVE_MASTER_KEY`, the single-machine key file.
    Hex,
    /// Any text of at least 32 characters, hashed: a Secrets Manager secret.
    SecretText,
}

impl fmt::Debug for ArchiveKeyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ids: Vec<String> = self.masters.iter().map(|m| m.fingerprint()).collect();
        write!(f, "ArchiveKeyring({})", ids.join(", "))
    }
}

impl ArchiveKeyHex {
    /// A key an agent unwrapped itself (a customer-held key, never the control plane's).
    pub fn from_bytes(bytes: &[u8; 32]) -> Self {
        ArchiveKeyHex(encode_hex(bytes))
    }

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
    fn each_cluster_and_generation_gets_its_own_stable_key() {
        let ring = ArchiveKeyring::new(ArchiveMasterKey::from_bytes([7; 32]), vec![]);
        let org = OrgId::new();
        let (a, b) = (ClusterId::new(), ClusterId::new());
        let (g1, g2) = (ring.current_id(1), ring.current_id(2));
        let key = |c, id| ring.key(&org, c, id).unwrap();
        assert_eq!(key(&a, &g1), key(&a, &g1));
        assert_ne!(key(&a, &g1), key(&b, &g1), "clusters of one org");
        assert_ne!(key(&a, &g1), key(&a, &g2), "generations");
        assert_ne!(
            ring.key(&OrgId::new(), &a, &g1).unwrap(),
            key(&a, &g1),
            "the same cluster id in another org"
        );
        assert!(key(&a, &g1).bytes().is_some());
    }

    #[test]
    fn a_rotated_master_still_opens_what_it_derived_until_it_is_removed() {
        let (old, new) = (
            ArchiveMasterKey::from_bytes([1; 32]),
            ArchiveMasterKey::from_bytes([2; 32]),
        );
        let (org, cl) = (OrgId::new(), ClusterId::new());
        let before = ArchiveKeyring::new(old.clone(), vec![]);
        let old_id = before.current_id(1);
        let sealed_with = before.key(&org, &cl, &old_id).unwrap();

        let during =
            ArchiveKeyring::parse("k", &format!("{}, {}", new.to_hex(), old.to_hex()), MasterKeyForm::Hex).unwrap();
        assert_ne!(during.current_id(1), old_id, "new generations come from the new master");
        assert_eq!(during.key(&org, &cl, &old_id).unwrap(), sealed_with);
        assert_eq!(during.all_ids(2).len(), 4);

        let after = ArchiveKeyring::new(new, vec![]);
        let err = after.key(&org, &cl, &old_id).unwrap_err().to_string();
        assert!(err.contains(&old_id.master) && err.contains("not configured"), "{err}");
    }

    #[test]
    fn key_ids_round_trip_and_parse_strictly() {
        let id = KeyId {
            generation: 12,
            master: "0a1b2c3d".into(),
        };
        assert_eq!(id.to_string(), "g12-0a1b2c3d");
        assert_eq!("g12-0a1b2c3d".parse::<KeyId>().unwrap(), id);
        assert_eq!(serde_json::to_string(&id).unwrap(), "\"g12-0a1b2c3d\"");
        for bad in [
            "",
            "g0-0a1b2c3d",
            "g1-0A1B2C3D",
            "g1-0a1b2c3",
            "1-0a1b2c3d",
            "g01-0a1b2c3d",
            "g1-0a1b2c3d/x",
            "g-0a1b2c3d",
        ] {
            assert!(bad.parse::<KeyId>().is_err(), "{bad}");
        }
    }

    #[test]
    fn secret_texts_are_hashed_and_short_ones_refused() {
        let text = "A".repeat(40);
        let a = ArchiveKeyring::parse("secret", &text, MasterKeyForm::SecretText).unwrap();
        assert_eq!(
            a,
            ArchiveKeyring::parse("secret", &format!(" {text}\n"), MasterKeyForm::SecretText).unwrap()
        );
        assert_ne!(
            a.current_id(1),
            ArchiveKeyring::parse("s", &"B".repeat(40), MasterKeyForm::SecretText)
                .unwrap()
                .current_id(1)
        );
        let err = ArchiveKeyring::parse("secret", "short", MasterKeyForm::SecretText).unwrap_err();
        assert!(
            matches!(&err, Error::Invalid { field, .. } if field == "secret"),
            "{err}"
        );
        assert!(ArchiveKeyring::parse("secret", " , ", MasterKeyForm::SecretText).is_err());
        assert!(!format!("{a:?}").contains(&text));
    }

    #[test]
    fn keys_never_show_in_debug_and_parse_strictly() {
        let master = ArchiveMasterKey::generate().unwrap();
        let hex = master.to_hex();
        assert_eq!(ArchiveMasterKey::from_hex("k", &hex).unwrap(), master);
        assert!(!format!("{master:?}").contains(&hex));
        let org_key = ArchiveKeyring::new(master.clone(), vec![])
            .key(
                &OrgId::new(),
                &ClusterId::new(),
                &KeyId {
                    generation: 1,
                    master: master.fingerprint(),
                },
            )
            .unwrap();
        assert!(!format!("{org_key:?}").contains(&serde_json::to_string(&org_key).unwrap()[1..10]));
        for bad in ["", "zz", &"a".repeat(63), &"g".repeat(64)] {
            let err = ArchiveMasterKey::from_hex("ARCA_ARCHIVE_MASTER_KEY", bad).unwrap_err();
            assert!(matches!(&err, Error::Invalid { field, .. } if field == "ARCA_ARCHIVE_MASTER_KEY"));
        }
    }
}
