//! The EventBridge Scheduler adapter against moto's Scheduler, over the wire. moto keeps
//! schedules but never fires them; firing is covered by the embedded scheduler's tests
//! and the pure cron evaluation in arca-core.

use arca_aws::{EventBridgeScheduler, EventBridgeSchedulerConfig};
use arca_core::ids::OrgId;
use arca_core::model::schedule::schedules_for;
use arca_core::ports::scheduler::Scheduler;
use arca_core::testing::contracts::scheduler::policy;
use aws_sdk_scheduler::types::{FlexibleTimeWindowMode, ScheduleState};

const TARGET: &str = "arn:aws:lambda:us-east-1:123456789012:function:arca-dispatch";
const ROLE: &str = "arn:aws:iam::123456789012:role/arca-scheduler";

/// One schedule as EventBridge keeps it.
async fn get_schedule(
    client: &aws_sdk_scheduler::Client,
    group: &str,
    name: &str,
) -> aws_sdk_scheduler::operation::get_schedule::GetScheduleOutput {
    client
        .get_schedule()
        .group_name(group)
        .name(name)
        .send()
        .await
        .expect("get schedule")
}

async fn scheduler() -> Option<(EventBridgeScheduler, aws_sdk_scheduler::Client, String)> {
    let env = arca_testenv::aws()?;
    let client = aws_sdk_scheduler::Client::new(&env.sdk_config().await);
    let group = arca_testenv::unique("arca-schedules");
    let config = EventBridgeSchedulerConfig {
        group: group.clone(),
        target_arn: TARGET.into(),
        role_arn: ROLE.into(),
    };
    let s = EventBridgeScheduler::new(client.clone(), config);
    s.ensure_group().await.expect("create the schedule group");
    s.ensure_group().await.expect("ensure_group is idempotent");
    Some((s, client, group))
}

#[tokio::test]
async fn eventbridge_scheduler_passes_the_contract() {
    let Some((s, client, group)) = scheduler().await else {
        return;
    };
    arca_core::testing::contracts::scheduler::scheduler_contract(&s).await;
    client.delete_schedule_group().name(group).send().await.unwrap();
}

#[tokio::test]
async fn schedules_are_written_as_eventbridge_expects() {
    let Some((s, client, group)) = scheduler().await else {
        return;
    };
    let org = OrgId::new();
    let policy = policy("Europe/Berlin", &["30 2 * * 1-5"]);
    let def = arca_core::ids::BackupDefinitionId::new().to_string();
    s.sync(&def, &schedules_for(org, &def, &policy, true).unwrap())
        .await
        .unwrap();

    let got = get_schedule(&client, &group, &format!("{def}-0")).await;
    assert_eq!(got.schedule_expression(), Some("cron(30 2 ? * MON,TUE,WED,THU,FRI *)"));
    assert_eq!(got.schedule_expression_timezone(), Some("Europe/Berlin"));
    assert_eq!(got.state(), Some(&ScheduleState::Disabled), "paused");
    assert_eq!(
        got.flexible_time_window().map(|w| w.mode()),
        Some(&FlexibleTimeWindowMode::Off)
    );
    let target = got.target().unwrap();
    assert_eq!((target.arn(), target.role_arn()), (TARGET, ROLE));
    let input: serde_json::Value = serde_json::from_str(target.input().unwrap()).unwrap();
    assert_eq!(
        input,
        serde_json::json!({"orgId": org.to_string(), "definitionId": def, "rule": 0})
    );

    // A schedule changed behind Arca's back (here: its target) is put right by the next sync.
    let moved = EventBridgeScheduler::new(
        client.clone(),
        EventBridgeSchedulerConfig {
            group: group.clone(),
            target_arn: format!("{TARGET}-v2"),
            role_arn: ROLE.into(),
        },
    );
    moved
        .sync(&def, &schedules_for(org, &def, &policy, true).unwrap())
        .await
        .unwrap();
    let got = get_schedule(&client, &group, &format!("{def}-0")).await;
    assert_eq!(
        got.target().unwrap().arn(),
        format!("{TARGET}-v2"),
        "a redeployed dispatch function is re-targeted"
    );

    s.sync(&def, &[]).await.unwrap();
    assert!(s.list(&def).await.unwrap().is_empty());
    client.delete_schedule_group().name(group).send().await.unwrap();
}
