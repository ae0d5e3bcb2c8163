//! The PV part of DELETE_BACKUP: the recovery point's VolumeSnapshots (in its own
//! cluster) and its repository snapshots (forgotten: their data goes at the repository's
//! next `repo gc`).

use arca_core::ports::credentials::DestinationAccess;
use arca_repo::{Id, RepoError};
use kube::Client;

use super::{Repo, VolumeRecord, snapshot};

/// What a deletion did: lines for the job log, and what failed (the point then stays).
#[derive(Clone, Debug, Default)]
pub struct Deleted {
    pub messages: Vec<String>,
    pub failures: Vec<String>,
}

/// Deletes what `records` hold. `in_cluster`: whether this agent runs in the cluster that
/// took the snapshots (never delete another cluster's namesakes).
pub async fn delete(
    client: &Client,
    records: &[VolumeRecord],
    in_cluster: bool,
    destination: Option<(&DestinationAccess, &[u8; 32])>,
) -> Deleted {
    let mut out = Deleted::default();
    let (mut snapshots, mut forgotten) = (0usize, 0usize);
    for r in records {
        if let Some(s) = &r.snapshot {
            if in_cluster {
                match snapshot::delete(client, &r.namespace, &s.name).await {
                    Ok(true) => snapshots += 1,
                    Ok(false) => out
                        .messages
                        .push(format!("VolumeSnapshot {}/{} was already gone", r.namespace, s.name)),
                    Err(e) => out.failures.push(e),
                }
            } else {
                out.messages.push(format!(
                    "VolumeSnapshot {}/{} is in another cluster; left there",
                    r.namespace, s.name
                ));
            }
        }
        if let Some(c) = &r.copy {
            let Some((access, key)) = destination else {
                out.failures.push(format!(
                    "repository snapshot {} of {}: no access to the destination",
                    c.snapshot_id, c.volume
                ));
                continue;
            };
            match forget(access, key, &c.repository, &c.snapshot_id).await {
                Ok(true) => forgotten += 1,
                Ok(false) => out.messages.push(format!(
                    "repository snapshot {} of {} was already forgotten",
                    c.snapshot_id, c.volume
                )),
                Err(e) => out.failures.push(e),
            }
        }
    }
    if snapshots + forgotten > 0 {
        out.messages.push(format!(
            "deleted {snapshots} VolumeSnapshot(s) and forgot {forgotten} repository snapshot(s) (their data is \
             reclaimed by the repository's next gc)"
        ));
    }
    out
}

async fn forget(access: &DestinationAccess, key: &[u8; 32], prefix: &str, id: &str) -> Result<bool, String> {
    let repo = Repo::new(access, prefix, key)?;
    let opened = repo.open(None).await?;
    let id = Id::from_hex(id).map_err(|e| format!("repository snapshot id {id:?}: {e}"))?;
    let exists = opened
        .snapshots()
        .await
        .map_err(|e| format!("listing the repository's snapshots: {e}"))?
        .iter()
        .any(|(i, _)| *i == id);
    if !exists {
        return Ok(false);
    }
    match opened.forget(&id).await {
        Ok(()) => Ok(true),
        Err(RepoError::SnapshotNotFound(_)) => Ok(false),
        Err(e) => Err(format!("forgetting repository snapshot {id}: {e}")),
    }
}
