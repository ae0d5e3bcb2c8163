//! The SQS adapter against moto's SQS, over the wire.

use std::time::Duration;

use arca_aws::{SqsQueue, SqsQueueConfig};
use arca_core::Error;
use arca_core::ids::{ClusterId, JobId, OrgId};
use arca_core::ports::queue::{JobMessage, Queue};

async fn queue(max_receives: u32) -> Option<(SqsQueue, aws_sdk_sqs::Client)> {
    let env = arca_testenv::aws()?;
    let client = aws_sdk_sqs::Client::new(&env.sdk_config().await);
    // A prefix of its own gives the test a dead-letter queue of its own.
    let config = SqsQueueConfig {
        name_prefix: arca_testenv::unique("arca-q"),
        max_receives,
    };
    Some((SqsQueue::new(client.clone(), config).expect("valid config"), client))
}

/// Deletes the test's dead-letter queue (the adapter never deletes the shared one).
/// A queue's redrive policy, as SQS keeps it (JSON).
async fn redrive_policy(client: &aws_sdk_sqs::Client, url: &str) -> String {
    let name = aws_sdk_sqs::types::QueueAttributeName::RedrivePolicy;
    let attrs = client
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(name.clone())
        .send()
        .await
        .expect("queue attributes");
    attrs
        .attributes()
        .and_then(|a| a.get(&name))
        .expect("a redrive policy")
        .clone()
}

async fn delete_dead_letters(q: &SqsQueue, client: &aws_sdk_sqs::Client) {
    let url = client
        .get_queue_url()
        .queue_name(q.dead_letter_queue_name())
        .send()
        .await
        .expect("the dead-letter queue exists");
    let url = url.queue_url().expect("GetQueueUrl returns a URL");
    client
        .delete_queue()
        .queue_url(url)
        .send()
        .await
        .expect("delete the dead-letter queue");
}

#[tokio::test]
async fn sqs_queue_passes_the_contract() {
    let Some((q, client)) = queue(2).await else { return };
    arca_core::testing::contracts::queue::queue_contract(&q).await;
    delete_dead_letters(&q, &client).await;
}

#[tokio::test]
async fn cluster_queues_are_named_by_prefix_and_redrive_to_the_shared_dead_letter_queue() {
    let Some((q, client)) = queue(3).await else { return };
    let cluster = ClusterId::new();
    let r = q.create_queue(cluster).await.unwrap();
    let url = client
        .get_queue_url()
        .queue_name(q.queue_name(cluster))
        .send()
        .await
        .unwrap();
    assert_eq!(
        url.queue_url(),
        Some(r.address.as_str()),
        "the queue is named <prefix>-<cluster id>"
    );
    let policy = redrive_policy(&client, &r.address).await;
    let policy: serde_json::Value = serde_json::from_str(&policy).unwrap();
    assert!(
        policy["deadLetterTargetArn"]
            .as_str()
            .unwrap()
            .ends_with(&q.dead_letter_queue_name()),
        "{policy}"
    );
    assert_eq!(policy["maxReceiveCount"].to_string().trim_matches('"'), "3");

    // Registering again with another max_receives updates the redrive policy in place.
    let config = SqsQueueConfig {
        name_prefix: q
            .queue_name(cluster)
            .trim_end_matches(&format!("-{cluster}"))
            .to_string(),
        max_receives: 5,
    };
    let q5 = SqsQueue::new(client.clone(), config).unwrap();
    assert_eq!(q5.create_queue(cluster).await.unwrap(), r, "same queue");
    let policy = redrive_policy(&client, &r.address).await;
    assert!(policy.contains('5'), "{policy}");
    q.delete_queue(&r).await.unwrap();
    delete_dead_letters(&q, &client).await;
}

#[tokio::test]
async fn a_foreign_message_is_dropped_not_delivered() {
    let Some((q, client)) = queue(3).await else { return };
    let cluster = ClusterId::new();
    let r = q.create_queue(cluster).await.unwrap();
    client
        .send_message()
        .queue_url(&r.address)
        .message_body("not json")
        .send()
        .await
        .unwrap();
    assert_eq!(
        q.receive(&r, Duration::ZERO, Duration::from_secs(1)).await.unwrap(),
        None
    );
    let job = JobMessage {
        org_id: OrgId::new(),
        cluster_id: cluster,
        job_id: JobId::new(),
    };
    q.send(&r, &job).await.unwrap();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let d = q
        .receive(&r, Duration::from_secs(1), Duration::from_secs(5))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(d.message, job, "the foreign message was deleted, not redelivered");
    assert_eq!(
        q.receive(&r, Duration::ZERO, Duration::from_secs(1)).await.unwrap(),
        None
    );
    q.delete_queue(&r).await.unwrap();
    delete_dead_letters(&q, &client).await;
}

#[tokio::test]
async fn an_unknown_receipt_cannot_extend_a_lease() {
    let Some((q, client)) = queue(3).await else { return };
    let r = q.create_queue(ClusterId::new()).await.unwrap();
    let err = q
        .extend(
            &r,
            &arca_core::ports::queue::Receipt("bogus".into()),
            Duration::from_secs(5),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Conflict { .. }), "{err:?}");
    q.delete_queue(&r).await.unwrap();
    delete_dead_letters(&q, &client).await;
}
