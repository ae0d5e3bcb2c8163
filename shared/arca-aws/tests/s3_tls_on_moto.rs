//! An S3-compatible store behind a private CA: moto over TLS with a certificate of the test
//! environment's CA (scripts/testenv.sh). The destination's `caBundle` makes the store
//! trusted, `skipTlsVerify` accepts it without, and with neither the certificate is refused,
//! in one line that says so and names the object.

use arca_aws::S3ObjectStore;
use arca_aws::s3_connection::S3Connection;
use arca_core::ports::ObjectStore;
use aws_config::BehaviorVersion;
use bytes::Bytes;

#[tokio::test]
async fn a_private_ca_is_trusted_through_ca_bundle_or_skip_tls_verify_and_refused_otherwise() {
    let Some(aws) = arca_testenv::aws() else { return };
    let bucket = arca_testenv::unique("tls").to_lowercase();
    arca_aws::config::s3_client(&aws.sdk_config().await)
        .create_bucket()
        .bucket(&bucket)
        .send()
        .await
        .expect("bucket over plain HTTP");
    let tls = aws_config::defaults(BehaviorVersion::latest())
        .endpoint_url(format!("https://127.0.0.1:{}", aws.tls.port))
        .load()
        .await;
    let ca = std::fs::read_to_string(&aws.tls.ca).expect("the test environment's CA");
    let store = |conn: S3Connection| S3ObjectStore::new(conn.client(&tls).expect("client"), bucket.clone(), "p");

    // caBundle: trusted; the object made over TLS is the one in the bucket.
    let trusted = store(S3Connection {
        ca_bundle: Some(ca.clone()),
        ..Default::default()
    });
    trusted
        .put("a", Bytes::from_static(b"over tls"))
        .await
        .expect("put with the CA");
    assert_eq!(trusted.get("a").await.expect("get").as_ref(), b"over tls");

    // skipTlsVerify: accepted without the CA.
    let unchecked = store(S3Connection {
        skip_tls_verify: true,
        ..Default::default()
    });
    assert_eq!(unchecked.get("a").await.expect("get, unchecked").as_ref(), b"over tls");

    // Neither: refused, saying why, and nothing is written.
    let refused = store(S3Connection::default())
        .put("b", Bytes::from_static(b"never"))
        .await
        .expect_err("an unknown CA is refused");
    let text = refused.to_string();
    assert!(
        text.contains(&format!("object s3://{bucket}/p/b")),
        "names bucket and key: {text}"
    );
    assert!(text.to_lowercase().contains("certificate"), "{text}");
    assert!(!text.contains('\n'), "one line: {text}");
    assert!(trusted.get("b").await.is_err(), "nothing was written");

    // A caBundle that holds no readable certificate is refused when the client is made.
    let other_ca = "-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIUT0dJ\n-----END CERTIFICATE-----\n";
    assert!(
        S3Connection {
            ca_bundle: Some(other_ca.into()),
            ..Default::default()
        }
        .client(&tls)
        .is_err(),
        "an unreadable caBundle is refused when the client is made"
    );
}
