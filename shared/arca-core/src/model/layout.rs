//! The layout of a destination, above the repositories: where each cluster's data lies,
//! and where a recovery point's resource archive is. The one owner of these keys: the
//! agent writes by them, the control plane checks what agents report against them, the
//! credential vendors scope access by them. Inside each repository, the repository's own
//! format owns the keys (`arca_repo::layout`, the resource archive's store).
//!
//! ```text
//! <destination prefix>/<org>/<cluster>/resources/            resource archive store
//! <destination prefix>/<org>/<cluster>/resources/archives/<id> one recovery point's archive
//! <destination prefix>/<org>/<cluster>/volumes/               volume repository
//! ```

use crate::ids::{ClusterId, OrgId};
use crate::{Error, Result};

/// Folder of a cluster's resource archive store under its cluster prefix.
pub const RESOURCES_FOLDER: &str = "resources";
/// Folder of a cluster's volume repository under its cluster prefix.
pub const VOLUMES_FOLDER: &str = "volumes";
/// Where archives lie inside the resource archive store.
const ARCHIVES: &str = "archives";
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
/// `archive_store` (`<cluster prefix>resources`).
pub fn archive_location(archive_store: &str, archive_id: &str) -> String {
    format!("{archive_store}/{ARCHIVES}/{archive_id}")
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
            format!("{why}: expected <destination prefix>/{org}/{cluster}/{RESOURCES_FOLDER}/{ARCHIVES}/<archive id>"),
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
    let own = format!("{org}/{cluster}/{RESOURCES_FOLDER}");
    let under = match base.map(|b| b.trim_matches('/')) {
        Some("") => store == own,
        Some(base) => store == format!("{base}/{own}"),
        None => store == own || store.ends_with(&format!("/{own}")),
    };
    if !under {
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
