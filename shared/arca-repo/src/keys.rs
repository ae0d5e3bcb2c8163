//! Wrapping of the master key (format doc, section 2): by a passphrase (argon2id) here,
//! by a KMS key through the same [`KeyWrapper`] port later.

use std::fmt;

use async_trait::async_trait;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::crypto::{KEY_LEN, MasterKey, SealKey};
use crate::error::{FormatError, RepoError, Result};
use crate::format::{
    KDF_SALT_LEN, MAX_KDF_ITERATIONS, MAX_KDF_MEMORY_KIB, MAX_KDF_PARALLELISM, MAX_KDF_WORK_KIB, MAX_KEY_FILE_LEN,
    MIN_KDF_MEMORY_KIB, decode_bounded_json,
};

const KEY_AAD: &[u8] = b"arca/v1/key";

/// argon2id cost. Stored in each key file, so a repository keeps opening with the cost it
/// was created with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KdfParams {
    pub algorithm: KdfAlgorithm,
    pub memory_kib: u32,
    pub iterations: u32,
    pub parallelism: u32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KdfAlgorithm {
    Argon2id,
}

impl Default for KdfParams {
    /// RFC 9106's second recommended option: 64 MiB, 3 passes, 1 lane.
    fn default() -> Self {
        KdfParams {
            algorithm: KdfAlgorithm::Argon2id,
            memory_kib: 64 << 10,
            iterations: 3,
            parallelism: 1,
        }
    }
}

impl KdfParams {
    /// Bounds on what a key file may ask for (`format::MAX_KDF_*`): a forged key file must
    /// not make `open` allocate gigabytes or run for minutes. The error names the parameter.
    pub fn check(&self) -> Result<(), FormatError> {
        let out_of_range = |name: &str, value: u64, range: String| {
            Err(FormatError::new(format!(
                "kdf {name} {value} is outside the {range} a key file may ask for"
            )))
        };
        if !(MIN_KDF_MEMORY_KIB..=MAX_KDF_MEMORY_KIB).contains(&self.memory_kib) {
            return out_of_range(
                "memory_kib",
                u64::from(self.memory_kib),
                format!("{MIN_KDF_MEMORY_KIB}..={MAX_KDF_MEMORY_KIB}"),
            );
        }
        if !(1..=MAX_KDF_ITERATIONS).contains(&self.iterations) {
            return out_of_range(
                "iterations",
                u64::from(self.iterations),
                format!("1..={MAX_KDF_ITERATIONS}"),
            );
        }
        if !(1..=MAX_KDF_PARALLELISM).contains(&self.parallelism) {
            return out_of_range(
                "parallelism",
                u64::from(self.parallelism),
                format!("1..={MAX_KDF_PARALLELISM}"),
            );
        }
        let work = u64::from(self.memory_kib) * u64::from(self.iterations);
        if work > MAX_KDF_WORK_KIB {
            return out_of_range("memory_kib x iterations", work, format!("at most {MAX_KDF_WORK_KIB}"));
        }
        Ok(())
    }
}

/// `keys/<id>`: one wrapping of the master key.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyFile {
    pub version: u32,
    /// `passphrase` or `kms`.
    pub kind: String,
    pub created_ms: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kdf: Option<KdfParams>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub salt: Option<String>,
    /// For `kms`: the KMS key's ARN or alias.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kms_key_id: Option<String>,
    /// The sealed master key (base64).
    pub wrapped: String,
}

impl fmt::Debug for KeyFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyFile")
            .field("kind", &self.kind)
            .field("kdf", &self.kdf)
            .finish_non_exhaustive()
    }
}

pub fn decode_key_file(bytes: &[u8]) -> Result<KeyFile, FormatError> {
    let file: KeyFile = decode_bounded_json(bytes, MAX_KEY_FILE_LEN, "key file", "key file")?;
    if file.version != 1 {
        return Err(FormatError::new(format!(
            "unsupported key file version {}",
            file.version
        )));
    }
    if let Some(kdf) = &file.kdf {
        kdf.check()?;
    }
    if let Some(salt) = &file.salt {
        let salt = B64.decode(salt).map_err(|_| FormatError::new("salt is not base64"))?;
        if !KDF_SALT_LEN.contains(&salt.len()) {
            return Err(FormatError::new(format!(
                "kdf salt of {} bytes is outside the {}..={} a key file may have",
                salt.len(),
                KDF_SALT_LEN.start(),
                KDF_SALT_LEN.end()
            )));
        }
    }
    B64.decode(&file.wrapped)
        .map_err(|_| FormatError::new("wrapped key is not base64"))?;
    Ok(file)
}

/// The port through which the master key is wrapped and unwrapped. A wrapper that does not
/// recognise a key file's kind returns `Ok(None)` so the repository tries the next file.
#[async_trait]
pub trait KeyWrapper: Send + Sync {
    async fn wrap(&self, key: &MasterKey, created_ms: u64) -> Result<KeyFile>;
    /// `Ok(None)`: this key file is not one this wrapper can open (other kind, or the
    /// secret does not fit it).
    async fn unwrap(&self, file: &KeyFile) -> Result<Option<MasterKey>>;
}

/// Wraps the master key with a key derived from a passphrase by argon2id.
pub struct PassphraseWrapper {
    passphrase: Zeroizing<String>,
    params: KdfParams,
}

impl fmt::Debug for PassphraseWrapper {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PassphraseWrapper")
            .field("params", &self.params)
            .finish_non_exhaustive()
    }
}

