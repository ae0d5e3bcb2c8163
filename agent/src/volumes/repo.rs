//! The destination's volume repository (`shared/arca-repo`): where it is, how the agent
//! opens it and how a mover Job reaches it.
//!
//! One repository per cluster, at `<clusterPrefix>volumes` in the job's destination, so a
//! cluster's volumes deduplicate against each other. Its passphrase is derived from the
//! org's archive key (keyed BLAKE3, never the key itself), so every agent of the org, and
//! only they, can open it: a restore in another cluster included.

use std::collections::BTreeMap;
use std::sync::Arc;

use arca_aws::s3_connection::S3Connection;
use arca_core::model::destination::DestinationTarget;
use arca_core::model::layout;
use arca_core::ports::ObjectStore;
use arca_core::ports::credentials::{DestinationAccess, TemporaryCredentials};
use arca_repo::{KdfParams, PassphraseWrapper, RepoError, Repository};

use crate::renewal::{Renewal, RenewingCredentials, sdk_credentials};

/// The destination's store rooted at `prefix` (`""`: the destination's root). With
/// `renewal`, vended credentials are renewed from the control plane before they lapse
/// (`crate::renewal`); a user's keys from a Secret do not expire.
pub async fn open_store_at(
    access: &DestinationAccess,
    prefix: &str,
    renewal: Option<&Renewal>,
) -> Result<Arc<dyn ObjectStore>, String> {
    let prefix = prefix.trim_matches('/');
    match &access.target {
        DestinationTarget::LocalFilesystem { path } => {
            let root = if prefix.is_empty() {
                std::path::PathBuf::from(path)
            } else {
                std::path::Path::new(path).join(prefix)
            };
            Ok(Arc::new(arca_embedded::LocalFsObjectStore::new(root)))
        }
        DestinationTarget::S3 {
            bucket,
            credentials_ref,
            ..
        } => {
            if let Some(name) = credentials_ref
                && access.credentials.is_none()
            {
                return Err(format!(
                    "destination bucket {bucket}: its credentials Secret {name} was not read for this job"
                ));
            }
            let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest());
            match (&access.credentials, credentials_ref, renewal) {
                (Some(c), Some(_), _) => {
                    loader = loader.credentials_provider(crate::credentials_ref::secret_credentials(c));
                }
                (Some(c), None, Some(renewal)) => {
                    loader = loader
                        .credentials_provider(RenewingCredentials::new(c.clone(), renewal.clone()))
                        .identity_cache(
                            aws_config::identity::IdentityCache::lazy()
                                .buffer_time(crate::renewal::RENEW_BEFORE)
                                .build(),
                        );
                }
                (Some(c), None, None) => {
                    loader = loader.credentials_provider(sdk_credentials(c, "arca-vended"));
                }
                (None, ..) => {}
            }
            Ok(Arc::new(
                arca_aws::s3_connection::open_s3_destination(&access.target, prefix, loader)
                    .await?
                    .with_object_lock(access.object_lock),
            ))
        }
        DestinationTarget::ArcaManaged { .. } => {
            Err("the control plane answered Arca-managed storage without a concrete bucket".into())
        }
    }
}

/// `<clusterPrefix>volumes-<key id>` ([`layout`]): the repository of the job's key.
pub fn cluster_repository(access: &DestinationAccess) -> String {
    layout::cluster_folder(&access.cluster_prefix, &layout::volumes_folder(access.key_id.as_ref()))
}

/// The repository passphrase of a cluster's archive key.
pub fn passphrase(archive_key: &[u8; 32]) -> String {
    blake3::derive_key("arca 2026-11 volume repository passphrase v1", archive_key)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A repository in a destination, and the means to open it.
#[derive(Clone)]
pub struct Repo {
    /// Key prefix inside the destination.
    pub prefix: String,
    target: DestinationTarget,
    credentials: Option<TemporaryCredentials>,
    access: DestinationAccess,
    passphrase: String,
}

impl std::fmt::Debug for Repo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Repo")
            .field("prefix", &self.prefix)
            .field("url", &self.url())
            .finish_non_exhaustive()
    }
}

