//! Linked AWS accounts without AWS: [`FakeCloud`], a [`CloudConnector`] that enforces
//! what moto does not (trust policies, ExternalIds, revoked roles).

use crate::Error;
use crate::model::cloud::AwsResource;
use crate::model::cloud::account::RoleRef;
use crate::model::cloud::inventory::{EbsVolume, EksCluster, EksNodegroup};
use crate::model::cloud::security::SecurityFacts;
use crate::ports::cloud::{CloudConnector, CloudFailure, NewEbsVolume};
use async_trait::async_trait;
use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

/// What AWS answers when a role cannot be assumed, whatever the reason (AWS does not say
/// whether the role is missing or the ExternalId wrong).
pub const ACCESS_DENIED: &str = "AccessDenied: User: arn:aws:sts::999988887777:assumed-role/arca-api is not \
                                 authorized to perform: sts:AssumeRole";

#[derive(Clone, Debug, Default)]
struct FakeRole {
    external_id: String,
    /// The account the credentials claim to belong to.
    account: String,
    revoked: Option<String>,
    regions: HashMap<String, std::result::Result<Vec<AwsResource>, String>>,
    /// What a security scan of a region reads (global facts are set on the first region).
    security: HashMap<String, SecurityFacts>,
}

/// A fake of linked accounts: roles with their trust (ExternalId), per-region resources,
/// failures on demand, EBS snapshots and EKS clusters it "creates".
#[derive(Default)]
pub struct FakeCloud {
    roles: Mutex<HashMap<String, FakeRole>>,
    aws: Mutex<FakeAws>,
}

#[derive(Default)]
struct FakeAws {
    next_id: u64,
    /// snapshot id -> (region, volume id, tags)
    snapshots: BTreeMap<String, (String, String, BTreeMap<String, String>)>,
    /// Volumes created from snapshots: volume id -> (region, the request). A repeated
    /// client token returns the volume it made, as EC2 does.
    volumes: BTreeMap<String, (String, NewEbsVolume)>,
    /// Volumes whose snapshot fails (e.g. the volume is gone).
    broken_volumes: BTreeMap<String, String>,
    /// (region, name) -> (spec it was created like, status checks left before ACTIVE)
    eks: BTreeMap<(String, String), (EksCluster, u32)>,
    nodegroups: Vec<(String, String, EksNodegroup)>,
    /// How many status checks a new EKS cluster stays CREATING.
    eks_creating_checks: u32,
}

impl FakeCloud {
    fn with_role<T>(&self, arn: &str, f: impl FnOnce(&mut FakeRole) -> T) -> T {
        let mut roles = self.roles.lock().unwrap_or_else(|e| e.into_inner());
        f(roles.entry(arn.to_string()).or_default())
    }

    /// A role whose trust policy requires `external_id`; its account is the ARN's.
    pub fn add_role(&self, arn: &str, external_id: &str) {
        let account = crate::model::cloud::account::role_account_id(arn).unwrap_or_default();
        self.with_role(arn, |r| {
            r.external_id = external_id.to_string();
            r.account = account;
        });
    }

    /// Makes the role's credentials claim another account (a mix-up to detect).
    pub fn set_account(&self, arn: &str, account: &str) {
        self.with_role(arn, |r| r.account = account.to_string());
    }

    pub fn set_resources(&self, arn: &str, region: &str, resources: Vec<AwsResource>) {
        self.with_role(arn, |r| {
            r.regions.insert(region.to_string(), Ok(resources));
        });
    }

    pub fn fail_region(&self, arn: &str, region: &str, message: &str) {
        self.with_role(arn, |r| {
            r.regions.insert(region.to_string(), Err(message.to_string()));
        });
    }

    /// What the security scan of `region` reads through the role (without, every service
    /// of the region is unreadable).
    pub fn set_security_facts(&self, arn: &str, facts: SecurityFacts) {
        self.with_role(arn, |r| {
            r.security.insert(facts.region.clone(), facts);
        });
    }

    /// The user deleted the role or changed its trust policy; `None` restores it.
    pub fn revoke(&self, arn: &str, why: Option<&str>) {
        self.with_role(arn, |r| r.revoked = why.map(str::to_string));
    }

