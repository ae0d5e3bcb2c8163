//! The names and tags of the snapshots Arca takes and copies.

use crate::ids::RecoveryPointId;
use crate::{Error, Result};
use chrono::{DateTime, Utc};
use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

/// The tag every snapshot Arca takes or copies carries: the recovery point's id.
pub const TAG_RECOVERY_POINT: &str = "arca:recovery-point";

/// The tag with the recovery point's expiry (RFC 3339, UTC; absent: kept until deleted).
pub const TAG_EXPIRES_AT: &str = "arca:expires-at";

/// RDS snapshot identifiers: 1-255 letters, digits and hyphens, starting with a letter,
/// without two hyphens in a row and not ending with one.
pub const MAX_SNAPSHOT_IDENTIFIER: usize = 255;

/// The identifier of the snapshot Arca takes of `db_identifier` at `taken_at`:
/// `arca-<db>-<unix seconds>`, so Arca's snapshots are recognisable, sort by time and
/// never collide for one database.
pub fn snapshot_identifier(db_identifier: &str, taken_at: SystemTime) -> Result<String> {
    let secs = taken_at
        .duration_since(UNIX_EPOCH)
        .map_err(|_| Error::invalid("takenAt", "before 1970"))?
        .as_secs();
    let db = hyphenated(db_identifier);
    let db = db.as_str();
    if db.is_empty() {
        return Err(Error::invalid(
            "dbIdentifier",
            format!("{db_identifier:?} has no letters or digits"),
        ));
    }
    let suffix = format!("-{secs}");
    let room = MAX_SNAPSHOT_IDENTIFIER - "arca-".len() - suffix.len();
    let db = db[..db.len().min(room)].trim_end_matches('-');
    Ok(format!("arca-{db}{suffix}"))
}

/// The identifier of a copy of `source` made at `copied_at`: `<source>-copy-<unix seconds>`
/// (`rds:` of automated snapshots dropped), so copying one snapshot twice never collides.
pub fn copy_identifier(source: &str, copied_at: SystemTime) -> Result<String> {
    let secs = copied_at
        .duration_since(UNIX_EPOCH)
        .map_err(|_| Error::invalid("copiedAt", "before 1970"))?
        .as_secs();
    let suffix = format!("-copy-{secs}");
    let base = snapshot_identifier_like(source.trim_start_matches("rds:"))?;
    let room = MAX_SNAPSHOT_IDENTIFIER - suffix.len();
    let base = base[..base.len().min(room)].trim_end_matches('-');
    Ok(format!("{base}{suffix}"))
}

/// `text` in lower case with every run of other characters than letters and digits one
/// hyphen, and none at either end.
fn hyphenated(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('-') {
            out.push('-');
        }
    }
    out.trim_matches('-').to_string()
}

fn snapshot_identifier_like(text: &str) -> Result<String> {
    let mut id = hyphenated(text);
    if !id.starts_with(|c: char| c.is_ascii_alphabetic()) {
        id = format!("arca-{id}");
    }
    id.truncate(MAX_SNAPSHOT_IDENTIFIER);
    Ok(id.trim_end_matches('-').to_string())
}

/// Checks an RDS identifier the user chose (a restore's new instance or cluster):
/// 1-63 letters, digits and hyphens, starting with a letter, no `--`, no trailing `-`.
pub fn check_db_identifier(field: &str, id: &str) -> Result<()> {
    let ok = !id.is_empty()
        && id.len() <= 63
        && id.starts_with(|c: char| c.is_ascii_alphabetic())
        && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        && !id.contains("--")
        && !id.ends_with('-');
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(
            field,
            format!("{id:?} is not an RDS identifier (1-63 letters, digits, hyphens; starts with a letter)"),
        ))
    }
}

/// The tags of a snapshot Arca makes for `rp`.
pub fn snapshot_tags(rp: &RecoveryPointId, expires_at: Option<DateTime<Utc>>) -> BTreeMap<String, String> {
    let mut tags = BTreeMap::new();
    tags.insert(TAG_RECOVERY_POINT.to_string(), rp.to_string());
    if let Some(at) = expires_at {
        tags.insert(
            TAG_EXPIRES_AT.to_string(),
            at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        );
    }
    tags.insert("arca:managed".to_string(), "true".to_string());
    tags
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    #[test]
    fn identifiers_follow_the_rds_rules() {
        assert_eq!(
            snapshot_identifier("orders-db", at(1_700_000_000)).unwrap(),
            "arca-orders-db-1700000000"
        );
        assert_eq!(snapshot_identifier("Orders__DB.", at(1)).unwrap(), "arca-orders-db-1");
        let long = "a".repeat(400);
        let id = snapshot_identifier(&long, at(5)).unwrap();
        assert_eq!(id.len(), MAX_SNAPSHOT_IDENTIFIER);
        assert!(id.ends_with("-5"));
        assert!(snapshot_identifier("--__--", at(1)).is_err());
        assert_eq!(copy_identifier("arca-db-5", at(7)).unwrap(), "arca-db-5-copy-7");
        assert_eq!(
            copy_identifier("rds:db-2026-01-01-00-05", at(7)).unwrap(),
            "db-2026-01-01-00-05-copy-7"
        );
        assert_eq!(
            copy_identifier(&"b".repeat(300), at(7)).unwrap().len(),
            MAX_SNAPSHOT_IDENTIFIER
        );
    }
}