impl Repo {
    /// The repository at `prefix` of the job's destination.
    pub fn new(access: &DestinationAccess, prefix: &str, archive_key: &[u8; 32]) -> Result<Repo, String> {
        if let DestinationTarget::ArcaManaged { .. } = access.target {
            return Err("the control plane answered Arca-managed storage without a concrete bucket".into());
        }
        if let DestinationTarget::S3 {
            credentials_ref: Some(name),
            bucket,
            ..
        } = &access.target
            && access.credentials.is_none()
        {
            return Err(format!(
                "destination bucket {bucket}: its credentials Secret {name} was not read for this job"
            ));
        }
        Ok(Repo {
            prefix: prefix.trim_matches('/').to_string(),
            target: access.target.clone(),
            credentials: access.credentials.clone(),
            access: access.clone(),
            passphrase: passphrase(archive_key),
        })
    }

    /// The URL the mover's `--repo` takes.
    pub fn url(&self) -> String {
        match &self.target {
            DestinationTarget::LocalFilesystem { path } => {
                format!("file://{}/{}", path.trim_end_matches('/'), self.prefix)
            }
            DestinationTarget::S3 { bucket, .. } => format!("s3://{bucket}/{}", self.prefix),
            DestinationTarget::ArcaManaged { .. } => String::new(),
        }
    }

    /// A local destination's directory, which the mover mounts from its node (a path
    /// shared by the nodes, e.g. NFS, or a single-node cluster).
    pub fn host_path(&self) -> Option<String> {
        match &self.target {
            DestinationTarget::LocalFilesystem { path } => Some(path.clone()),
            _ => None,
        }
    }

    /// The mover's plain environment: region, endpoint, addressing and TLS trust of an S3
    /// destination.
    pub fn mover_env(&self) -> BTreeMap<String, String> {
        let mut env = BTreeMap::new();
        if let DestinationTarget::S3 { region, endpoint, .. } = &self.target {
            env.insert("AWS_REGION".into(), region.clone());
            if let Some(endpoint) = endpoint {
                env.insert("AWS_ENDPOINT_URL".into(), endpoint.clone());
            }
        }
        if let Some(connection) = S3Connection::of(&self.target) {
            env.extend(connection.env());
        }
        if let Some(lock) = self.access.object_lock
            && let Ok(json) = serde_json::to_string(&lock)
        {
            env.insert(super::mover::OBJECT_LOCK_ENV.into(), json);
        }
        env
    }

    /// The mover's Secret data (files in the mover, `mover::SECRET_DIR`): the passphrase
    /// and, for Arca-managed storage or a `credentialsRef` Secret, the keys with their
    /// expiry (`mover::CredentialsFile`). Never logged.
    pub fn mover_secret(&self) -> BTreeMap<String, String> {
        use super::mover::{CREDENTIALS_KEY, CredentialsFile, PASSWORD_KEY};
        let mut data = BTreeMap::from([(PASSWORD_KEY.to_string(), self.passphrase.clone())]);
        if let Some(c) = &self.credentials {
            let file = CredentialsFile {
                version: 1,
                access_key_id: c.access_key_id.clone(),
                secret_access_key: c.secret_access_key.clone(),
                session_token: crate::credentials_ref::session_token(c),
                expiration: Some(c.expiration),
            };
            // Plain strings and a timestamp: serialising cannot fail.
            if let Ok(json) = serde_json::to_string(&file) {
                data.insert(CREDENTIALS_KEY.to_string(), json);
            }
        }
        data
    }

    /// Opens the repository; with `create_with`, creates it when there is none yet.
    /// The repository if there is one (a cluster that never copied a volume has none).
    pub async fn open_existing(&self) -> Result<Option<Repository>, String> {
        let store = open_store_at(&self.access, &self.prefix, None).await?;
        let url = self.url();
        match Repository::open(store, &url, &PassphraseWrapper::new(self.passphrase.clone())).await {
            Ok(r) => Ok(Some(r)),
            Err(RepoError::NotARepository(_)) => Ok(None),
            Err(e) => Err(format!("opening the volume repository {url}: {e}")),
        }
    }

