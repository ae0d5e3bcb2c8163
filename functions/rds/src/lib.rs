//! RDS: snapshots, cross-region copies, restores and PITR of RDS instances and Aurora
//! clusters in linked accounts. The AWS calls arrive with the AWS issue; the naming rule
//! every snapshot Arca creates must obey is settled now.

use std::time::{SystemTime, UNIX_EPOCH};

use arca_core::{Error, Result};

/// RDS snapshot identifiers: 1-255 letters, digits and hyphens, starting with a letter,
/// without two hyphens in a row and not ending with one.
const MAX_IDENTIFIER: usize = 255;

/// The identifier of the snapshot Arca takes of `db_identifier` at `taken_at`:
/// `arca-<db>-<unix seconds>`, so Arca's snapshots are recognisable, sort by time and
/// never collide for one database.
pub fn snapshot_identifier(db_identifier: &str, taken_at: SystemTime) -> Result<String> {
    let secs = taken_at
        .duration_since(UNIX_EPOCH)
        .map_err(|_| Error::invalid("takenAt", "before 1970"))?
        .as_secs();
    let mut db: String = db_identifier
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    while db.contains("--") {
        db = db.replace("--", "-");
    }
    let db = db.trim_matches('-');
    if db.is_empty() {
        return Err(Error::invalid(
            "dbIdentifier",
            format!("{db_identifier:?} has no letters or digits"),
        ));
    }
    let suffix = format!("-{secs}");
    let room = MAX_IDENTIFIER - "arca-".len() - suffix.len();
    let db = db[..db.len().min(room)].trim_end_matches('-');
    Ok(format!("arca-{db}{suffix}"))
}

pub async fn handle(event: serde_json::Value) -> Result<serde_json::Value, lambda_runtime::Error> {
    tracing::info!(keys = ?event.as_object().map(|o| o.keys().collect::<Vec<_>>()), "rds job received");
    Err("RDS jobs are not wired yet (AWS issue)".into())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

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
        assert_eq!(id.len(), MAX_IDENTIFIER);
        assert!(id.ends_with("-5"));
    }

    #[test]
    fn an_identifier_without_letters_or_digits_is_refused() {
        assert!(snapshot_identifier("--__--", at(1)).is_err());
    }
}
