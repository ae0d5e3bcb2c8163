//! The deployment's archive master keys, read from Secrets Manager once per cold start.
//!
//! The secret (KMS-encrypted with the deployment's `KeyWrappingKey`) holds one or more
//! master key texts, current first, separated by commas or newlines: a rotation puts the
//! new text in front and keeps the old one until no point it sealed remains
//! (docs/security.md). Nothing of the value is ever logged.

use arca_core::Result;
use arca_core::model::archive_key::{ArchiveKeyring, MasterKeyForm};
use aws_config::SdkConfig;

/// The keyring in secret `secret_id` (a name or an ARN).
pub async fn archive_keyring(config: &SdkConfig, secret_id: &str) -> Result<ArchiveKeyring> {
    let client = aws_sdk_secretsmanager::Client::new(config);
    let out = client
        .get_secret_value()
        .secret_id(secret_id)
        .send()
        .await
        .map_err(|e| crate::errors::classify(e, &format!("secret {secret_id}")))?;
    let text = out.secret_string().ok_or_else(|| {
        arca_core::Error::invalid(
            "ARCA_ARCHIVE_MASTER_KEY_SECRET",
            format!("secret {secret_id} has no string value (binary secrets are not read)"),
        )
    })?;
    ArchiveKeyring::parse("ARCA_ARCHIVE_MASTER_KEY_SECRET", text, MasterKeyForm::SecretText)
}
