//! The one-machine composition root: the control plane whose state is a redb file in a
//! data directory and whose queue, scheduler and RDS work queue live in the process.
//! The local API (`arca-api` without `ARCA_TABLE`) and `arca server` both open it here;
//! what they reach in AWS (linked accounts, Arca-managed storage) is added by
//! `arca_aws::wiring`, the same code the Lambdas use.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arca_core::control_plane::{ControlPlane, ControlPlaneConfig};
use arca_core::model::archive_key::{ArchiveKeyring, ArchiveMasterKey, MasterKeyForm};
use arca_core::model::plan::PlanLimits;
use arca_core::ports::item_store::ItemStore;
use arca_core::ports::queue::Queue;
use arca_core::ports::scheduler::Scheduler;
use arca_core::ports::{Clock, SystemClock};
use arca_core::store::Store;
use arca_core::{Error, Result};

use crate::{EmbeddedQueue, EmbeddedRdsWorkQueue, EmbeddedScheduler, RedbItemStore};

/// The name of the redb file inside the data directory.
pub const DB_FILE: &str = "arca.redb";
/// The key file single-machine mode keeps its archive master keys in, beside the state.
pub const ARCHIVE_MASTER_KEY_FILE: &str = "archive-master.key";

/// The in-process ports of a one-machine control plane, for whoever drives them
/// (`arca server`'s loops fire the scheduler's due schedules and drain the RDS queue,
/// which `arca_aws::wiring` hands the control plane with the RDS adapter).
#[derive(Clone)]
pub struct LocalPorts {
    pub items: Arc<RedbItemStore>,
    pub queue: Arc<EmbeddedQueue>,
    pub scheduler: Arc<EmbeddedScheduler>,
    pub rds_queue: Arc<EmbeddedRdsWorkQueue>,
}

/// Opens (creating if missing) the state in `data_dir` and wires the control plane over
/// it. Job messages are dead-lettered after `max_receives` deliveries, as SQS does on
/// AWS; LOCAL_FILESYSTEM destinations are allowed (this is single-machine mode).
pub fn open(
    data_dir: &Path,
    max_receives: u32,
    limits: PlanLimits,
    config: ControlPlaneConfig,
) -> Result<(ControlPlane, LocalPorts)> {
    std::fs::create_dir_all(data_dir).map_err(|e| file_error("creating", data_dir, e))?;
    let items = Arc::new(RedbItemStore::open(data_dir.join(DB_FILE))?);
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let ports = LocalPorts {
        items: items.clone(),
        queue: Arc::new(EmbeddedQueue::new(max_receives)),
        scheduler: Arc::new(EmbeddedScheduler::new(clock.clone())),
        rds_queue: Arc::new(EmbeddedRdsWorkQueue::new(clock)),
    };
    let config = ControlPlaneConfig {
        local_destinations: true,
        ..config
    };
    let cp = with_ports(items, ports.queue.clone(), ports.scheduler.clone(), limits, config);
    Ok((cp, ports))
}

/// A control plane over any item store with an in-process queue and scheduler: what
/// tests build on a temp-dir store or in memory.
pub fn in_process(
    items: Arc<dyn ItemStore>,
    max_receives: u32,
    limits: PlanLimits,
    config: ControlPlaneConfig,
) -> ControlPlane {
    let scheduler = Arc::new(EmbeddedScheduler::new(Arc::new(SystemClock)));
    with_ports(
        items,
        Arc::new(EmbeddedQueue::new(max_receives)),
        scheduler,
        limits,
        config,
    )
}

/// A control plane on the system clock over these ports (the end-to-end tests drive the
/// scheduler themselves).
pub fn with_ports(
    items: Arc<dyn ItemStore>,
    queue: Arc<dyn Queue>,
    scheduler: Arc<dyn Scheduler>,
    limits: PlanLimits,
    config: ControlPlaneConfig,
) -> ControlPlane {
    ControlPlane::new(Store::new(items), limits, Arc::new(SystemClock), config)
        .with_queue(queue)
        .with_scheduler(scheduler)
}