impl PassphraseWrapper {
    pub fn new(passphrase: impl Into<String>) -> Self {
        Self::with_params(passphrase, KdfParams::default())
    }

    /// Custom cost for new key files (tests use a cheap one; opening always uses the file's).
    pub fn with_params(passphrase: impl Into<String>, params: KdfParams) -> Self {
        PassphraseWrapper {
            passphrase: Zeroizing::new(passphrase.into()),
            params,
        }
    }

    fn derive(&self, params: &KdfParams, salt: &[u8]) -> Result<SealKey> {
        let argon_params = argon2::Params::new(params.memory_kib, params.iterations, params.parallelism, Some(KEY_LEN))
            .map_err(|e| RepoError::Invalid(format!("kdf parameters: {e}")))?;
        let argon = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, argon_params);
        let mut kek = Zeroizing::new([0u8; KEY_LEN]);
        argon
            .hash_password_into(self.passphrase.as_bytes(), salt, kek.as_mut())
            .map_err(|e| RepoError::Invalid(format!("key derivation: {e}")))?;
        SealKey::new(&kek)
    }
}

#[async_trait]
impl KeyWrapper for PassphraseWrapper {
    async fn wrap(&self, key: &MasterKey, created_ms: u64) -> Result<KeyFile> {
        self.params.check().map_err(|e| RepoError::Invalid(e.to_string()))?;
        let mut salt = [0u8; 16];
        aws_lc_rs::rand::fill(&mut salt).map_err(|_| RepoError::Internal("system random source failed".into()))?;
        let kek = self.derive(&self.params, &salt)?;
        let wrapped = kek.seal(KEY_AAD, key.as_bytes())?;
        Ok(KeyFile {
            version: 1,
            kind: "passphrase".into(),
            created_ms,
            kdf: Some(self.params),
            salt: Some(B64.encode(salt)),
            kms_key_id: None,
            wrapped: B64.encode(wrapped),
        })
    }

    async fn unwrap(&self, file: &KeyFile) -> Result<Option<MasterKey>> {
        let (Some(kdf), Some(salt)) = (&file.kdf, &file.salt) else {
            return Ok(None);
        };
        if file.kind != "passphrase" {
            return Ok(None);
        }
        kdf.check().map_err(|e| RepoError::corrupt("key file", e))?;
        let salt = B64
            .decode(salt)
            .map_err(|_| RepoError::corrupt("key file", "salt is not base64"))?;
        if !KDF_SALT_LEN.contains(&salt.len()) {
            return Err(RepoError::corrupt("key file", "salt length out of range"));
        }
        let wrapped = B64
            .decode(&file.wrapped)
            .map_err(|_| RepoError::corrupt("key file", "key is not base64"))?;
        let kek = self.derive(kdf, &salt)?;
        match kek.open(KEY_AAD, &wrapped) {
            Ok(plain) => {
                let plain = Zeroizing::new(plain);
                Ok(MasterKey::from_bytes(&plain))
            }
            Err(_) => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn cheap() -> KdfParams {
        KdfParams {
            memory_kib: 64,
            iterations: 1,
            ..KdfParams::default()
        }
    }

    #[tokio::test]
    async fn passphrase_wraps_and_only_the_right_one_unwraps() {
        let master = MasterKey::generate().unwrap();
        let file = PassphraseWrapper::with_params("right", cheap())
            .wrap(&master, 1)
            .await
            .unwrap();
        let bytes = serde_json::to_vec(&file).unwrap();
        let file = decode_key_file(&bytes).unwrap();
        let back = PassphraseWrapper::new("right").unwrap(&file).await.unwrap().unwrap();
        assert_eq!(back.as_bytes(), master.as_bytes());
        assert!(PassphraseWrapper::new("wrong").unwrap(&file).await.unwrap().is_none());
        assert!(!format!("{file:?}").contains(&file.wrapped));
        assert!(!format!("{:?}", PassphraseWrapper::new("s3cret")).contains("s3cret"));
    }

    #[test]
    fn hostile_kdf_costs_are_refused_naming_the_parameter() {
        let file = |memory: u64, iterations: u64, parallelism: u64, salt: &str| {
            format!(
                r#"{{"version":1,"kind":"passphrase","created_ms":0,"kdf":{{"algorithm":"argon2id","memory_kib":{memory},"iterations":{iterations},"parallelism":{parallelism}}},"salt":"{salt}","wrapped":"AA=="}}"#
            )
        };
        let salt = B64.encode([7u8; 16]);
        assert!(decode_key_file(file(65536, 3, 1, &salt).as_bytes()).is_ok());
        for (json, named) in [
            (file(u64::from(u32::MAX), 3, 1, &salt), "memory_kib"),
            (file(2 << 20, 1, 1, &salt), "memory_kib"),
            (file(4, 1, 1, &salt), "memory_kib"),
            (file(65536, u64::from(u32::MAX), 1, &salt), "iterations"),
            (file(65536, 0, 1, &salt), "iterations"),
            (file(65536, 3, 255, &salt), "parallelism"),
            (file(1 << 20, 16, 1, &salt), "memory_kib x iterations"),
            (file(65536, 3, 1, &B64.encode([7u8; 4])), "salt"),
            (file(65536, 3, 1, &B64.encode(vec![7u8; 4096])), "salt"),
        ] {
            let err = decode_key_file(json.as_bytes()).unwrap_err().to_string();
            assert!(err.contains(named), "{json}: {err}");
        }
    }
}
