//! Customer-held keys (docs/security.md): a destination whose `customerKey` names a KMS
//! key of the user's keeps each cluster key in the destination itself, at
//! `<cluster prefix>keys/<key id>` ([`layout::customer_key_file`]), wrapped by that KMS
//! key. The control plane hands out key ids only; the agent unwraps the keys through KMS
//! for every job, creates a cluster's key at its first backup there, and re-wraps it when
//! the destination names another KMS key (the data it seals is not rewritten).
//!
//! Nothing falls back: a key KMS will not unwrap (disabled, pending deletion, access
//! revoked) fails the job with KMS's reason before anything is read or written.

use std::collections::HashMap;
use std::sync::Arc;

use arca_core::model::archive_key::{ArchiveKeyHex, KeyId};
use arca_core::model::destination::{CustomerKey, DestinationTarget};
use arca_core::model::layout;
use arca_core::ports::ObjectStore;
use arca_core::ports::credentials::DestinationAccess;
use arca_repo::crypto::MasterKey;
use arca_repo::format::MAX_KEY_FILE_LEN;
use arca_repo::keys::{KeyFile, decode_key_file};
use arca_repo::{KeyWrapper, RepoError};
use async_trait::async_trait;
use aws_sdk_kms::config::http::HttpResponse;
use aws_sdk_kms::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_kms::primitives::Blob;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use bytes::Bytes;

/// The encryption context every wrapping is bound to: where its key file lies. KMS
/// refuses to unwrap a key file copied to another place (another cluster's prefix), so a
/// writer of the bucket cannot swap one cluster's key in for another's.
const CONTEXT_KEY: &str = "arca:key-file";

/// The KMS key that wraps a destination's cluster keys: the [`KeyWrapper`] port on KMS
/// (`Encrypt`/`Decrypt` of the 32 key bytes, bound to the key file's place).
pub struct KmsKeyWrapper {
    client: aws_sdk_kms::Client,
    key_arn: String,
    context: HashMap<String, String>,
}

impl KmsKeyWrapper {
    /// Wraps with `key_arn` through `client`, for the key file at `key_file`.
    pub fn new(client: aws_sdk_kms::Client, key_arn: &str, key_file: &str) -> Self {
        KmsKeyWrapper {
            client,
            key_arn: key_arn.to_owned(),
            context: HashMap::from([(CONTEXT_KEY.to_owned(), key_file.to_owned())]),
        }
    }
}

#[async_trait]
impl KeyWrapper for KmsKeyWrapper {
    async fn wrap(&self, key: &MasterKey, created_ms: u64) -> arca_repo::Result<KeyFile> {
        let out = self
            .client
            .encrypt()
            .key_id(&self.key_arn)
            .plaintext(Blob::new(key.as_bytes().to_vec()))
            .set_encryption_context(Some(self.context.clone()))
            .send()
            .await
            .map_err(|e| kms_error(&self.key_arn, "Encrypt", e))?;
        let wrapped = out.ciphertext_blob().ok_or_else(|| {
            RepoError::KeyService(format!("KMS key {}: Encrypt returned no ciphertext", self.key_arn))
        })?;
        Ok(KeyFile {
            version: 1,
            kind: "kms".into(),
            created_ms,
            kdf: None,
            salt: None,
            kms_key_id: Some(self.key_arn.clone()),
            wrapped: B64.encode(wrapped.as_ref()),
        })
    }

    async fn unwrap(&self, file: &KeyFile) -> arca_repo::Result<Option<MasterKey>> {
        if file.kind != "kms" {
            return Ok(None);
        }
        // The key the file names, which is this wrapper's until a change of key re-wraps it.
        let key_id = file.kms_key_id.as_deref().unwrap_or(&self.key_arn);
        let wrapped = B64
            .decode(&file.wrapped)
            .map_err(|_| RepoError::corrupt("key file", "wrapped key is not base64"))?;
        let out = self
            .client
            .decrypt()
            .key_id(key_id)
            .ciphertext_blob(Blob::new(wrapped))
            .set_encryption_context(Some(self.context.clone()))
            .send()
            .await
            .map_err(|e| kms_error(key_id, "Decrypt", e))?;
        let plain = out
            .plaintext()
            .ok_or_else(|| RepoError::KeyService(format!("KMS key {key_id}: Decrypt returned no plaintext")))?;
        MasterKey::from_bytes(plain.as_ref())
            .map(Some)
            .ok_or_else(|| RepoError::corrupt("key file", "the unwrapped key is not 32 bytes"))
    }
}

