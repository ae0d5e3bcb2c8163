//! A misconfigured destination answers in one line that says what is wrong, and never
//! as "absent": a missing bucket must not make a repository look new (the agent would then
//! try to create one), while a missing object in a bucket that exists stays `NotFound`.

use arca_aws::S3ObjectStore;
use arca_core::Error;
use arca_core::ports::ObjectStore;
use bytes::Bytes;

#[tokio::test]
async fn a_missing_bucket_is_a_permanent_one_line_error_not_an_absent_object() {
    let Some(aws) = arca_testenv::aws() else { return };
    let client = arca_aws::config::s3_client(&aws.sdk_config().await);
    let missing_bucket = arca_testenv::unique("missing").to_lowercase();
    let missing = S3ObjectStore::new(client.clone(), missing_bucket.clone(), "p");
    for err in [
        missing.put("config", Bytes::from_static(b"x")).await.unwrap_err(),
        missing.get("config").await.unwrap_err(),
        missing.list("").await.unwrap_err(),
    ] {
        assert!(matches!(err, Error::Permanent(_)), "{err:?}");
        let line = err.to_string();
        assert!(line.contains("the bucket does not exist (NoSuchBucket"), "{line}");
        assert!(line.contains(&missing_bucket), "names the bucket: {line}");
        assert!(!line.contains('\n') && line.len() < 400, "one short line: {line}");
    }

    let bucket = arca_testenv::unique("present").to_lowercase();
    client
        .create_bucket()
        .bucket(&bucket)
        .send()
        .await
        .expect("create bucket");
    let present = S3ObjectStore::new(client, bucket, "p");
    assert!(
        matches!(present.get("config").await, Err(Error::NotFound { .. })),
        "a missing object in a bucket that exists is absent"
    );
}