    fn aws(&self) -> std::sync::MutexGuard<'_, FakeAws> {
        self.aws.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The EBS snapshots that exist: id -> (region, volume, tags).
    pub fn snapshots(&self) -> BTreeMap<String, (String, String, BTreeMap<String, String>)> {
        self.aws().snapshots.clone()
    }

    /// The volumes restores created: id -> (region, request).
    pub fn volumes(&self) -> BTreeMap<String, (String, NewEbsVolume)> {
        self.aws().volumes.clone()
    }

    /// Snapshots of `volume_id` fail with `why` from now on.
    pub fn break_volume(&self, volume_id: &str, why: &str) {
        self.aws().broken_volumes.insert(volume_id.to_string(), why.to_string());
    }

    /// New EKS clusters report CREATING for this many status checks, then ACTIVE.
    pub fn eks_takes(&self, checks: u32) {
        self.aws().eks_creating_checks = checks;
    }

    /// The EKS cluster is deleted (by someone in the console, say).
    pub fn delete_eks_cluster(&self, region: &str, name: &str) {
        self.aws().eks.remove(&(region.to_string(), name.to_string()));
    }

    /// EKS clusters created: (region, name) -> the spec they were created like.
    pub fn eks_clusters(&self) -> BTreeMap<(String, String), EksCluster> {
        self.aws()
            .eks
            .iter()
            .map(|(k, (c, _))| (k.clone(), c.clone()))
            .collect()
    }

    /// Node groups created: (region, cluster, node group).
    pub fn eks_nodegroups(&self) -> Vec<(String, String, EksNodegroup)> {
        self.aws().nodegroups.clone()
    }

    fn assume(&self, role: &RoleRef) -> std::result::Result<FakeRole, CloudFailure> {
        let roles = self.roles.lock().unwrap_or_else(|e| e.into_inner());
        match roles.get(&role.role_arn) {
            Some(r) if r.revoked.is_some() => Err(CloudFailure::RoleRejected(r.revoked.clone().unwrap_or_default())),
            Some(r) if r.external_id == role.external_id => Ok(r.clone()),
            _ => Err(CloudFailure::RoleRejected(ACCESS_DENIED.to_string())),
        }
    }
}

#[async_trait]
impl CloudConnector for FakeCloud {
    async fn verify(&self, role: &RoleRef) -> std::result::Result<String, CloudFailure> {
        self.assume(role).map(|r| r.account)
    }

    async fn discover(&self, role: &RoleRef, region: &str) -> std::result::Result<Vec<AwsResource>, CloudFailure> {
        let r = self.assume(role)?;
        match r.regions.get(region) {
            Some(Ok(resources)) => Ok(resources.clone()),
            Some(Err(message)) => Err(CloudFailure::Other(Error::transient(message.clone()))),
            None => Ok(Vec::new()),
        }
    }

    async fn security_facts(
        &self,
        role: &RoleRef,
        region: &str,
        global: bool,
    ) -> std::result::Result<SecurityFacts, CloudFailure> {
        let r = self.assume(role)?;
        let mut facts = r.security.get(region).cloned().unwrap_or_else(|| {
            SecurityFacts::unreadable(
                &r.account,
                region,
                global,
                "FakeCloud: no security facts for this region",
            )
        });
        if !global {
            facts.global = None;
        }
        Ok(facts)
    }

    async fn describe_volumes(
        &self,
        role: &RoleRef,
        region: &str,
        volume_ids: &[String],
    ) -> std::result::Result<Vec<EbsVolume>, CloudFailure> {
        let resources = self.discover(role, region).await?;
        Ok(resources
            .into_iter()
            .filter_map(|r| match r {
                AwsResource::EbsVolume(v) if volume_ids.contains(&v.volume_id) => Some(v),
                _ => None,
            })
            .collect())
    }

    async fn snapshot_volume(
        &self,
        role: &RoleRef,
        region: &str,
        volume_id: &str,
        tags: &BTreeMap<String, String>,
    ) -> std::result::Result<String, CloudFailure> {
        self.assume(role)?;
        let mut aws = self.aws();
        if let Some(why) = aws.broken_volumes.get(volume_id) {
            return Err(CloudFailure::Other(Error::invalid("volumeId", why.clone())));
        }
        aws.next_id += 1;
        let id = format!("snap-{:017x}", aws.next_id);
        aws.snapshots
            .insert(id.clone(), (region.to_string(), volume_id.to_string(), tags.clone()));
        Ok(id)
    }