/// One line naming the key, the call and why KMS refused it, with what to do for the
/// usual causes. Never the key material (KMS errors carry none).
fn kms_error<E>(key: &str, call: &str, err: SdkError<E, HttpResponse>) -> RepoError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    let code = err.code().map(str::to_owned);
    let message = err.message().map(str::to_owned);
    let why = match code.as_deref() {
        Some("DisabledException") => "the key is disabled: enable it to back up or restore here".to_string(),
        Some("KMSInvalidStateException") => {
            "the key cannot be used in its state (pending deletion or import): cancel its deletion".to_string()
        }
        Some("AccessDeniedException" | "AccessDenied") => format!(
            "access denied: the agent's identity (or the bucket's credentialsRef) needs kms:Encrypt and kms:Decrypt \
             on the key ({})",
            message.as_deref().unwrap_or("no detail")
        ),
        Some("NotFoundException") => "the key does not exist (in that account and region)".to_string(),
        Some("InvalidCiphertextException") => {
            "the key file was not wrapped by this key for this place (moved or replaced)".to_string()
        }
        Some(code) => format!("{code}: {}", message.as_deref().unwrap_or("no detail")),
        // An answer without a code KMS would give (a proxy's, an emulator's): its status.
        None => match &err {
            SdkError::ServiceError(e) if e.raw().status().as_u16() == 403 => {
                "HTTP 403: access denied (the identity's IAM policy or the key's policy refuses it)".to_string()
            }
            SdkError::ServiceError(e) => format!("HTTP {} without an error code", e.raw().status().as_u16()),
            other => format!("{}", DisplayErrorContext(other)),
        },
    };
    RepoError::KeyService(format!("KMS key {key}: {call} refused: {why}"))
}

/// A KMS client for `key`: its region and endpoint; the bucket's keys when the
/// destination names a credentials Secret (a cluster outside AWS reaches both with
/// them), else the agent's own identity (IRSA, instance role). Vended credentials are
/// never used: their session policy covers the bucket only.
async fn kms_client(access: &DestinationAccess, key: &CustomerKey) -> aws_sdk_kms::Client {
    let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new(key.region().to_owned()));
    if let Some(endpoint) = &key.endpoint {
        loader = loader.endpoint_url(endpoint);
    }
    if let (
        DestinationTarget::S3 {
            credentials_ref: Some(_),
            ..
        },
        Some(c),
    ) = (&access.target, &access.credentials)
    {
        loader = loader.credentials_provider(crate::credentials_ref::secret_credentials(c));
    }
    aws_sdk_kms::Client::new(&loader.load().await)
}

/// `access` with the keys its destination's customer key wraps unwrapped into
/// [`DestinationAccess::archive_key`] (its own and each earlier one's), read from
/// `store` (rooted at the destination's root). With `writes` (a job that may write: a
/// backup, a deletion, maintenance), the job's key is created when the cluster has none
/// yet, and key files wrapped by another KMS key than the destination's are re-wrapped.
/// Earlier keys without a key file sealed nothing: they are dropped.
pub async fn unwrap_keys(
    mut access: DestinationAccess,
    store: &Arc<dyn ObjectStore>,
    writes: bool,
) -> Result<DestinationAccess, String> {
    let Some(customer) = access.customer_key.clone() else {
        return Ok(access);
    };
    let client = kms_client(&access, &customer).await;
    let keys = ClusterKeys {
        client,
        customer,
        store: store.clone(),
        cluster_prefix: access.cluster_prefix.clone(),
        writes,
    };
    if access.archive_key.is_none()
        && let Some(id) = &access.key_id
    {
        let key = keys.open(id, writes).await?.ok_or_else(|| {
            format!(
                "{}: the key file is missing, so nothing it sealed can be read",
                keys.path(id)
            )
        })?;
        access.archive_key = Some(key);
    }
    let mut earlier = Vec::new();
    for mut keyed in std::mem::take(&mut access.earlier_keys) {
        if keyed.archive_key.is_none() {
            match keys.open(&keyed.key_id, false).await? {
                Some(key) => keyed.archive_key = Some(key),
                None => continue,
            }
        }
        earlier.push(keyed);
    }
    access.earlier_keys = earlier;
    Ok(access)
}

