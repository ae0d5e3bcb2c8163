//! Proves the AWS side of the test environment is real: the Rust SDK talks to moto over
//! the wire, and moto enforces what our adapters will rely on.

use arca_testenv::unique;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
};

#[tokio::test]
async fn dynamodb_conditional_put_fails_the_second_time() {
    let Some(env) = arca_testenv::aws() else { return };
    let client = aws_sdk_dynamodb::Client::new(&env.sdk_config().await);
    let table = unique("arca-smoke");
    client
        .create_table()
        .table_name(&table)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name("PK")
                .attribute_type(ScalarAttributeType::S)
                .build()
                .unwrap(),
        )
        .key_schema(
            KeySchemaElement::builder()
                .attribute_name("PK")
                .key_type(KeyType::Hash)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .expect("create table");

    let put = || {
        client
            .put_item()
            .table_name(&table)
            .item("PK", AttributeValue::S("ORG#1".into()))
            .condition_expression("attribute_not_exists(PK)")
            .send()
    };
    put().await.expect("first conditional put succeeds");
    let err = put().await.expect_err("second conditional put must fail");
    let service_error = err.into_service_error();
    assert!(
        service_error.is_conditional_check_failed_exception(),
        "{service_error:?}"
    );
}

#[tokio::test]
async fn sqs_delivers_what_was_sent() {
    let Some(env) = arca_testenv::aws() else { return };
    let client = aws_sdk_sqs::Client::new(&env.sdk_config().await);
    let queue = client
        .create_queue()
        .queue_name(unique("arca-smoke"))
        .send()
        .await
        .expect("create queue");
    let url = queue.queue_url().expect("queue url");
    client
        .send_message()
        .queue_url(url)
        .message_body("job-1")
        .send()
        .await
        .expect("send");
    let received = client
        .receive_message()
        .queue_url(url)
        .wait_time_seconds(5)
        .max_number_of_messages(1)
        .send()
        .await
        .expect("receive");
    let messages = received.messages();
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0].body(), Some("job-1"));
    client
        .delete_message()
        .queue_url(url)
        .receipt_handle(messages[0].receipt_handle().expect("receipt"))
        .send()
        .await
        .expect("delete");
}

#[tokio::test]
async fn s3_returns_what_was_put() {
    let Some(env) = arca_testenv::aws() else { return };
    let client = arca_aws::config::s3_client(&env.sdk_config().await);
    let bucket = unique("arca-smoke");
    client
        .create_bucket()
        .bucket(&bucket)
        .send()
        .await
        .expect("create bucket");
    client
        .put_object()
        .bucket(&bucket)
        .key("a/b.txt")
        .body(bytes::Bytes::from_static(b"payload").into())
        .send()
        .await
        .expect("put");
    let got = client
        .get_object()
        .bucket(&bucket)
        .key("a/b.txt")
        .send()
        .await
        .expect("get");
    assert_eq!(
        got.body.collect().await.expect("body").into_bytes().as_ref(),
        b"payload"
    );
}