    async fn create_volume_from_snapshot(
        &self,
        role: &RoleRef,
        region: &str,
        volume: &NewEbsVolume,
    ) -> std::result::Result<String, CloudFailure> {
        self.assume(role)?;
        let mut aws = self.aws();
        if !aws.snapshots.contains_key(&volume.snapshot_id) {
            return Err(CloudFailure::Other(Error::invalid(
                "snapshotId",
                format!(
                    "InvalidSnapshot.NotFound: the snapshot '{}' does not exist",
                    volume.snapshot_id
                ),
            )));
        }
        if let Some((id, _)) = aws
            .volumes
            .iter()
            .find(|(_, (_, v))| v.client_token == volume.client_token)
        {
            return Ok(id.clone());
        }
        aws.next_id += 1;
        let id = format!("vol-{:017x}", aws.next_id);
        aws.volumes.insert(id.clone(), (region.to_string(), volume.clone()));
        Ok(id)
    }

    async fn delete_volume_snapshot(
        &self,
        role: &RoleRef,
        _region: &str,
        snapshot_id: &str,
    ) -> std::result::Result<(), CloudFailure> {
        self.assume(role)?;
        self.aws().snapshots.remove(snapshot_id);
        Ok(())
    }

    async fn create_eks_cluster(
        &self,
        role: &RoleRef,
        region: &str,
        name: &str,
        like: &EksCluster,
    ) -> std::result::Result<(), CloudFailure> {
        self.assume(role)?;
        let mut aws = self.aws();
        let key = (region.to_string(), name.to_string());
        if aws.eks.contains_key(&key) {
            return Err(CloudFailure::Other(Error::conflict(format!(
                "ResourceInUseException: cluster already exists with name: {name}"
            ))));
        }
        let checks = aws.eks_creating_checks;
        aws.eks.insert(key, (like.clone(), checks));
        Ok(())
    }

    async fn eks_cluster_status(
        &self,
        role: &RoleRef,
        region: &str,
        name: &str,
    ) -> std::result::Result<Option<String>, CloudFailure> {
        self.assume(role)?;
        let mut aws = self.aws();
        Ok(aws
            .eks
            .get_mut(&(region.to_string(), name.to_string()))
            .map(|(_, left)| {
                if *left == 0 {
                    "ACTIVE".to_string()
                } else {
                    *left -= 1;
                    "CREATING".to_string()
                }
            }))
    }

    async fn create_eks_nodegroup(
        &self,
        role: &RoleRef,
        region: &str,
        cluster: &str,
        like: &EksNodegroup,
    ) -> std::result::Result<(), CloudFailure> {
        self.assume(role)?;
        let mut aws = self.aws();
        match aws.eks.get(&(region.to_string(), cluster.to_string())) {
            Some((_, 0)) => {}
            _ => {
                return Err(CloudFailure::Other(Error::conflict(format!(
                    "ResourceInUseException: cluster {cluster} is not ACTIVE"
                ))));
            }
        }
        aws.nodegroups
            .push((region.to_string(), cluster.to_string(), like.clone()));
        Ok(())
    }

    /// Like EKS: an endpoint and a certificate authority once the cluster is ACTIVE.
    async fn eks_cluster_access(
        &self,
        role: &RoleRef,
        region: &str,
        name: &str,
    ) -> std::result::Result<Option<crate::model::cloud::ebs::EksAccess>, CloudFailure> {
        self.assume(role)?;
        let aws = self.aws();
        Ok(match aws.eks.get(&(region.to_string(), name.to_string())) {
            Some((_, 0)) => Some(crate::model::cloud::ebs::EksAccess {
                endpoint: format!("https://{name}.{region}.eks.fake.invalid"),
                certificate_authority_data: fake_ca(name),
            }),
            _ => None,
        })
    }
}

/// The fake's certificate authority of an EKS cluster: base64, as EKS gives it (not a
/// certificate anything could verify with).
pub fn fake_ca(name: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(format!(
        "-----BEGIN CERTIFICATE-----\nfake CA of {name}\n-----END CERTIFICATE-----\n"
    ))
}