/// A cluster's key files in one destination, and the KMS key they are to be wrapped by.
struct ClusterKeys {
    client: aws_sdk_kms::Client,
    customer: CustomerKey,
    store: Arc<dyn ObjectStore>,
    cluster_prefix: String,
    writes: bool,
}

impl ClusterKeys {
    fn path(&self, id: &KeyId) -> String {
        layout::cluster_folder(&self.cluster_prefix, &layout::customer_key_file(id))
    }

    fn wrapper(&self, key_arn: &str, path: &str) -> KmsKeyWrapper {
        KmsKeyWrapper::new(self.client.clone(), key_arn, path)
    }

    /// The key `id`, unwrapped; created when absent and `create`; `None` when absent.
    async fn open(&self, id: &KeyId, create: bool) -> Result<Option<ArchiveKeyHex>, String> {
        let path = self.path(id);
        let file = match self.read(&path).await? {
            Some(file) => file,
            None if create => return self.create(&path).await.map(Some),
            None => return Ok(None),
        };
        let key = self
            .wrapper(&self.customer.kms_key_arn, &path)
            .unwrap(&file)
            .await
            .map_err(|e| format!("{path}: {e}"))?
            .ok_or_else(|| format!("{path}: a key file of kind {:?}, not one a KMS key wraps", file.kind))?;
        if self.writes && file.kms_key_id.as_deref() != Some(self.customer.kms_key_arn.as_str()) {
            self.rewrap(&path, &key, file.created_ms).await?;
        }
        Ok(Some(ArchiveKeyHex::from_bytes(key.as_bytes())))
    }

    async fn read(&self, path: &str) -> Result<Option<KeyFile>, String> {
        match self.store.get_at_most(path, MAX_KEY_FILE_LEN).await {
            Ok(Some(bytes)) => decode_key_file(&bytes).map(Some).map_err(|e| format!("{path}: {e}")),
            Ok(None) => Err(format!("{path}: larger than a key file may be; not read")),
            Err(arca_core::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(format!("reading {path}: {e}")),
        }
    }

    /// A new random key, wrapped and written only if no other job wrote one meanwhile
    /// (then that one is the cluster's key).
    async fn create(&self, path: &str) -> Result<ArchiveKeyHex, String> {
        let key = MasterKey::generate().map_err(|e| e.to_string())?;
        let file = self
            .wrapper(&self.customer.kms_key_arn, path)
            .wrap(&key, now_ms())
            .await
            .map_err(|e| format!("{path}: {e}"))?;
        let body = Bytes::from(serde_json::to_vec(&file).map_err(|e| e.to_string())?);
        if self
            .store
            .put_if_absent(path, body)
            .await
            .map_err(|e| format!("writing {path}: {e}"))?
        {
            tracing::info!(key_file = %path, kms_key = %self.customer.kms_key_arn, "created a customer-held cluster key");
            return Ok(ArchiveKeyHex::from_bytes(key.as_bytes()));
        }
        let file = self
            .read(path)
            .await?
            .ok_or_else(|| format!("{path}: written by another job, then gone"))?;
        self.wrapper(&self.customer.kms_key_arn, path)
            .unwrap(&file)
            .await
            .map_err(|e| format!("{path}: {e}"))?
            .map(|k| ArchiveKeyHex::from_bytes(k.as_bytes()))
            .ok_or_else(|| format!("{path}: another job wrote a key file no KMS key wraps"))
    }

    /// The same key, wrapped by the destination's current KMS key: the old KMS key is
    /// then needed no more for this file.
    async fn rewrap(&self, path: &str, key: &MasterKey, created_ms: u64) -> Result<(), String> {
        let file = self
            .wrapper(&self.customer.kms_key_arn, path)
            .wrap(key, created_ms)
            .await
            .map_err(|e| format!("{path}: re-wrapping: {e}"))?;
        let body = Bytes::from(serde_json::to_vec(&file).map_err(|e| e.to_string())?);
        self.store
            .put(path, body)
            .await
            .map_err(|e| format!("writing {path}: {e}"))?;
        tracing::info!(key_file = %path, kms_key = %self.customer.kms_key_arn, "re-wrapped a customer-held cluster key");
        Ok(())
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}
