//! An S3-compatible store behind a private CA: moto over TLS with a certificate of the test
//! environment's CA (scripts/testenv.sh). The destination's `caBundle` makes the store
//! trusted, `skipTlsVerify` accepts it without, and with neither the certificate is refused
//! at once (not retried), as a permanent misconfiguration, in one line that says so and
//! names the object and the endpoint; so is a certificate of the trusted CA for another name.

use std::time::{Duration, Instant};

use arca_aws::S3ObjectStore;
use arca_aws::s3_connection::S3Connection;
use arca_core::Error;
use arca_core::ports::ObjectStore;
use aws_config::BehaviorVersion;
use bytes::Bytes;
use tokio::net::{TcpListener, TcpStream};

/// A TCP relay on `ip` (any port) to moto's TLS port: the same server under another address.
async fn forward(ip: &str, to: u16) -> String {
    let listener = TcpListener::bind((ip, 0)).await.expect("bind the relay");
    let addr = listener.local_addr().expect("relay address").to_string();
    tokio::spawn(async move {
        while let Ok((mut inbound, _)) = listener.accept().await {
            tokio::spawn(async move {
                if let Ok(mut outbound) = TcpStream::connect(("127.0.0.1", to)).await {
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                }
            });
        }
    });
    addr
}

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

    // Neither: refused at once (a certificate is refused the same way on every try, so the
    // SDK does not retry it), permanently, in one line naming the endpoint and the fix;
    // nothing is written.
    let endpoint = format!("https://127.0.0.1:{}", aws.tls.port);
    let started = Instant::now();
    let refused = store(S3Connection::default())
        .with_endpoint(Some(&endpoint))
        .put("b", Bytes::from_static(b"never"))
        .await
        .expect_err("an unknown CA is refused");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "not retried: {:?}",
        started.elapsed()
    );
    assert!(matches!(refused, Error::Permanent(_)), "{refused:?}");
    let text = refused.to_string();
    assert!(
        text.contains(&format!("object s3://{bucket}/p/b at {endpoint}")),
        "names bucket, key and endpoint: {text}"
    );
    assert!(
        text.contains("TLS certificate is not trusted (signed by a CA that is not trusted)"),
        "{text}"
    );
    assert!(text.contains("caBundle") && text.contains("skipTlsVerify"), "{text}");
    assert!(!text.contains('\n'), "one line: {text}");
    assert!(trusted.get("b").await.is_err(), "nothing was written");

    // A certificate of the trusted CA, for another name: moto reached as 127.0.0.2, which
    // its certificate does not name (through the caBundle's HTTP client, reqwest).
    let other_name = forward("127.0.0.2", aws.tls.port).await;
    let elsewhere = aws_config::defaults(BehaviorVersion::latest())
        .endpoint_url(format!("https://{other_name}"))
        .load()
        .await;
    let started = Instant::now();
    let mismatch = S3ObjectStore::new(
        S3Connection {
            ca_bundle: Some(ca.clone()),
            ..Default::default()
        }
        .client(&elsewhere)
        .expect("client"),
        bucket.clone(),
        "p",
    )
    .get("a")
    .await
    .expect_err("a certificate for another name is refused");
    assert!(started.elapsed() < Duration::from_secs(5), "not retried");
    assert!(matches!(mismatch, Error::Permanent(_)), "{mismatch:?}");
    let text = mismatch.to_string();
    assert!(
        text.contains("TLS certificate is not trusted (certificate not valid for name \"127.0.0.2\""),
        "{text}"
    );
    assert!(!text.contains('\n'), "one line: {text}");

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
