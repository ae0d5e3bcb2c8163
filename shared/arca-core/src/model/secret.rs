//! Secrets handed out once (API keys, agent tokens) and the hashes we keep instead.
//!
//! The secrets are 256 random bits, so a single SHA-256 is the right hash: there is
//! nothing to brute-force, and a fast hash lets the lookup be one indexed read.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize, Serializer};
use sha2::{Digest, Sha256};

use crate::{Error, Result};

/// Prefix of every API key, so a leaked key is recognisable by secret scanners.
pub const API_KEY_PREFIX: &str = "arca_";
/// Prefix of every agent token.
pub const AGENT_TOKEN_PREFIX: &str = "arcagent_";
/// Prefix of every one-time install token (the path segment of an install link).
pub const INSTALL_TOKEN_PREFIX: &str = "arcainst_";
const SECRET_BYTES: usize = 32;
/// How many characters of the random part are kept for display (48 of 256 bits).
const SNIPPET_CHARS: usize = 8;

/// A plaintext secret. It exists only between its creation and the response that shows
/// it once, or between a request header and [`hash`]; `Debug` never prints it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret presented by a caller (an `Authorization` header).
    pub fn from_presented(text: impl Into<String>) -> Self {
        Secret(text.into())
    }

    /// Mints a new random secret that starts with `prefix`.
    pub fn generate(prefix: &str) -> Result<Self> {
        let mut bytes = [0u8; SECRET_BYTES];
        getrandom::fill(&mut bytes).map_err(|e| Error::permanent(format!("no randomness: {e}")))?;
        Ok(Secret(format!("{prefix}{}", URL_SAFE_NO_PAD.encode(bytes))))
    }

    /// The plaintext, for the one response that shows it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The non-secret head shown in listings so a user can tell keys apart.
    pub fn snippet(&self) -> String {
        let end = self.prefix_len() + SNIPPET_CHARS;
        self.0.get(..end).unwrap_or_default().to_string()
    }

    fn prefix_len(&self) -> usize {
        [AGENT_TOKEN_PREFIX, API_KEY_PREFIX]
            .iter()
            .find(|p| self.0.starts_with(**p))
            .map_or(0, |p| p.len())
    }

    pub fn hash(&self) -> SecretHash {
        let digest = Sha256::digest(self.0.as_bytes());
        SecretHash(digest.iter().map(|b| format!("{b:02x}")).collect())
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// Serialised only into the single response that hands the secret out.
impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

/// Lower-case hex SHA-256 of a secret: what is stored and indexed.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct SecretHash(String);

impl SecretHash {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Accepts only the shape [`Secret::hash`] produces, so a key read back from the
    /// index cannot smuggle anything else into a key string.
    pub fn from_hex(hex: &str) -> Result<Self> {
        if hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
            Ok(SecretHash(hex.to_string()))
        } else {
            Err(Error::invalid("secretHash", "expected 64 lower-case hex digits"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_secrets_are_distinct_prefixed_and_redacted() {
        let a = Secret::generate(API_KEY_PREFIX).unwrap();
        let b = Secret::generate(API_KEY_PREFIX).unwrap();
        assert_ne!(a, b);
        assert!(a.expose().starts_with("arca_"));
        assert_eq!(a.expose().len(), 5 + 43);
        assert_eq!(format!("{a:?}"), "Secret(<redacted>)");
        assert!(!format!("{:?}", vec![a.clone()]).contains(a.expose()));
    }

    #[test]
    fn the_hash_is_hex_sha256_and_the_snippet_a_short_head() {
        let s = Secret::from_presented("arca_abcdefghijkl");
        // sha256("arca_abcdefghijkl") computed independently
        assert_eq!(s.hash().as_str().len(), 64);
        assert_eq!(
            Secret::from_presented("abc").hash().as_str(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(s.snippet(), "arca_abcdefgh");
        assert_eq!(
            Secret::from_presented("arcagent_0123456789").snippet(),
            "arcagent_01234567"
        );
        assert!(SecretHash::from_hex(s.hash().as_str()).is_ok());
        assert!(SecretHash::from_hex("ABC").is_err());
    }
}
