//! Orgs, sign-up, API keys and authentication.

use crate::ids::{ApiKeyId, OrgId, PolicyId};
use crate::model::auth::{ApiKey, ApiKeySpec, CreatedApiKey, Operation, Principal, Role};
use crate::model::destination::Destination;
use crate::model::org::{Org, OrgSpec};
use crate::model::plan::Plan;
use crate::model::policy::{Policy, PolicySpec};
use crate::model::secret::{API_KEY_PREFIX, Secret};
use crate::store::Tx;
use crate::store::page::{Listing, PageRequest};
use crate::{Error, Result, validate};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{ControlPlane, retry_on_stale};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SignupRequest {
    pub org_name: String,
    /// Name of the bootstrap admin key; "bootstrap admin" when absent.
    #[serde(default)]
    pub admin_key_name: Option<String>,
}

/// What sign-up returns: the org, its first admin key (secret shown this once) and
/// its default policy.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SignupResult {
    pub org: Org,
    pub admin_key: CreatedApiKey,
    pub default_policy: Policy,
}

impl ControlPlane {
    /// Public sign-up: refused with `Forbidden` unless the deployment allows it.
    pub async fn signup(&self, request: SignupRequest) -> Result<SignupResult> {
        if !self.config.signup_open {
            return Err(Error::forbidden("sign-up is closed on this deployment"));
        }
        self.create_org(request).await
    }

    /// Creates an org (on `config.signup_plan`) with its bootstrap admin key and the default hourly
    /// policy, all in one transaction. Not gated by `signup_open`: for tooling.
    pub async fn create_org(&self, request: SignupRequest) -> Result<SignupResult> {
        let now = self.now();
        let name = validate::name("orgName", &request.org_name)?;
        let key_name = validate::name(
            "adminKeyName",
            request.admin_key_name.as_deref().unwrap_or("bootstrap admin"),
        )?;
        let mut org = Org {
            id: OrgId::new(),
            name,
            plan: self.config.signup_plan,
            default_destination_id: None,
            audit_retention_days: crate::model::org::DEFAULT_AUDIT_RETENTION_DAYS,
            created_at: now,
            updated_at: now,
            version: 0,
        };
        let (mut key, secret) = self.new_api_key(
            &org.id,
            ApiKeySpec {
                name: key_name,
                role: Role::Admin,
            },
            now,
        )?;
        let spec = PolicySpec::default_hourly().validated(org.plan, &self.limits)?;
        let mut policy = Policy {
            id: PolicyId::new(),
            org_id: org.id,
            spec,
            used_by: Vec::new(),
            created_at: now,
            updated_at: now,
            version: 0,
        };
        let mut tx = Tx::new();
        tx.create(&mut org)?.create(&mut key)?.create(&mut policy)?;
        self.store.commit(tx).await?;
        Ok(SignupResult {
            org,
            admin_key: CreatedApiKey { api_key: key, secret },
            default_policy: policy,
        })
    }

    pub(in crate::control_plane) fn new_api_key(
        &self,
        org: &OrgId,
        spec: ApiKeySpec,
        now: DateTime<Utc>,
    ) -> Result<(ApiKey, Secret)> {
        let spec = spec.validated()?;
        let secret = Secret::generate(API_KEY_PREFIX)?;
        let key = ApiKey {
            id: ApiKeyId::new(),
            org_id: *org,
            name: spec.name,
            role: spec.role,
            snippet: secret.snippet(),
            created_at: now,
            updated_at: now,
            version: 0,
            secret_hash: Some(secret.hash()),
        };
        Ok((key, secret))
    }

    /// Who a presented API key belongs to. Any failure is `Unauthenticated`, with no
    /// hint whether the key is malformed, unknown or deleted.
    pub async fn authenticate(&self, presented: &Secret) -> Result<Principal> {
        self.authenticate_key(presented).await.map(|(principal, _)| principal)
    }

    /// [`Self::authenticate`], with the key that authenticated (its name is what the
    /// audit trail records; never its secret).
    pub async fn authenticate_key(&self, presented: &Secret) -> Result<(Principal, ApiKey)> {
        let text = presented.expose();
        if !text.starts_with(API_KEY_PREFIX) || text.len() > 200 {
            return Err(Error::Unauthenticated);
        }
        match self.store.find_api_key_by_hash_cross_tenant(&presented.hash()).await? {
            Some(key) => Ok((
                Principal {
                    org_id: key.org_id,
                    role: key.role,
                    api_key_id: Some(key.id),
                },
                key,
            )),
            None => Err(Error::Unauthenticated),
        }
    }

    pub async fn get_org(&self, p: &Principal) -> Result<Org> {
        p.require(Operation::GetOrg)?;
        self.store.get::<Org>(&p.org_id, &p.org_id).await
    }

