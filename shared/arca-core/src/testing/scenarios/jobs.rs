//! Dispatch races, recovery-point expiry, pagination, jobs and restores.

use std::sync::Arc;

use crate::control_plane::{JobFilter, RunNowRequest};
use crate::ids::ClusterId;
use crate::model::cluster::Heartbeat;
use crate::model::job::{Job, JobState, JobType};
use crate::model::recovery::RecoveryPoint;
use crate::model::restore::RestoreSpec;
use crate::ports::item_store::{ItemStore, Query, SortKeyRange};
use crate::store::page::PageRequest;
use crate::store::{Store, keys};

use crate::testing::*;

/// Concurrent dispatches of one definition: exactly one PENDING job, every other one
/// SKIPPED naming the winner (the active-job item is written with `NotExists` in the
/// job's transaction). Once the job ends, the next dispatch runs again.
pub async fn dispatch_races_yield_one_job(items: Arc<dyn ItemStore>) {
    let cp = contract_plane(items.clone(), CONTRACT_NOW_SECS);
    let (p, _, policy) = new_org(&cp, "race").await;
    let dest = cp.create_destination(&p, s3("d")).await.expect("create");
    let reg = active_cluster(&cp, &p, "c").await;
    let def = create_definition(&cp, &p, definition(reg.cluster.id, Some(policy.id), Some(dest.id), "b")).await;
    let input = crate::model::schedule::ScheduleInput {
        org_id: p.org_id,
        definition_id: def.id.to_string(),
        rule: 0,
    };
    let mut tasks = Vec::new();
    for _ in 0..6 {
        let cp = cp.clone();
        let input = input.clone();
        tasks.push(tokio::spawn(async move { cp.dispatch_scheduled(&input).await }));
    }
    let mut jobs = Vec::new();
    for t in tasks {
        jobs.push(t.await.expect("task").expect("dispatch"));
    }
    let pending: Vec<&Job> = jobs.iter().filter(|j| j.state == JobState::Pending).collect();
    assert_eq!(pending.len(), 1, "exactly one run: {jobs:#?}");
    let winner = pending[0];
    assert_eq!(winner.trigger, crate::model::job::JobTrigger::Scheduled);
    assert_eq!(winner.retention.map(|r| r.retain_days), Some(7));
    assert!(
        winner.recovery_point_expires_at.is_some(),
        "the job carries its point's expiry"
    );
    for j in jobs.iter().filter(|j| j.id != winner.id) {
        assert_eq!(j.state, JobState::Skipped, "{j:?}");
        let reason = j.reason.as_deref().unwrap_or_default();
        assert!(
            reason.contains("another job of this definition is still") && reason.contains(&winner.id.to_string()),
            "{reason}"
        );
    }
    // Every outcome is stored.
    let stored = cp
        .list_jobs(
            &p,
            &JobFilter {
                definition_id: Some(def.id),
                ..Default::default()
            },
            &PageRequest::after(None, 50),
        )
        .await
        .expect("list");
    assert_eq!(stored.items.len(), 6);
    // The job ends (canceled): the definition is free again.
    cp.cancel_job(&p, &winner.id, None).await.expect("cancel");
    let next = cp.dispatch_scheduled(&input).await.expect("dispatch");
    assert_eq!(next.state, JobState::Pending, "{next:?}");
    // A paused definition's schedule is skipped with its reason.
    cp.cancel_job(&p, &next.id, None).await.expect("cancel");
    cp.pause_backup_definition(&p, &def.id, None).await.expect("pause");
    let paused = cp.dispatch_scheduled(&input).await.expect("dispatch");
    assert_eq!(
        (paused.state, paused.reason.as_deref()),
        (JobState::Skipped, Some("definition paused"))
    );
}

