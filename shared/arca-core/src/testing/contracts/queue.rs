//! The contract suite of the [`Queue`] port, run by every adapter against its real
//! backend (SQS on moto, the embedded queue). An adapter passes when this does.
//!
//! Timing: leases are 1 s and waits 1–2 s, so the suite takes about 10 s. It has no
//! timer of its own (the core has no runtime): where it must let time pass it long-polls
//! an empty queue, which is also how an idle agent waits.

use std::time::{Duration, Instant};

use crate::Error;
use crate::ids::{ClusterId, JobId, OrgId};
use crate::model::agent::QueueRef;
use crate::ports::queue::{Delivery, JobMessage, Queue};

const LEASE: Duration = Duration::from_secs(1);
const LONG_LEASE: Duration = Duration::from_secs(30);
const POLL: Duration = Duration::from_secs(1);

/// The next message of `queue`, waiting up to `wait` and leasing it for `lease`; panics
/// with `what` when none comes.
async fn delivered(q: &dyn Queue, queue: &QueueRef, wait: Duration, lease: Duration, what: &str) -> Delivery {
    q.receive(queue, wait, lease)
        .await
        .expect("receive")
        .unwrap_or_else(|| panic!("{what}"))
}

/// Exercises every [`Queue`] promise and panics with a description of the first broken
/// one. The adapter must have a dead-letter queue of its own (no other test may
/// dead-letter into it during the run) and `max_receives` of at most 3, to stay fast.
pub async fn queue_contract(q: &dyn Queue) {
    let n = q.max_receives();
    assert!(
        (1..=3).contains(&n),
        "the suite needs max_receives in 1..=3 to stay fast, got {n}"
    );
    let org = OrgId::new();
    let (ca, cb, cidle) = (ClusterId::new(), ClusterId::new(), ClusterId::new());

    let a = q.create_queue(ca).await.expect("create queue a");
    assert_eq!(a.cluster_id, ca);
    assert_eq!(
        q.create_queue(ca).await.expect("create queue a again"),
        a,
        "create_queue is idempotent"
    );
    assert_eq!(
        q.queue(ca).await.expect("look up queue a"),
        a,
        "queue() finds the created queue"
    );
    let b = q.create_queue(cb).await.expect("create queue b");
    assert_ne!(a.address, b.address, "each cluster has its own queue");
    let idle = q.create_queue(cidle).await.expect("create the idle queue");
    match q.queue(ClusterId::new()).await {
        Err(Error::NotFound { .. }) => {}
        other => panic!("queue() of a cluster without a queue must be NotFound, got {other:?}"),
    }

    let msg = |cluster| JobMessage {
        org_id: org,
        cluster_id: cluster,
        job_id: JobId::new(),
    };

    // Send, receive, ack; each message goes to one consumer at a time.
    assert_eq!(
        q.receive(&a, Duration::ZERO, LEASE).await.expect("receive"),
        None,
        "a new queue is empty"
    );
    let (m1, m2) = (msg(ca), msg(ca));
    q.send(&a, &m1).await.expect("send m1");
    q.send(&a, &m2).await.expect("send m2");
    assert_eq!(
        q.receive(&b, Duration::ZERO, LEASE).await.expect("receive b"),
        None,
        "queues are isolated"
    );
    let d1 = delivered(q, &a, POLL, LONG_LEASE, "a sent message is delivered").await;
    let d2 = delivered(q, &a, POLL, LONG_LEASE, "the second message is delivered").await;
    let mut got = [d1.message.job_id, d2.message.job_id];
    let mut sent = [m1.job_id, m2.job_id];
    got.sort();
    sent.sort();
    assert_eq!(got, sent, "each message is delivered once, none twice while invisible");
    assert_eq!((d1.receive_count, d2.receive_count), (1, 1), "first deliveries count 1");
    assert_ne!(d1.receipt, d2.receipt);
    assert_eq!(
        q.receive(&a, Duration::ZERO, LEASE).await.expect("receive"),
        None,
        "leased messages stay hidden"
    );
    q.ack(&a, &d1.receipt).await.expect("ack d1");
    q.ack(&a, &d2.receipt).await.expect("ack d2");
    let mb = msg(cb);
    q.send(&b, &mb).await.expect("send to b");
    let db = delivered(q, &b, POLL, LONG_LEASE, "b's message").await;
    assert_eq!(db.message, mb, "a queue delivers only its own messages");
    q.ack(&b, &db.receipt).await.expect("ack b");

    // A lapsed lease: the message comes back with its receive count incremented.
    let m3 = msg(ca);
    q.send(&a, &m3).await.expect("send m3");
    let first = delivered(q, &a, POLL, LEASE, "m3 delivered").await;
    assert_eq!((first.message.job_id, first.receive_count), (m3.job_id, 1));
    assert_eq!(
        q.receive(&a, Duration::ZERO, LEASE).await.expect("receive"),
        None,
        "hidden during the lease"
    );
    let again = delivered(
        q,
        &a,
        2 * POLL + LEASE,
        LEASE,
        "a message whose lease lapsed is delivered again",
    )
    .await;
    assert_eq!(again.message, m3);
    assert_eq!(again.receive_count, 2, "the redelivery counts 2");
    assert_ne!(again.receipt, first.receipt, "each delivery has its own receipt");
    // Its 1 s lease lapses during the pause below: if the ack did not remove it, it would be back.
    q.ack(&a, &again.receipt).await.expect("ack the redelivery");

    // Extension keeps a message hidden past its original lease.
    let m4 = msg(ca);
    q.send(&a, &m4).await.expect("send m4");
    let leased = delivered(q, &a, POLL, LEASE, "m4 delivered").await;
    assert_eq!(leased.message, m4);
    q.extend(&a, &leased.receipt, 4 * LEASE)
        .await
        .expect("extend the lease");
    pause(q, &idle, 2 * LEASE).await;
    assert_eq!(
        q.receive(&a, Duration::ZERO, LEASE).await.expect("receive"),
        None,
        "after 2 s: m4 is still leased (extended to 4 s) and the acknowledged m3 is gone"
    );
    q.ack(&a, &leased.receipt).await.expect("ack m4");

    // Dead-lettering: after max_receives deliveries without an ack, the message moves to
    // the shared dead-letter queue, which names it and how often its lease lapsed.
    let m5 = msg(cb);
    q.send(&b, &m5).await.expect("send m5");
    for i in 1..=n {
        let d = q
            .receive(&b, 2 * POLL + LEASE, LEASE)
            .await
            .expect("receive")
            .unwrap_or_else(|| panic!("delivery {i} of {n} must happen"));
        assert_eq!((d.message.job_id, d.receive_count), (m5.job_id, i), "delivery {i}");
    }
    assert_eq!(
        q.receive(&b, 2 * POLL + LEASE, LEASE).await.expect("receive"),
        None,
        "after {n} deliveries the message is dead-lettered, not delivered again"
    );
    let dead = q
        .receive_dead_letter(2 * POLL, LONG_LEASE)
        .await
        .expect("receive dead letter")
        .expect("the dead-lettered message is in the dead-letter queue");
    assert_eq!(dead.message, m5, "the dead letter carries the job");
    assert_eq!(dead.deliveries, n);
    assert!(
        dead.failure_reason().contains(&format!("lease lapsed {n} times")),
        "{}",
        dead.failure_reason()
    );
    q.ack_dead_letter(&dead.receipt).await.expect("ack the dead letter");
    assert_eq!(
        q.receive_dead_letter(Duration::ZERO, LEASE)
            .await
            .expect("receive dead letter"),
        None,
        "an acknowledged dead letter is gone"
    );

    // Deleting a queue: it and its messages are gone; other clusters are untouched.
    q.send(&a, &msg(ca)).await.expect("send before delete");
    q.delete_queue(&a).await.expect("delete queue a");
    match q.queue(ca).await {
        Err(Error::NotFound { .. }) => {}
        other => panic!("queue() after delete_queue must be NotFound, got {other:?}"),
    }
    match q.send(&a, &msg(ca)).await {
        Err(Error::NotFound { .. }) => {}
        other => panic!("send to a deleted queue must be NotFound, got {other:?}"),
    }
    match q.receive(&a, Duration::ZERO, LEASE).await {
        Err(Error::NotFound { .. }) => {}
        other => panic!("receive from a deleted queue must be NotFound, got {other:?}"),
    }
    q.delete_queue(&a)
        .await
        .expect("deleting an absent queue is not an error");
    let mb2 = msg(cb);
    q.send(&b, &mb2).await.expect("b still takes messages");
    let d = delivered(q, &b, POLL, LEASE, "b still delivers").await;
    assert_eq!(d.message, mb2);
    q.ack(&b, &d.receipt).await.expect("ack");

    q.delete_queue(&b).await.expect("delete b");
    q.delete_queue(&idle).await.expect("delete the idle queue");
}

/// Lets at least `duration` pass by long-polling `idle`, an empty queue; checks on the way
/// that an empty long poll returns nothing.
async fn pause(q: &dyn Queue, idle: &QueueRef, duration: Duration) {
    let start = Instant::now();
    while let Some(left) = duration.checked_sub(start.elapsed()).filter(|d| !d.is_zero()) {
        let got = q.receive(idle, left, LEASE).await.expect("long poll of the idle queue");
        assert_eq!(got, None, "the idle queue is empty");
    }
}
