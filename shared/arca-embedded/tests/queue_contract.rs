//! The embedded queue: the port's contract, plus what only the embedded queue can show
//! deterministically (long polls woken by a send, leases that cannot be extended once lost).

use std::sync::Arc;
use std::time::{Duration, Instant};

use arca_core::Error;
use arca_core::ids::{ClusterId, JobId, OrgId};
use arca_core::ports::queue::{JobMessage, Queue};
use arca_embedded::EmbeddedQueue;

fn message(cluster: ClusterId) -> JobMessage {
    JobMessage {
        org_id: OrgId::new(),
        cluster_id: cluster,
        job_id: JobId::new(),
    }
}

#[tokio::test]
async fn embedded_queue_passes_the_contract() {
    arca_core::testing::contracts::queue::queue_contract(&EmbeddedQueue::new(2)).await;
}

#[tokio::test]
async fn a_send_wakes_a_long_poller_at_once() {
    let q = Arc::new(EmbeddedQueue::new(3));
    let cluster = ClusterId::new();
    let queue = q.create_queue(cluster).await.unwrap();
    let poller = {
        let (q, queue) = (q.clone(), queue.clone());
        tokio::spawn(async move {
            let start = Instant::now();
            let got = q
                .receive(&queue, Duration::from_secs(10), Duration::from_secs(30))
                .await;
            (got, start.elapsed())
        })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    let sent = message(cluster);
    q.send(&queue, &sent).await.unwrap();
    let (got, waited) = poller.await.unwrap();
    assert_eq!(got.unwrap().unwrap().message, sent);
    assert!(
        waited < Duration::from_secs(2),
        "woken by the send, not by the 10 s timeout: {waited:?}"
    );
}

#[tokio::test]
async fn deleting_a_queue_ends_its_long_polls_with_not_found() {
    let q = Arc::new(EmbeddedQueue::new(3));
    let queue = q.create_queue(ClusterId::new()).await.unwrap();
    let poller = {
        let (q, queue) = (q.clone(), queue.clone());
        tokio::spawn(async move { q.receive(&queue, Duration::from_secs(10), Duration::from_secs(1)).await })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    q.delete_queue(&queue).await.unwrap();
    let got = tokio::time::timeout(Duration::from_secs(2), poller)
        .await
        .expect("woken by the deletion")
        .unwrap();
    assert!(matches!(got, Err(Error::NotFound { .. })), "{got:?}");
}

#[tokio::test]
async fn a_lost_lease_cannot_be_extended() {
    let q = EmbeddedQueue::new(3);
    let cluster = ClusterId::new();
    let queue = q.create_queue(cluster).await.unwrap();
    q.send(&queue, &message(cluster)).await.unwrap();
    let lease = Duration::from_secs(1);
    let first = q.receive(&queue, Duration::ZERO, lease).await.unwrap().unwrap();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    // Lapsed but not yet redelivered: SQS answers MessageNotInflight.
    let err = q.extend(&queue, &first.receipt, lease).await.unwrap_err();
    assert!(matches!(err, Error::Conflict { .. }), "{err:?}");
    let second = q.receive(&queue, Duration::ZERO, lease).await.unwrap().unwrap();
    assert_eq!(second.receive_count, 2);
    // Redelivered: the first receipt no longer acts on the message, the second does.
    let err = q.extend(&queue, &first.receipt, lease).await.unwrap_err();
    assert!(matches!(err, Error::Conflict { .. }), "{err:?}");
    q.extend(&queue, &second.receipt, Duration::from_secs(5)).await.unwrap();
    q.ack(&queue, &first.receipt).await.unwrap();
    assert_eq!(
        q.receive(&queue, Duration::from_secs(2), lease)
            .await
            .unwrap()
            .map(|d| d.receive_count),
        None,
        "a stale ack is ignored and the extended lease still hides the message"
    );
    q.ack(&queue, &second.receipt).await.unwrap();
}

#[tokio::test]
async fn leases_and_waits_beyond_the_sqs_limits_are_invalid() {
    let q = EmbeddedQueue::new(3);
    let queue = q.create_queue(ClusterId::new()).await.unwrap();
    let err = q
        .receive(&queue, Duration::from_secs(21), Duration::from_secs(1))
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::Invalid { ref field, .. } if field == "wait"),
        "{err:?}"
    );
    let err = q
        .receive(&queue, Duration::ZERO, Duration::from_secs(12 * 3600 + 1))
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::Invalid { ref field, .. } if field == "visibility"),
        "{err:?}"
    );
}