/// GSI2 lists recovery points of every org expiring before T, oldest first, across
/// pages; points without expiry, with a later one, or deleted are not in it.
pub async fn recovery_points_expiring_before(items: Arc<dyn ItemStore>) {
    let cp = contract_plane(items.clone(), CONTRACT_NOW_SECS);
    let store = Store::new(items);
    let (a, _, _) = new_org(&cp, "expiry a").await;
    let (b, _, _) = new_org(&cp, "expiry b").await;
    let ca = ClusterId::new();
    let cb = ClusterId::new();
    let t = now();
    let h = |n: i64| Some(t - chrono::Duration::hours(n));
    let mut expected = [
        store.create(recovery_point(a.org_id, ca, h(5))).await.expect("rp"),
        store.create(recovery_point(b.org_id, cb, h(4))).await.expect("rp"),
        store.create(recovery_point(a.org_id, ca, h(3))).await.expect("rp"),
        store.create(recovery_point(b.org_id, cb, h(2))).await.expect("rp"),
    ];
    let moved = store.create(recovery_point(a.org_id, ca, h(1))).await.expect("rp");
    let deleted = store.create(recovery_point(a.org_id, ca, h(1))).await.expect("rp");
    store.create(recovery_point(a.org_id, ca, None)).await.expect("rp");
    store
        .create(recovery_point(b.org_id, cb, Some(t + chrono::Duration::hours(1))))
        .await
        .expect("rp");
    store
        .create(recovery_point(b.org_id, cb, Some(t)))
        .await
        .expect("rp at exactly T is not before T");

    let mut later = moved.clone();
    later.expires_at = Some(t + chrono::Duration::days(30));
    let moved_version = moved.version;
    store.update(later, moved_version).await.expect("extend expiry");
    store
        .delete::<RecoveryPoint>(&a.org_id, &deleted.id, deleted.version)
        .await
        .expect("delete");
    let mut locked = expected[2].clone();
    locked.locked = true;
    expected[2] = store.update(locked, expected[2].version).await.expect("lock");

    let ours = [a.org_id, b.org_id];
    let mut seen = Vec::new();
    let mut cursor = None;
    for _ in 0..1000 {
        let page = store
            .recovery_points_expiring_before_cross_tenant(t, &PageRequest::after(cursor, 2))
            .await
            .expect("query");
        assert!(page.items.len() <= 2);
        seen.extend(page.items.into_iter().filter(|rp| ours.contains(&rp.org_id)));
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    let ids: Vec<_> = seen.iter().map(|rp| rp.id).collect();
    let want: Vec<_> = expected.iter().map(|rp| rp.id).collect();
    assert_eq!(
        ids, want,
        "exactly the points expiring before T, oldest first, across orgs and pages"
    );
    assert!(seen[2].locked, "locked points are listed (retention skips them)");
    let bad = store
        .recovery_points_expiring_before_cross_tenant(t, &PageRequest::after(Some("garbage".into()), 2))
        .await;
    expect_err!(bad, crate::Error::Invalid { .. }, "a bad cursor");
}

/// Every listing pages with an opaque cursor: no duplicates, nothing missing, and a
/// cursor from another listing or org is `Invalid { field: "cursor" }`.
pub async fn pagination_across_pages(items: Arc<dyn ItemStore>) {
    let cp = contract_plane(items.clone(), CONTRACT_NOW_SECS);
    let (p, _, _) = new_org(&cp, "pages").await;
    let (q, _, _) = new_org(&cp, "other pages").await;
    let mut created = Vec::new();
    for i in 0..7 {
        created.push(
            cp.create_destination(&p, s3(&format!("d{i}")))
                .await
                .expect("create")
                .id,
        );
    }
    let mut seen = Vec::new();
    let mut sizes = Vec::new();
    let mut cursor = None;
    let mut first_cursor = None;
    loop {
        let page = cp
            .list_destinations(&p, &PageRequest::after(cursor, 3))
            .await
            .expect("list");
        sizes.push(page.items.len());
        seen.extend(page.items.into_iter().map(|d| d.id));
        if first_cursor.is_none() {
            first_cursor = page.next_cursor.clone();
        }
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
        assert!(sizes.len() < 10, "pagination must end");
    }
    assert_eq!(sizes, [3, 3, 1]);
    let mut sorted = seen.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted.len(), 7, "no duplicates");
    created.sort();
    assert_eq!(sorted, created, "nothing missing");
    let first_cursor = first_cursor.expect("a first page of 3 of 7 has a cursor");
    let e = expect_err!(
        cp.list_destinations(&q, &PageRequest::after(Some(first_cursor.clone()), 3))
            .await,
        crate::Error::Invalid { .. },
        "another org's cursor"
    );
    assert!(matches!(e, crate::Error::Invalid { ref field, .. } if field == "cursor"));
    expect_err!(
        cp.list_policies(&p, &PageRequest::after(Some(first_cursor), 3)).await,
        crate::Error::Invalid { .. },
        "another listing's cursor"
    );
    expect_err!(
        cp.list_destinations(&p, &PageRequest::after(Some("!!".into()), 3))
            .await,
        crate::Error::Invalid { .. },
        "garbage"
    );
    expect_err!(
        cp.list_destinations(&p, &PageRequest::first(0)).await,
        crate::Error::Invalid { .. },
        "limit 0"
    );

    // Jobs list newest first; a filter fills pages across store pages.
    let cluster = register(&cp, &p, "c").await.cluster;
    let store = Store::new(items.clone());
    let mut job_ids = Vec::new();
    for i in 0..6u64 {
        let at = now() + chrono::Duration::seconds(i as i64);
        let mut job = crate::model::job::Job::pending(
            p.org_id,
            JobType::K8sBackup,
            crate::model::job::JobTrigger::Scheduled,
            at,
        );
        job.cluster_id = if i % 2 == 0 { Some(cluster.id) } else { None };
        job_ids.push(store.create(job).await.expect("job").id);
    }
    let raw = store
        .list_where(
            &p.org_id,
            &PageRequest::first(10),
            false,
            |_: &crate::model::job::Job| true,
        )
        .await
        .expect("list");
    let newest_first: Vec<_> = job_ids.iter().rev().copied().collect();
    assert_eq!(raw.items.iter().map(|j| j.id).collect::<Vec<_>>(), newest_first);
    let filter = JobFilter {
        cluster_id: Some(cluster.id),
        ..JobFilter::default()
    };
    let mut filtered = Vec::new();
    let mut cursor = None;
    loop {
        let page = cp
            .list_jobs(&p, &filter, &PageRequest::after(cursor, 2))
            .await
            .expect("list jobs");
        filtered.extend(page.items.into_iter().map(|j| j.id));
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
        assert!(filtered.len() <= 6);
    }
    assert_eq!(filtered, [job_ids[4], job_ids[2], job_ids[0]]);
    let raw = items
        .query(Query {
            index: None,
            pk: keys::org_pk(&p.org_id),
            range: SortKeyRange::BeginsWith("JOB#".into()),
            limit: 10,
            ascending: true,
            cursor: None,
        })
        .await
        .expect("raw query");
    let sks: Vec<_> = raw.items.iter().map(|i| i.sk.clone()).collect();
    let want: Vec<_> = job_ids.iter().map(|id| format!("JOB#{}", id.ulid())).collect();
    assert_eq!(sks, want, "jobs are at JOB#<ulid>, in creation order");
}