    pub async fn open(&self, create_with: Option<KdfParams>) -> Result<Repository, String> {
        let store = open_store_at(&self.access, &self.prefix, None).await?;
        let url = self.url();
        let wrapper = match create_with {
            Some(params) => PassphraseWrapper::with_params(self.passphrase.clone(), params),
            None => PassphraseWrapper::new(self.passphrase.clone()),
        };
        match Repository::open(store.clone(), &url, &wrapper).await {
            Ok(r) => Ok(r),
            Err(RepoError::NotARepository(_)) if create_with.is_some() => {
                match Repository::init(store.clone(), &url, &wrapper, None).await {
                    Ok(r) => Ok(r),
                    // Another agent made it meanwhile.
                    Err(RepoError::AlreadyExists(_)) => Repository::open(store, &url, &wrapper)
                        .await
                        .map_err(|e| format!("opening the volume repository {url}: {e}")),
                    Err(e) => Err(format!("creating the volume repository {url}: {e}")),
                }
            }
            Err(e) => Err(format!("opening the volume repository {url}: {e}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn access(target: DestinationTarget, credentials: Option<TemporaryCredentials>) -> DestinationAccess {
        DestinationAccess {
            destination_id: arca_core::ids::DestinationId::new(),
            target,
            cluster_prefix: "org/cl/".into(),
            credentials,
            archive_key: None,
            key_id: None,
            earlier_keys: Vec::new(),
            object_lock: None,
            customer_key: None,
        }
    }

    #[test]
    fn local_repositories_are_file_urls_under_the_cluster_prefix() {
        let a = access(DestinationTarget::LocalFilesystem { path: "/srv/b/".into() }, None);
        let repo = Repo::new(&a, &cluster_repository(&a), &[1; 32]).unwrap();
        assert_eq!(repo.url(), "file:///srv/b/org/cl/volumes");
        assert_eq!(repo.host_path().as_deref(), Some("/srv/b/"));
        assert!(repo.mover_env().is_empty());
        assert_eq!(repo.mover_secret().len(), 1);
    }

    #[test]
    fn s3_repositories_carry_region_endpoint_and_vended_credentials_in_the_secret() {
        let target: DestinationTarget = serde_json::from_value(serde_json::json!({
            "kind": "S3", "bucket": "bk", "region": "eu-west-1", "endpoint": "http://moto:5000", "prefix": "p"
        }))
        .unwrap();
        let creds = TemporaryCredentials {
            access_key_id: "ASIA".into(),
            secret_access_key: "very-secret".into(),
            session_token: "tok".into(),
            expiration: chrono::DateTime::UNIX_EPOCH,
        };
        let a = access(target, Some(creds));
        let repo = Repo::new(&a, "p/org/cl/volumes", &[1; 32]).unwrap();
        assert_eq!(repo.url(), "s3://bk/p/org/cl/volumes");
        assert_eq!(repo.mover_env()["AWS_ENDPOINT_URL"], "http://moto:5000");
        let secret = repo.mover_secret();
        let file: crate::volumes::mover::CredentialsFile =
            serde_json::from_str(&secret[crate::volumes::mover::CREDENTIALS_KEY]).unwrap();
        assert_eq!(file.secret_access_key, "very-secret");
        assert_eq!(file.session_token.as_deref(), Some("tok"));
        assert_eq!(file.expiration, Some(chrono::DateTime::UNIX_EPOCH));
        assert_eq!(secret[crate::volumes::mover::PASSWORD_KEY], passphrase(&[1; 32]));
        assert!(!format!("{repo:?}").contains("very-secret"));
        assert!(!format!("{repo:?}").contains(&passphrase(&[1; 32])));
    }

    #[test]
    fn the_passphrase_is_derived_not_the_key() {
        let p = passphrase(&[7; 32]);
        assert_eq!(p.len(), 64);
        assert!(!p.contains(&"07".repeat(32)));
        assert_eq!(p, passphrase(&[7; 32]));
        assert_ne!(p, passphrase(&[8; 32]));
    }
}
