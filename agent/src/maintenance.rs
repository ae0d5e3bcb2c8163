//! REPOSITORY_MAINTENANCE jobs: garbage collection of one cluster's repositories in one
//! destination, the resource archive store (`resources::archive::gc`) and the volume
//! repository (`arca_repo::gc`), each under its own lock, in two phases with the job's
//! grace period. What they delete is reported back as bytes freed.

use std::time::Duration;

use arca_core::model::maintenance::MaintenanceResult;
use arca_core::ports::credentials::DestinationAccess;
use arca_repo::GcOptions;

use crate::resources::archive::ObjectStoreArchive;
use crate::volumes::{self, Repo};

/// What a run did: the result for the control plane and lines for the job's log.
pub struct Maintained {
    pub result: MaintenanceResult,
    pub messages: Vec<String>,
}

/// Collects both repositories under `access`'s cluster prefix. `archive`: the resource
/// archive store there. Fails on the first repository that cannot be collected, after
/// the other has been: a gc that is refused (another holds the lock) is tried again at
/// the next run.
pub async fn run(
    archive: &ObjectStoreArchive,
    access: &DestinationAccess,
    key: &[u8; 32],
    grace: Duration,
) -> Result<Maintained, String> {
    let mut result = MaintenanceResult::default();
    let mut messages = Vec::new();
    let mut errors = Vec::new();

    match archive.collect(grace).await {
        Ok(r) => {
            messages.push(format!(
                "resource archives: {} archive(s) reference {} pack(s); {} pack(s) condemned, {} deleted ({} bytes), \
                 {} spared, {} still under Object Lock, {} marker(s) waiting for the grace period",
                r.archives,
                r.live_packs,
                r.packs_condemned,
                r.packs_deleted,
                r.bytes_deleted,
                r.packs_spared,
                r.packs_locked,
                r.markers_pending
            ));
            result.bytes_freed += r.bytes_deleted;
            result.packs_deleted += r.packs_deleted;
            result.markers_pending += r.markers_pending;
        }
        Err(e) => errors.push(format!("resource archives: {e}")),
    }

    let repo = Repo::new(access, &volumes::repo::cluster_repository(access), key)?;
    match repo.open_existing().await {
        Ok(None) => messages.push("volume repository: none (no volume was copied here)".into()),
        Ok(Some(repository)) => {
            let options = GcOptions {
                grace,
                // Immutable: a repacked pack's space comes back only when its lock ends,
                // so repacking would pay writes for nothing until then.
                repack_below: if access.object_lock.is_some() {
                    0.0
                } else {
                    GcOptions::default().repack_below
                },
            };
            match arca_repo::gc(&repository, &options).await {
                Ok(r) => {
                    messages.push(format!(
                        "volume repository: {} live blob(s); {} pack(s) condemned, {} repacked, {} deleted ({} bytes), \
                         {} spared, {} still under Object Lock, {} marker(s) waiting for the grace period, {} stale \
                         upload(s) aborted",
                        r.live_blobs,
                        r.packs_condemned,
                        r.packs_repacked,
                        r.packs_deleted,
                        r.bytes_deleted,
                        r.packs_spared,
                        r.packs_locked,
                        r.markers_pending,
                        r.uploads_aborted
                    ));
                    if let Some(e) = &r.uploads_abort_error {
                        messages.push(format!("volume repository: stale uploads not aborted: {e}"));
                    }
                    result.bytes_freed += r.bytes_deleted;
                    result.packs_deleted += r.packs_deleted;
                    result.markers_pending += r.markers_pending;
                }
                Err(e) => errors.push(format!("volume repository: {e}")),
            }
        }
        Err(e) => errors.push(e),
    }

    if errors.is_empty() {
        Ok(Maintained { result, messages })
    } else {
        Err(format!(
            "{}; done meanwhile: {}",
            errors.join("; "),
            messages.join("; ")
        ))
    }
}