/// The archive master keys of single-machine mode: the `configured` ones if any, else
/// the key in `data_dir`'s key file, created (mode 0600) on first use. Losing that file
/// loses access to the archives sealed under it, so it lives next to the state and is
/// backed up with it. The file may hold several keys, current first, like
/// `ARCA_ARCHIVE_MASTER_KEY`.
pub fn archive_keyring(data_dir: &Path, configured: Option<ArchiveKeyring>) -> Result<ArchiveKeyring> {
    if let Some(ring) = configured {
        return Ok(ring);
    }
    std::fs::create_dir_all(data_dir).map_err(|e| file_error("creating", data_dir, e))?;
    let path = data_dir.join(ARCHIVE_MASTER_KEY_FILE);
    match std::fs::read_to_string(&path) {
        Ok(hex) => ArchiveKeyring::parse(&path.display().to_string(), &hex, MasterKeyForm::Hex),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            let key = ArchiveMasterKey::generate()?;
            let mut options = std::fs::OpenOptions::new();
            options.write(true).create_new(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
            let mut file = options.open(&path).map_err(|e| file_error("creating", &path, e))?;
            io::Write::write_all(&mut file, key.to_hex().as_bytes()).map_err(|e| file_error("writing", &path, e))?;
            Ok(ArchiveKeyring::new(key, vec![]))
        }
        Err(e) => Err(file_error("reading", &path, e)),
    }
}

/// The data directory single-machine mode uses unless told otherwise (`ARCA_DATA_DIR`).
pub fn default_data_dir() -> PathBuf {
    PathBuf::from("./arca-data")
}

fn file_error(doing: &str, path: &Path, e: io::Error) -> Error {
    Error::Permanent(Box::new(io::Error::new(
        e.kind(),
        format!("{doing} {}: {e}", path.display()),
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_local_archive_master_key_is_created_once_and_kept_private() {
        let dir = tempfile::tempdir().unwrap();
        let first = archive_keyring(dir.path(), None).unwrap();
        assert_eq!(
            archive_keyring(dir.path(), None).unwrap(),
            first,
            "reused, not regenerated"
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join(ARCHIVE_MASTER_KEY_FILE))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let configured = ArchiveKeyring::new(ArchiveMasterKey::from_hex("k", &"ab".repeat(32)).unwrap(), vec![]);
        assert_eq!(
            archive_keyring(dir.path(), Some(configured.clone())).unwrap(),
            configured,
            "the configured keys win"
        );
        std::fs::write(dir.path().join(ARCHIVE_MASTER_KEY_FILE), "short").unwrap();
        let err = archive_keyring(dir.path(), None).unwrap_err();
        assert!(err.to_string().contains(ARCHIVE_MASTER_KEY_FILE), "{err}");
    }

    #[tokio::test]
    async fn the_state_survives_a_reopen_and_local_destinations_are_allowed() {
        let dir = tempfile::tempdir().unwrap();
        let (cp, _) = open(dir.path(), 5, PlanLimits::default(), ControlPlaneConfig::default()).unwrap();
        assert!(cp.config().local_destinations);
        let org = cp
            .create_org(arca_core::control_plane::SignupRequest {
                org_name: "local".into(),
                admin_key_name: None,
            })
            .await
            .unwrap()
            .org;
        drop(cp);
        let (cp, ports) = open(dir.path(), 5, PlanLimits::default(), ControlPlaneConfig::default()).unwrap();
        let orgs = ports.items.partition_keys().await.unwrap();
        assert!(
            orgs.iter()
                .filter_map(|pk| arca_core::store::keys::org_of_pk(pk))
                .any(|o| o == org.id),
            "{orgs:?}"
        );
        drop(cp);
    }
}