/// Run-now creates a PENDING K8S_BACKUP job; cancel follows the state machine; a
/// restore needs an ACTIVE target and creates its K8S_RESTORE job with it.
pub async fn jobs_and_restores(items: Arc<dyn ItemStore>) {
    let cp = contract_plane(items.clone(), CONTRACT_NOW_SECS);
    let store = Store::new(items.clone());
    let (p, _, policy) = new_org(&cp, "jobs").await;
    let dest = cp.create_destination(&p, s3("d")).await.expect("create");
    let reg = register(&cp, &p, "c").await;
    let def = create_definition(&cp, &p, definition(reg.cluster.id, Some(policy.id), Some(dest.id), "b")).await;
    let paused = cp.pause_backup_definition(&p, &def.id, None).await.expect("pause");
    assert!(paused.definition.spec.paused);
    expect_err!(
        cp.resume_backup_definition(&p, &def.id, Some(def.version)).await,
        crate::Error::PreconditionFailed { .. },
        "a resume with a stale version"
    );
    let resumed = cp
        .resume_backup_definition(&p, &def.id, Some(paused.definition.version))
        .await
        .expect("resume");
    assert!(!resumed.definition.spec.paused);

    // Runs need an ACTIVE cluster: its agent heartbeats.
    cp.record_heartbeat(&reg.agent_token, Heartbeat::default())
        .await
        .expect("heartbeat");
    let job = cp
        .run_backup_now(&p, &def.id, RunNowRequest::default())
        .await
        .expect("run now");
    assert_eq!((job.job_type, job.state), (JobType::K8sBackup, JobState::Pending));
    assert_eq!(
        (job.cluster_id, job.definition_id),
        (Some(reg.cluster.id), Some(def.id))
    );
    assert_eq!(
        job.retention.map(|r| r.retain_days),
        Some(7),
        "the policy's first row decides"
    );
    let canceled = cp.cancel_job(&p, &job.id, None).await.expect("cancel");
    assert_eq!(canceled.state, JobState::Canceled);
    expect_err!(
        cp.cancel_job(&p, &job.id, None).await,
        crate::Error::Conflict { .. },
        "a second cancel"
    );

    let running = cp
        .run_backup_now(&p, &def.id, RunNowRequest::default())
        .await
        .expect("run now");
    let mut started = running.clone();
    started.transition(JobState::Running, None, now()).expect("start");
    let started = store.update(started, running.version).await.expect("store");
    assert_eq!(
        cp.cancel_job(&p, &started.id, Some(started.version))
            .await
            .expect("cancel")
            .state,
        JobState::Cancelling
    );
    let listed = cp
        .list_jobs(
            &p,
            &JobFilter {
                state: Some(JobState::Cancelling),
                ..Default::default()
            },
            &PageRequest::default(),
        )
        .await
        .expect("list");
    assert_eq!(listed.items.iter().map(|j| j.id).collect::<Vec<_>>(), [started.id]);

    let mut rp = recovery_point(p.org_id, reg.cluster.id, Some(now() + chrono::Duration::days(7)));
    rp.definition_id = def.id;
    let rp = store.create(rp).await.expect("rp");
    let spec = RestoreSpec {
        namespace_prefix: "r-".into(),
        existing_resource_policy: crate::model::restore::ExistingResourcePolicy::Update,
        ..RestoreSpec::everything(rp.id, reg.cluster.id)
    };
    // An hour after its last heartbeat the target is PENDING: refused.
    let later = contract_plane(items.clone(), CONTRACT_NOW_SECS + 3600);
    let err = expect_err!(
        later.create_restore(&p, spec.clone()).await,
        crate::Error::Conflict { .. },
        "a PENDING target"
    );
    assert!(err.to_string().contains("ACTIVE"), "{err}");
    cp.record_heartbeat(&reg.agent_token, Heartbeat::default())
        .await
        .expect("heartbeat");
    let created = cp.create_restore(&p, spec).await.expect("restore");
    assert_eq!(
        (created.job.job_type, created.job.state),
        (JobType::K8sRestore, JobState::Pending)
    );
    assert_eq!(created.restore.job_id, created.job.id);
    assert_eq!(
        cp.get_job(&p, &created.job.id).await.expect("stored").restore_id,
        Some(created.restore.id)
    );
    assert_eq!(
        cp.get_restore(&p, &created.restore.id)
            .await
            .expect("stored")
            .source_cluster_id,
        reg.cluster.id
    );
    assert_eq!(
        cp.list_restores(&p, &PageRequest::default())
            .await
            .expect("list")
            .items
            .len(),
        1
    );
}