    /// Renames the org or sets its default destination (admin).
    pub async fn update_org(&self, p: &Principal, spec: OrgSpec, expected_version: u64) -> Result<Org> {
        p.require(Operation::UpdateOrg)?;
        let spec = spec.validated()?;
        if let Some(dest) = &spec.default_destination_id {
            self.existing::<Destination>(&p.org_id, dest, "defaultDestinationId")
                .await?;
        }
        let mut org = self.store.get::<Org>(&p.org_id, &p.org_id).await?;
        org.name = spec.name;
        org.default_destination_id = spec.default_destination_id;
        if let Some(days) = spec.audit_retention_days {
            org.audit_retention_days = days;
        }
        org.updated_at = self.now();
        self.store.update(org, expected_version).await
    }

    /// The deployment operator sets an org's plan, proving it with the operator token
    /// (whose SHA-256 the deployment is configured with). An org's API key, whatever its
    /// role, is not that token: 401. A deployment without one: 403.
    pub async fn operator_set_plan(&self, presented: &Secret, org_id: &OrgId, plan: Plan) -> Result<Org> {
        let Some(expected) = &self.config.operator_token_hash else {
            return Err(Error::Forbidden {
                message: "this deployment has no operator token (ARCA_OPERATOR_TOKEN_SHA256): plans are set by \
                          whoever runs it, with that token"
                    .into(),
            });
        };
        // Hashes are compared, not the token: timing reveals nothing usable about it.
        if presented.expose().len() > 512 || presented.hash() != *expected {
            return Err(Error::Unauthenticated);
        }
        self.set_plan(org_id, plan).await
    }

    /// Changes an org's plan (billing, not a user). Existing policies are not
    /// re-validated: limits apply to the next edit and to new runs.
    pub async fn set_plan(&self, org_id: &OrgId, plan: Plan) -> Result<Org> {
        self.retrying(|| async move {
            let mut org = self.store.get::<Org>(org_id, org_id).await?;
            let expected = org.version;
            org.plan = plan;
            org.updated_at = self.now();
            self.store.update(org, expected).await.map_err(retry_on_stale)
        })
        .await
    }

    /// Creates an API key (admin); the plaintext is in the result, and nowhere else.
    pub async fn create_api_key(&self, p: &Principal, spec: ApiKeySpec) -> Result<CreatedApiKey> {
        p.require(Operation::CreateApiKey)?;
        let org = self.store.get::<Org>(&p.org_id, &p.org_id).await?;
        let existing = self.store.list_all::<ApiKey>(&p.org_id).await?;
        self.limits.check_api_key_count(org.plan, existing.len())?;
        let (key, secret) = self.new_api_key(&p.org_id, spec, self.now())?;
        let api_key = self.store.create(key).await?;
        Ok(CreatedApiKey { api_key, secret })
    }

    pub async fn list_api_keys(&self, p: &Principal, page: &PageRequest) -> Result<Listing<ApiKey>> {
        p.require(Operation::ListApiKeys)?;
        self.store.list(&p.org_id, page).await
    }

    pub async fn get_api_key(&self, p: &Principal, id: &ApiKeyId) -> Result<ApiKey> {
        p.require(Operation::GetApiKey)?;
        self.store.get(&p.org_id, id).await
    }

    /// Deletes a key (admin). The last admin key cannot go: the org would be locked out.
    pub async fn delete_api_key(&self, p: &Principal, id: &ApiKeyId, expected_version: u64) -> Result<()> {
        p.require(Operation::DeleteApiKey)?;
        let org = p.org_id;
        self.retrying(|| async move {
            let key = self.store.get_at::<ApiKey>(&org, id, expected_version).await?;
            let mut tx = Tx::new();
            tx.delete::<ApiKey>(&org, id, expected_version);
            if key.role == Role::Admin {
                // Another admin key must still be there, unchanged, when this one goes (one
                // transaction): two admins deleting each other's keys at once cannot leave
                // the org with none; the loser re-reads and is refused.
                let other = self
                    .store
                    .list_all::<ApiKey>(&org)
                    .await?
                    .into_iter()
                    .filter(|k| k.role == Role::Admin && k.id != key.id)
                    .min_by_key(|k| k.id)
                    .ok_or_else(|| {
                        Error::conflict_of(
                            crate::error::ConflictKind::LastAdminKey,
                            "this is the org's last admin key: create another admin key first",
                        )
                    })?;
                tx.check::<ApiKey>(&org, &other.id, other.version);
            }
            self.store.commit(tx).await.map_err(super::retry_on_conflict)
        })
        .await
    }
}
