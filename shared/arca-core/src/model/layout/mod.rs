//! The layout of a destination bucket (or directory), the one owner of its object keys:
//! the agent writes and reads by them, the control plane checks what agents report
//! against them, the credential vendors scope access by them. Nothing else formats a key.
//!
//! ```text
//! <destination prefix>/<org>/<cluster>/                                  cluster prefix (this module)
//!   resources-<key id>/                                                  resource archive store ([`ArchiveLayout`])
//!     archives/<id>/manifest, archives/<id>/index/<name>                 one point's archive (its location)
//!     packs/<pack>, pack-index/<id>, gc/<id>, locks/gc                   shared packs, their indexes, gc
//!   volumes-<key id>/                                                    volume repository ([`RepositoryLayout`])
//!     config, keys/<id>, data/<xx>/<pack>, index/<id>, snapshots/<id>, gc/<id>, locks/gc
//!   keys/<key id>                                                        a customer-held key, wrapped ([`customer_key_file`])
//! ```
//!
//! One pair of repositories per key of the cluster ([`KeyId`]: its generation and
//! master): a repository is sealed with one key, so a rotated key starts new ones, and a
//! point's location names the key that opens it. Agents that hold a key of their own
//! (`ARCA_ARCHIVE_KEY`, no key id from the control plane) use `resources` and `volumes`.

mod archive;
mod repository;

pub use archive::ArchiveLayout;
pub use repository::RepositoryLayout;

use crate::ids::{ClusterId, OrgId};
use crate::model::archive_key::KeyId;
use crate::{Error, Result};

/// Folder of a cluster's resource archive stores under its cluster prefix (before the key id).
pub const RESOURCES_FOLDER: &str = "resources";
/// Folder of a cluster's volume repositories under its cluster prefix (before the key id).
pub const VOLUMES_FOLDER: &str = "volumes";

/// The folder of the resource archive store sealed with `key`.
pub fn resources_folder(key: Option<&KeyId>) -> String {
    keyed_folder(RESOURCES_FOLDER, key)
}

/// The folder of the volume repository whose passphrase comes from `key`.
pub fn volumes_folder(key: Option<&KeyId>) -> String {
    keyed_folder(VOLUMES_FOLDER, key)
}

fn keyed_folder(folder: &str, key: Option<&KeyId>) -> String {
    match key {
        Some(key) => format!("{folder}-{key}"),
        None => folder.to_string(),
    }
}

/// Which key a resource archive store's folder name says sealed it: `Ok(None)` for
/// the plain `resources` (an agent's own key), `Err` when it is no such folder.
fn key_of_resources_folder(folder: &str) -> std::result::Result<Option<KeyId>, ()> {
    match folder.strip_prefix(RESOURCES_FOLDER) {
        Some("") => Ok(None),
        Some(rest) => rest
            .strip_prefix('-')
            .and_then(|id| id.parse().ok())
            .map(Some)
            .ok_or(()),
        None => Err(()),
    }
}

/// The key that opens the point at `location` (an archive's location, checked when it
/// was reported): `None` for stores sealed with an agent's own key.
pub fn key_of_location(location: &str) -> Option<KeyId> {
    let (store, _) = split_location(location)?;
    let folder = store.rsplit('/').next()?;
    key_of_resources_folder(folder).ok().flatten()
}
/// Where archives lie inside the resource archive store.
pub(crate) const ARCHIVES: &str = "archives";
/// The longest location an agent may report (keys are at most 1024 bytes on S3).
pub const MAX_LOCATION_BYTES: usize = 900;

/// The prefix of a cluster's data inside a destination: `<base>/<org>/<cluster>/`.
pub fn cluster_prefix(base: &str, org: &OrgId, cluster: &ClusterId) -> String {
    let base = base.trim_matches('/');
    if base.is_empty() {
        format!("{org}/{cluster}/")
    } else {
        format!("{base}/{org}/{cluster}/")
    }
}

/// Folder of a cluster's customer-held keys under its cluster prefix.
pub const KEYS_FOLDER: &str = "keys";

/// Where the cluster key `key` lies, wrapped by the destination's customer key, relative
/// to the cluster prefix: `keys/<key id>`. Beside the repositories it opens, so a copy
/// of the bucket (replication, a move to another account) carries what it needs.
pub fn customer_key_file(key: &KeyId) -> String {
    format!("{KEYS_FOLDER}/{key}")
}

/// `<cluster prefix><folder>`, without a trailing `/`.
pub fn cluster_folder(cluster_prefix: &str, folder: &str) -> String {
    let base = cluster_prefix.trim_matches('/');
    if base.is_empty() {
        folder.to_string()
    } else {
        format!("{base}/{folder}")
    }
}

/// A recovery point's location: its archive inside the resource archive store at
/// `archive_store` (`<cluster prefix>resources-<key id>`).
pub fn archive_location(archive_store: &str, archive_id: &str) -> String {
    ArchiveLayout::new(archive_store).archive(archive_id)
}

/// A location split into the archive store's prefix and the archive id.
pub fn split_location(location: &str) -> Option<(&str, &str)> {
    let (base, id) = location.trim_end_matches('/').rsplit_once(&format!("/{ARCHIVES}/"))?;
    (!base.is_empty() && !id.is_empty() && id.bytes().all(|b| b.is_ascii_alphanumeric())).then_some((base, id))
}

