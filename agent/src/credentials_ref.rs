//! A user S3 destination's `credentialsRef`: the name of a Secret in the agent's own
//! namespace holding the bucket's keys, read by the agent for each job (so a rotated
//! Secret applies to the next job without a restart).
//!
//! The Secret holds the usual environment names: `AWS_ACCESS_KEY_ID`,
//! `AWS_SECRET_ACCESS_KEY` and, for temporary keys, `AWS_SESSION_TOKEN`. The keys never
//! leave the agent's namespace except inside the job's mover (volume copies), and are
//! never logged.

use std::collections::BTreeMap;

use arca_core::model::destination::DestinationTarget;
use arca_core::ports::credentials::{DestinationAccess, TemporaryCredentials};
use k8s_openapi::api::core::v1::Secret;
use kube::Api;

/// How long the agent treats keys read from a Secret as valid: they are read again for
/// every job, so this only bounds one job.
const STATIC_KEY_LIFETIME: chrono::Duration = chrono::Duration::hours(24);

/// Fills `access.credentials` from the Secret a user S3 destination names; any other
/// destination, or one whose credentials came with the job, is returned as it is.
pub async fn resolve(kube: &kube::Client, mut access: DestinationAccess) -> Result<DestinationAccess, String> {
    let DestinationTarget::S3 {
        credentials_ref: Some(name),
        bucket,
        ..
    } = &access.target
    else {
        return Ok(access);
    };
    if access.credentials.is_some() {
        return Ok(access);
    }
    let namespace = kube.default_namespace().to_string();
    let secret = Api::<Secret>::namespaced(kube.clone(), &namespace)
        .get_opt(name)
        .await
        .map_err(|e| format!("destination bucket {bucket}: reading its credentials Secret {namespace}/{name}: {e}"))?
        .ok_or_else(|| {
            format!(
                "destination bucket {bucket}: its credentials Secret {namespace}/{name} does not exist (create it in \
                 the agent's namespace with AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)"
            )
        })?;
    access.credentials = Some(
        from_secret_data(&decoded(&secret))
            .map_err(|e| format!("destination bucket {bucket}: credentials Secret {namespace}/{name}: {e}"))?,
    );
    Ok(access)
}

/// `data` (base64, decoded by k8s-openapi) and `stringData` (only seen before the
/// apiserver folds it into `data`) of a Secret, as text.
fn decoded(secret: &Secret) -> BTreeMap<String, String> {
    let mut out: BTreeMap<String, String> = secret
        .data
        .iter()
        .flatten()
        .filter_map(|(k, v)| Some((k.clone(), String::from_utf8(v.0.clone()).ok()?)))
        .collect();
    out.extend(secret.string_data.iter().flatten().map(|(k, v)| (k.clone(), v.clone())));
    out
}

/// The keys in a Secret's data; whitespace around values (a trailing newline from
/// `kubectl create secret --from-file`) is not part of a key.
pub fn from_secret_data(data: &BTreeMap<String, String>) -> Result<TemporaryCredentials, String> {
    let value = |key: &str| data.get(key).map(|v| v.trim().to_string()).filter(|v| !v.is_empty());
    let access_key_id = value("AWS_ACCESS_KEY_ID").ok_or("it has no AWS_ACCESS_KEY_ID")?;
    let secret_access_key = value("AWS_SECRET_ACCESS_KEY").ok_or("it has no AWS_SECRET_ACCESS_KEY")?;
    Ok(TemporaryCredentials {
        access_key_id,
        secret_access_key,
        // Empty for long-term keys: see `session_token` below.
        session_token: value("AWS_SESSION_TOKEN").unwrap_or_default(),
        expiration: now() + STATIC_KEY_LIFETIME,
    })
}

fn now() -> chrono::DateTime<chrono::Utc> {
    std::time::SystemTime::now().into()
}

/// The session token to present, if any: long-term keys have none, and an empty token
/// must not be sent.
pub fn session_token(c: &TemporaryCredentials) -> Option<String> {
    (!c.session_token.is_empty()).then(|| c.session_token.clone())
}

/// The SDK's form of keys read from a Secret: no expiry (they are read again per job).
pub fn secret_credentials(c: &TemporaryCredentials) -> aws_credential_types::Credentials {
    aws_credential_types::Credentials::new(
        c.access_key_id.clone(),
        c.secret_access_key.clone(),
        session_token(c),
        None,
        "arca-secret",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn long_term_keys_have_no_session_token() {
        let c = from_secret_data(&data(&[
            ("AWS_ACCESS_KEY_ID", "AKIA1\n"),
            ("AWS_SECRET_ACCESS_KEY", " s3cret "),
        ]))
        .unwrap();
        assert_eq!(c.access_key_id, "AKIA1");
        assert_eq!(c.secret_access_key, "s3cret");
        assert_eq!(session_token(&c), None);
        assert!(c.expiration > now() + chrono::Duration::hours(23));
    }

    #[test]
    fn temporary_keys_keep_their_token() {
        let c = from_secret_data(&data(&[
            ("AWS_ACCESS_KEY_ID", "ASIA1"),
            ("AWS_SECRET_ACCESS_KEY", "s"),
            ("AWS_SESSION_TOKEN", "tok"),
        ]))
        .unwrap();
        assert_eq!(session_token(&c).as_deref(), Some("tok"));
    }

    #[test]
    fn a_secret_without_both_keys_is_named_in_the_error() {
        let e = from_secret_data(&data(&[("AWS_ACCESS_KEY_ID", "AKIA1")])).unwrap_err();
        assert_eq!(e, "it has no AWS_SECRET_ACCESS_KEY");
        let e = from_secret_data(&data(&[("AWS_ACCESS_KEY_ID", ""), ("AWS_SECRET_ACCESS_KEY", "s")])).unwrap_err();
        assert_eq!(e, "it has no AWS_ACCESS_KEY_ID");
    }
}
