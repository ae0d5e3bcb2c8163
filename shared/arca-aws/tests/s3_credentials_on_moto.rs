//! Credentials a store refuses, over the wire: a private moto of the test's own that
//! checks every request's signature against its IAM users (the shared one does not: that
//! is server-wide), and, for what moto cannot answer, a stand-in endpoint replying as S3
//! does. Each refusal is a permanent misconfiguration (not retried: the call returns at
//! once), in one line that names the bucket, the endpoint and the cause, and never the
//! secret.
#![allow(clippy::unwrap_used)] // tests fail loudly on any error

use std::time::{Duration, Instant};

use arca_aws::S3ObjectStore;
use arca_core::Error;
use arca_core::ports::ObjectStore;
use aws_config::BehaviorVersion;
use aws_sdk_s3::config::Credentials;
use bytes::Bytes;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

async fn store(endpoint: &str, key: &str, secret: &str, token: Option<&str>, bucket: &str) -> S3ObjectStore {
    let config = aws_config::defaults(BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(Credentials::new(key, secret, token.map(str::to_owned), None, "test"))
        .load()
        .await;
    S3ObjectStore::new(arca_aws::config::s3_client(&config), bucket, "repo").with_endpoint(Some(endpoint))
}

fn bucket_policy(bucket: &str) -> String {
    format!(
        r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Action":"s3:*","Resource":["arn:aws:s3:::{bucket}","arn:aws:s3:::{bucket}/*"]}}]}}"#
    )
}

/// Asserts `err` is a permanent one-line refusal naming `bucket`, `endpoint` and `cause`,
/// that came within 5 s (8 attempts with backoff take far longer) and shows no secret.
fn refused(err: Error, started: Instant, bucket: &str, endpoint: &str, cause: &str, secrets: &[&str]) {
    let elapsed = started.elapsed();
    assert!(elapsed < Duration::from_secs(5), "not retried: took {elapsed:?}");
    assert!(matches!(err, Error::Permanent(_)), "{err:?}");
    let line = err.to_string();
    eprintln!("{line}");
    assert!(line.contains(&format!("s3://{bucket}/")), "names the bucket: {line}");
    assert!(line.contains(&format!(" at {endpoint}")), "names the endpoint: {line}");
    assert!(line.contains(cause), "says why ({cause}): {line}");
    assert!(!line.contains('\n') && line.len() < 400, "one short line: {line}");
    for secret in secrets {
        assert!(!line.contains(secret), "no secret in: {line}");
    }
}

#[tokio::test]
async fn wrong_unknown_or_mismatched_keys_are_refused_at_once_naming_bucket_and_cause() {
    let Some(moto) = arca_testenv::private_moto() else {
        return;
    };
    let endpoint = moto.endpoint_url.clone();
    let bucket = arca_testenv::unique("keys").to_lowercase();
    let user = moto.iam_user("writer", &bucket_policy(&bucket));
    let (id, secret) = (user.access_key_id.as_str(), user.secret_access_key.as_str());
    let good = store(&endpoint, id, secret, None, &bucket).await;
    arca_aws::config::s3_client(
        &aws_config::defaults(BehaviorVersion::latest())
            .endpoint_url(&endpoint)
            .load()
            .await,
    )
    .create_bucket()
    .bucket(&bucket)
    .send()
    .await
    .unwrap();
    moto.enforce_iam();

    // The user's own keys work once moto checks them.
    good.put("config", Bytes::from_static(b"stored")).await.unwrap();
    assert_eq!(good.get("config").await.unwrap().as_ref(), b"stored");

    let wrong_secret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
    let cases = [
        (
            "a wrong secret key",
            store(&endpoint, id, wrong_secret, None, &bucket).await,
            "the secret key does not match the access key (SignatureDoesNotMatch",
        ),
        (
            "an access key the store does not know",
            store(&endpoint, "AKIAIOSFODNN7EXAMPLE", secret, None, &bucket).await,
            "the access key is not known to the store (InvalidAccessKeyId",
        ),
        (
            "a session token with a user's long-term key",
            store(&endpoint, id, secret, Some("FwoGZXIvYXdzEBogus"), &bucket).await,
            "the session token is not valid for the access key (InvalidToken",
        ),
    ];
    for (what, bad, cause) in cases {
        eprintln!("{what}:");
        let started = Instant::now();
        let err = bad.get("config").await.unwrap_err();
        refused(err, started, &bucket, &endpoint, cause, &[secret, wrong_secret]);
        let started = Instant::now();
        let err = bad.put("config", Bytes::from_static(b"overwritten")).await.unwrap_err();
        refused(err, started, &bucket, &endpoint, cause, &[secret, wrong_secret]);
        // A refused key never reads as "absent": a repository must not look new.
        let err = bad.list("").await.unwrap_err();
        assert!(matches!(err, Error::Permanent(_)), "{what}: list: {err:?}");
    }
    assert_eq!(
        good.get("config").await.unwrap().as_ref(),
        b"stored",
        "nothing was overwritten"
    );
}

/// An endpoint that answers every request with `status` and an S3 error body.
async fn answering(status: u16, body: &'static str) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            tokio::spawn(async move {
                // Read the request head (and whatever body came with it), then answer and close.
                let mut buf = vec![0u8; 64 << 10];
                let mut seen = Vec::new();
                while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
                    match conn.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => seen.extend_from_slice(&buf[..n]),
                    }
                }
                let answer = format!(
                    "HTTP/1.1 {status} Bad Request\r\nContent-Type: application/xml\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = conn.write_all(answer.as_bytes()).await;
                let _ = conn.shutdown().await;
            });
        }
    });
    endpoint
}

/// moto does not expire credentials (its STS session credentials are accepted whatever
/// their Expiration: moto/iam/access_control.py matches key id and session token only), so
/// the answer S3 gives for expired session credentials comes from a stand-in endpoint,
/// byte for byte as S3 sends it (400, code ExpiredToken).
#[tokio::test]
async fn expired_session_credentials_are_refused_at_once_naming_bucket_and_cause() {
    const EXPIRED: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>ExpiredToken</Code><Message>The provided token has expired.</Message><Token-0>FwoGZXIvYXdzEBogus</Token-0><RequestId>4442587FB7D0A2F9</RequestId><HostId>Zl4NSt5yF7Ztq4TCzwvhQ6J0mUNp1w8tkS2ZSz9XKFM=</HostId></Error>";
    let endpoint = answering(400, EXPIRED).await;
    let bucket = "expired-credentials";
    let secret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
    let store = store(
        &endpoint,
        "ASIAIOSFODNN7EXAMPLE",
        secret,
        Some("FwoGZXIvYXdzEBogus"),
        bucket,
    )
    .await;
    let cause = "the credentials have expired (ExpiredToken: The provided token has expired.)";
    let started = Instant::now();
    let err = store.get("config").await.unwrap_err();
    refused(err, started, bucket, &endpoint, cause, &[secret]);
    let started = Instant::now();
    let err = store.put("data/pack", Bytes::from_static(b"x")).await.unwrap_err();
    refused(err, started, bucket, &endpoint, cause, &[secret]);
}