/// Checks a location an agent reports for a backup of `cluster`: an archive in that
/// cluster's own resource archive store, under `base` (the destination's prefix; `None`
/// when only the deployment knows it, as for Arca-managed storage). A point whose
/// location named another cluster's archive would have that archive read by restores and
/// deleted by retention.
pub fn check_reported_location(location: &str, base: Option<&str>, org: &OrgId, cluster: &ClusterId) -> Result<()> {
    let refuse = |why: &str| {
        Err(Error::invalid(
            "backup.prefix",
            format!(
                "{why}: expected <destination prefix>/{org}/{cluster}/{RESOURCES_FOLDER}-<key id>/{ARCHIVES}/<archive id>"
            ),
        ))
    };
    if location.len() > MAX_LOCATION_BYTES {
        return refuse(&format!("longer than {MAX_LOCATION_BYTES} bytes"));
    }
    if location.starts_with('/')
        || location.split('/').any(|part| part == ".." || part == ".")
        || location.contains('\0')
    {
        return refuse("not a relative key prefix");
    }
    let Some((store, _id)) = split_location(location) else {
        return refuse("not an archive's location");
    };
    let Some((parent, folder)) = store.rsplit_once('/') else {
        return refuse("outside this cluster's resource archive store");
    };
    let own = format!("{org}/{cluster}");
    let under = match base.map(|b| b.trim_matches('/')) {
        Some("") => parent == own,
        Some(base) => parent == format!("{base}/{own}"),
        None => parent == own || parent.ends_with(&format!("/{own}")),
    };
    if !under || key_of_resources_folder(folder).is_err() {
        return refuse("outside this cluster's resource archive store");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_are_per_org_and_cluster() {
        let org = OrgId::new();
        let cl = ClusterId::new();
        assert_eq!(cluster_prefix("", &org, &cl), format!("{org}/{cl}/"));
        assert_eq!(cluster_prefix("/backups/", &org, &cl), format!("backups/{org}/{cl}/"));
        assert_eq!(
            cluster_folder(&cluster_prefix("", &org, &cl), VOLUMES_FOLDER),
            format!("{org}/{cl}/volumes")
        );
        assert_eq!(cluster_folder("", RESOURCES_FOLDER), "resources");
    }

    #[test]
    fn a_points_location_names_its_key() {
        let (org, cl) = (OrgId::new(), ClusterId::new());
        let key: KeyId = "g3-0a1b2c3d".parse().unwrap();
        let store = cluster_folder(&cluster_prefix("b", &org, &cl), &resources_folder(Some(&key)));
        assert_eq!(store, format!("b/{org}/{cl}/resources-g3-0a1b2c3d"));
        let location = archive_location(&store, "01ABC");
        assert_eq!(key_of_location(&location), Some(key.clone()));
        assert!(check_reported_location(&location, Some("b"), &org, &cl).is_ok());
        assert_eq!(volumes_folder(Some(&key)), "volumes-g3-0a1b2c3d");
        assert_eq!(volumes_folder(None), "volumes");

        let plain = archive_location(
            &cluster_folder(&cluster_prefix("b", &org, &cl), &resources_folder(None)),
            "01ABC",
        );
        assert_eq!(key_of_location(&plain), None);
        assert!(check_reported_location(&plain, Some("b"), &org, &cl).is_ok());
        for folder in [
            "resources-g0-0a1b2c3d",
            "resources-x",
            "resourcesx",
            "volumes-g3-0a1b2c3d",
        ] {
            let bad = format!("b/{org}/{cl}/{folder}/archives/01ABC");
            assert!(check_reported_location(&bad, Some("b"), &org, &cl).is_err(), "{folder}");
        }
    }

    #[test]
    fn locations_split_into_archive_store_and_id() {
        assert_eq!(
            split_location("a/b/resources/archives/01ABC"),
            Some(("a/b/resources", "01ABC"))
        );
        assert_eq!(split_location("resources/archives/x-y"), None, "ids are alphanumeric");
        assert_eq!(split_location("archives/x"), None, "no store");
        assert_eq!(split_location("org/cl/resources/archives/../x"), None);
        assert_eq!(split_location("/archives/01abc"), None);
    }

    #[test]
    fn only_the_clusters_own_archives_are_accepted() {
        let (org, cl, other) = (OrgId::new(), ClusterId::new(), ClusterId::new());
        let own = |base: &str| {
            archive_location(
                &cluster_folder(&cluster_prefix(base, &org, &cl), RESOURCES_FOLDER),
                "01ABC",
            )
        };
        assert!(check_reported_location(&own(""), Some(""), &org, &cl).is_ok());
        assert!(check_reported_location(&own("backups"), Some("backups"), &org, &cl).is_ok());
        assert!(
            check_reported_location(&own("repositories"), None, &org, &cl).is_ok(),
            "managed"
        );

        let theirs = archive_location(
            &cluster_folder(&cluster_prefix("backups", &org, &other), RESOURCES_FOLDER),
            "01ABC",
        );
        for (bad, base) in [
            (theirs.as_str(), Some("backups")),
            (theirs.as_str(), None),
            (&own("elsewhere"), Some("backups")),
            (
                &format!("backups/{org}/{cl}/resources/../../{other}/resources/archives/01ABC"),
                Some("backups"),
            ),
            (
                &format!("/backups/{org}/{cl}/resources/archives/01ABC"),
                Some("backups"),
            ),
            ("resources/archives/g1", Some("")),
            ("", Some("")),
            (&format!("{}{}", "x/".repeat(500), own("")), None),
        ] {
            let err = check_reported_location(bad, base, &org, &cl).unwrap_err();
            assert!(err.to_string().contains("backup.prefix"), "{bad}: {err}");
        }
    }
}
