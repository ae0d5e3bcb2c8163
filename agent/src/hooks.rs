//! Hooks ([`arca_core::model::hooks`]) in the cluster: which running Pods run which
//! commands ([`plan`] for backups, [`restore_plan`] for restores; pure), and running them
//! through the Pods' exec API.
//!
//! The order a backup follows: every pre hook, one Pod after another; if one fails with
//! `onError: fail`, no snapshot is taken. Then the snapshots; then, whatever the
//! snapshots did, the post hook of every Pod whose pre hook ran (its undo: unlock,
//! thaw), in reverse order. Only then is any data copied, so the application is held
//! for the snapshots alone.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use arca_core::model::backup::Selection;
use arca_core::model::hooks::{
    AnnotationHooks, BackupHook, HookCommand, HookOutcome, HookPhase, HookResult, MAX_HOOK_OUTPUT, OnError,
    RestoreAnnotationHook, annotation_hooks, restore_annotation_hook, tail_bytes,
};
use arca_core::model::restore::RestoreSpec;
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::core::v1::{Pod, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::api::{AttachParams, ListParams};
use kube::{Api, Client};
use tokio::io::AsyncReadExt;

use crate::resources::restore::{ItemResult, Outcome as ItemOutcome};

/// The outcome's hook name for commands asked for by Pod annotations.
pub const ANNOTATIONS: &str = "annotations";

/// One Pod's commands from one source (a definition hook, or its annotations).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PodHook {
    pub source: String,
    pub namespace: String,
    pub pod: String,
    pub container: String,
    pub pre: Option<HookCommand>,
    pub post: Option<HookCommand>,
}

/// What [`plan`] found: the hooks to run, and lines for the job's messages (Pods not
/// running, annotations that cannot be read).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Plan {
    pub hooks: Vec<PodHook>,
    pub notes: Vec<String>,
    /// Annotations that cannot be read: the backup fails naming them (a typo must not
    /// leave a database unquiesced without anyone knowing).
    pub errors: Vec<String>,
}

fn matches(labels: &BTreeMap<String, String>, selector: &BTreeMap<String, String>) -> bool {
    selector.iter().all(|(k, v)| labels.get(k) == Some(v))
}

/// The hooks of `definition_hooks` and of the Pods' annotations, for the Pods the backup
/// selects (its namespaces and labels), in a stable order: by namespace and Pod, a
/// definition's hooks in their order, then the Pod's annotations.
pub fn plan(definition_hooks: &[BackupHook], selection: &Selection, pods: &[Pod]) -> Plan {
    let mut out = Plan::default();
    let mut pods: Vec<&Pod> = pods
        .iter()
        .filter(|p| {
            let ns = p.metadata.namespace.as_deref().unwrap_or_default();
            selection.full_cluster || selection.namespaces.iter().any(|n| n == ns)
        })
        .collect();
    pods.sort_by_key(|p| (p.metadata.namespace.clone(), p.metadata.name.clone()));
    for pod in pods {
        let namespace = pod.metadata.namespace.clone().unwrap_or_default();
        let name = pod.metadata.name.clone().unwrap_or_default();
        let labels = pod.metadata.labels.clone().unwrap_or_default();
        let first_container = pod
            .spec
            .as_ref()
            .and_then(|s| s.containers.first())
            .map(|c| c.name.clone())
            .unwrap_or_default();
        let mut wanted = Vec::new();
        for hook in definition_hooks {
            let in_namespace = hook.namespaces.is_empty() || hook.namespaces.contains(&namespace);
            if in_namespace && matches(&labels, &hook.labels) {
                let (pre, post) = hook.commands();
                let container = hook.container.clone().unwrap_or_else(|| first_container.clone());
                wanted.push((hook.name.clone(), container, pre, post));
            }
        }
        // Annotation hooks only for Pods the backup itself takes (its label selection).
        if matches(&labels, &selection.labels) {
            let annotations = pod.metadata.annotations.clone().unwrap_or_default();
            match annotation_hooks(&annotations) {
                Ok(AnnotationHooks {
                    pre: None, post: None, ..
                }) => {}
                Ok(AnnotationHooks { container, pre, post }) => {
                    let container = container.unwrap_or_else(|| first_container.clone());
                    wanted.push((ANNOTATIONS.to_owned(), container, pre, post));
                }
                Err(e) => out.errors.push(format!("Pod {namespace}/{name}: {e}")),
            }
        }
        if wanted.is_empty() {
            continue;
        }
        let phase = pod.status.as_ref().and_then(|s| s.phase.clone()).unwrap_or_default();
        if phase != "Running" || pod.metadata.deletion_timestamp.is_some() {
            let state = if pod.metadata.deletion_timestamp.is_some() {
                "terminating".to_owned()
            } else {
                format!("{phase:?}")
            };
            out.notes.push(format!(
                "hooks not run in Pod {namespace}/{name}: it is {state}, not running"
            ));
            continue;
        }
        for (source, container, pre, post) in wanted {
            out.hooks.push(PodHook {
                source,
                namespace: namespace.clone(),
                pod: name.clone(),
                container,
                pre,
                post,
            });
        }
    }
    out
}

/// The Pods [`plan`] looks at: those of the backup's namespaces (every Pod for a full
/// cluster backup).
pub async fn pods(client: &Client, selection: &Selection) -> Result<Vec<Pod>, String> {
    let lists: Vec<Api<Pod>> = if selection.full_cluster {
        vec![Api::all(client.clone())]
    } else {
        selection
            .namespaces
            .iter()
            .map(|ns| Api::namespaced(client.clone(), ns))
            .collect()
    };
    let mut out = Vec::new();
    for api in lists {
        let list = api
            .list(&ListParams::default())
            .await
            .map_err(|e| format!("listing Pods for hooks: {e}"))?;
        out.extend(list.items);
    }
    Ok(out)
}

/// The hooks of one backup as they run: pre hooks through [`Hooks::before`], post
/// hooks through [`Hooks::after`], outcomes kept in the order they ran.
pub struct Hooks {
    client: Client,
    plan: Vec<PodHook>,
    /// How many of `plan` had their pre hook run (or had none): their post hooks run.
    started: usize,
    pub outcomes: Vec<HookOutcome>,
}

/// Why the backup stops: a pre hook failed with `onError: fail`.
#[derive(Debug)]
pub struct Stop(pub String);

impl Hooks {
    pub fn new(client: Client, plan: Vec<PodHook>) -> Self {
        Hooks {
            client,
            plan,
            started: 0,
            outcomes: Vec::new(),
        }
    }

    /// Every pre hook, in order; stops at the first that fails with `onError: fail`
    /// (that one's post hook still runs: it undoes whatever the pre hook got to do).
    pub async fn before(&mut self) -> Result<(), Stop> {
        while self.started < self.plan.len() {
            let hook = self.plan[self.started].clone();
            self.started += 1;
            let Some(command) = &hook.pre else { continue };
            let outcome = run(&self.client, &hook, HookPhase::Pre, command).await;
            let stop = !outcome.succeeded() && command.on_error == OnError::Fail;
            let line = outcome.line();
            self.outcomes.push(outcome);
            if stop {
                return Err(Stop(line));
            }
        }
        Ok(())
    }

    /// The post hooks of the Pods whose pre hook ran, last first, every one whatever
    /// the others did (their failures are in [`Hooks::outcomes`]).
    pub async fn after(&mut self) {
        for hook in self.plan[..self.started].iter().rev() {
            let Some(command) = &hook.post else { continue };
            let outcome = run(&self.client, hook, HookPhase::Post, command).await;
            self.outcomes.push(outcome);
        }
        self.started = 0;
    }
}

/// The kinds whose restored objects run Pods a restore hook can exec in.
const WORKLOADS: [&str; 5] = [
    "deployments.apps",
    "statefulsets.apps",
    "daemonsets.apps",
    "replicasets.apps",
    "pods",
];

/// A restored workload as restore hooks see it: where its Pods are, how to find them,
/// and its Pod template's labels and annotations.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Workload {
    /// `deployments.apps shop/web`.
    pub what: String,
    pub namespace: String,
    /// The Pods' label selector (a bare Pod: its own name).
    pub selector: Selector,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Selector {
    Labels(BTreeMap<String, String>),
    Pod(String),
}

/// One restore hook to run in one workload's Pods once they are Ready.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RestoreStep {
    pub source: String,
    pub workload: Workload,
    pub container: Option<String>,
    pub command: HookCommand,
    pub wait: Duration,
}

/// The restore hooks (the restore's, then each workload's annotations) for the restored
/// workloads, and the annotations that cannot be read.
pub fn restore_plan(spec: &RestoreSpec, workloads: &[Workload]) -> (Vec<RestoreStep>, Vec<String>) {
    let (mut steps, mut errors) = (Vec::new(), Vec::new());
    for workload in workloads {
        for hook in &spec.hooks {
            let in_namespace = hook.namespaces.is_empty()
                || hook
                    .namespaces
                    .iter()
                    .any(|source| spec.target_namespace(source) == workload.namespace);
            if in_namespace && matches(&workload.labels, &hook.labels) {
                steps.push(RestoreStep {
                    source: hook.name.clone(),
                    workload: workload.clone(),
                    container: hook.container.clone(),
                    command: hook.command(),
                    wait: Duration::from_secs(u64::from(hook.wait_seconds)),
                });
            }
        }
        match restore_annotation_hook(&workload.annotations) {
            Ok(Some(RestoreAnnotationHook {
                container,
                command,
                wait,
            })) => steps.push(RestoreStep {
                source: ANNOTATIONS.to_owned(),
                workload: workload.clone(),
                container,
                command,
                wait,
            }),
            Ok(None) => {}
            Err(e) => errors.push(format!("{}: {e}", workload.what)),
        }
    }
    (steps, errors)
}

/// The restored workloads among a restore's created or updated objects, as they are
/// now in the cluster (their Pod templates).
pub async fn restored_workloads(client: &Client, items: &[ItemResult]) -> Vec<Workload> {
    let mut out = Vec::new();
    for item in items {
        let (Some(namespace), true) = (&item.namespace, WORKLOADS.contains(&item.resource.as_str())) else {
            continue;
        };
        if !matches!(item.outcome, ItemOutcome::Created | ItemOutcome::Updated) {
            continue;
        }
        let what = format!("{} {namespace}/{}", item.resource, item.name);
        let template = |spec: Option<(LabelSelector, PodTemplateSpec)>| {
            spec.map(|(selector, template)| {
                let meta = template.metadata.unwrap_or_default();
                let labels = meta.labels.unwrap_or_default();
                // A selector of expressions only: the template's labels find the Pods.
                let select = selector
                    .match_labels
                    .filter(|m| !m.is_empty())
                    .unwrap_or_else(|| labels.clone());
                (Selector::Labels(select), labels, meta.annotations.unwrap_or_default())
            })
        };
        let (ns, name) = (namespace.as_str(), item.name.as_str());
        let found = match item.resource.as_str() {
            "deployments.apps" => live::<Deployment>(client, ns, name)
                .await
                .and_then(|d| template(d.spec.map(|s| (s.selector, s.template)))),
            "statefulsets.apps" => live::<StatefulSet>(client, ns, name)
                .await
                .and_then(|d| template(d.spec.map(|s| (s.selector, s.template)))),
            "daemonsets.apps" => live::<DaemonSet>(client, ns, name)
                .await
                .and_then(|d| template(d.spec.map(|s| (s.selector, s.template)))),
            // A Deployment's ReplicaSet: its Deployment's hooks run in those Pods.
            "replicasets.apps" => live::<ReplicaSet>(client, ns, name)
                .await
                .filter(|r| r.metadata.owner_references.as_ref().is_none_or(Vec::is_empty))
                .and_then(|d| template(d.spec.and_then(|s| s.template.map(|t| (s.selector, t))))),
            _ => live::<Pod>(client, ns, name).await.map(|p| {
                (
                    Selector::Pod(item.name.clone()),
                    p.metadata.labels.unwrap_or_default(),
                    p.metadata.annotations.unwrap_or_default(),
                )
            }),
        };
        if let Some((selector, labels, annotations)) = found {
            out.push(Workload {
                what,
                namespace: namespace.clone(),
                selector,
                labels,
                annotations,
            });
        }
    }
    out
}

/// The object as it is in the cluster now (`None`: gone, or unreadable).
async fn live<K>(client: &Client, namespace: &str, name: &str) -> Option<K>
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
{
    Api::<K>::namespaced(client.clone(), namespace)
        .get_opt(name)
        .await
        .ok()
        .flatten()
}

/// Runs each step once its workload's Pods are Ready (all of them, at least one), in
/// every such Pod; a workload not Ready in time gives a timed-out outcome.
pub async fn run_restore_hooks(client: &Client, steps: &[RestoreStep]) -> Vec<HookOutcome> {
    let mut outcomes = Vec::new();
    for step in steps {
        let hook = |pod: &str, container: &str| PodHook {
            source: step.source.clone(),
            namespace: step.workload.namespace.clone(),
            pod: pod.to_owned(),
            container: container.to_owned(),
            pre: None,
            post: None,
        };
        match ready_pods(client, &step.workload, step.wait).await {
            Ok(pods) => {
                for pod in pods {
                    let name = pod.metadata.name.clone().unwrap_or_default();
                    let first = pod
                        .spec
                        .as_ref()
                        .and_then(|s| s.containers.first())
                        .map(|c| c.name.clone())
                        .unwrap_or_default();
                    let container = step.container.clone().unwrap_or(first);
                    outcomes.push(run(client, &hook(&name, &container), HookPhase::Restore, &step.command).await);
                }
            }
            Err(why) => outcomes.push(
                HookOutcome {
                    hook: step.source.clone(),
                    phase: HookPhase::Restore,
                    namespace: step.workload.namespace.clone(),
                    pod: step.workload.what.clone(),
                    container: step.container.clone().unwrap_or_default(),
                    command: step.command.argv.clone(),
                    result: HookResult::TimedOut,
                    exit_code: None,
                    duration_ms: u64::try_from(step.wait.as_millis()).unwrap_or(u64::MAX),
                    on_error: step.command.on_error,
                    output: why,
                }
                .bounded(),
            ),
        }
    }
    outcomes
}

/// The workload's Pods once all of them (at least one) are Ready, or why not in time.
async fn ready_pods(client: &Client, workload: &Workload, wait: Duration) -> Result<Vec<Pod>, String> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), &workload.namespace);
    let params = match &workload.selector {
        Selector::Labels(labels) => ListParams::default().labels(
            &labels
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(","),
        ),
        Selector::Pod(name) => ListParams::default().fields(&format!("metadata.name={name}")),
    };
    let deadline = Instant::now() + wait;
    let mut seen = String::from("no Pod");
    loop {
        if let Ok(list) = pods.list(&params).await {
            let live: Vec<Pod> = list
                .items
                .into_iter()
                .filter(|p| p.metadata.deletion_timestamp.is_none())
                .collect();
            let ready = live.iter().filter(|p| pod_ready(p)).count();
            if !live.is_empty() && ready == live.len() {
                return Ok(live);
            }
            seen = format!("{ready} of {} Pods Ready", live.len());
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "{}: its Pods were not Ready within {} ({seen}); the hook did not run",
                workload.what,
                humantime(wait)
            ));
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

fn pod_ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// Runs one command through the exec API within its time limit.
async fn run(client: &Client, hook: &PodHook, phase: HookPhase, command: &HookCommand) -> HookOutcome {
    let started = Instant::now();
    let deadline = tokio::time::Instant::now() + command.timeout;
    let (result, exit_code, output) = match exec(client, hook, command, deadline).await {
        Ran::Exited(0, output) => (HookResult::Succeeded, Some(0), output),
        Ran::Exited(code, output) => (HookResult::Failed, Some(code), output),
        Ran::NotRun(why) => (HookResult::Failed, None, why),
        Ran::TimedOut => (
            HookResult::TimedOut,
            None,
            format!(
                "no exit within {} (the command may still be running in the container)",
                humantime(command.timeout)
            ),
        ),
    };
    let outcome = HookOutcome {
        hook: hook.source.clone(),
        phase,
        namespace: hook.namespace.clone(),
        pod: hook.pod.clone(),
        container: hook.container.clone(),
        command: command.argv.clone(),
        result,
        exit_code,
        duration_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
        on_error: command.on_error,
        output,
    }
    .bounded();
    tracing::info!(
        hook = %outcome.hook,
        pod = %format!("{}/{}", outcome.namespace, outcome.pod),
        phase = ?outcome.phase,
        result = ?outcome.result,
        exit_code = outcome.exit_code,
        duration_ms = outcome.duration_ms,
        "hook ran"
    );
    outcome
}

fn humantime(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{}ms", d.as_millis())
    }
}

/// How an exec ended.
enum Ran {
    /// Exit code and the end of the output (stdout, then stderr).
    Exited(i32, String),
    /// Why it could not run (no such container or program, exec refused).
    NotRun(String),
    TimedOut,
}

/// Runs `command` in the hook's container until `deadline`; past it, the exec stream is
/// closed (its reader task aborted, so a command that never ends costs the agent
/// nothing) while the command itself may go on in the container.
async fn exec(client: &Client, hook: &PodHook, command: &HookCommand, deadline: tokio::time::Instant) -> Ran {
    let pods: Api<Pod> = Api::namespaced(client.clone(), &hook.namespace);
    let params = AttachParams::default()
        .container(hook.container.clone())
        .stdin(false)
        .stdout(true)
        .stderr(true);
    let mut process = match tokio::time::timeout_at(deadline, pods.exec(&hook.pod, command.argv.clone(), &params)).await
    {
        Err(_) => return Ran::TimedOut,
        Ok(Err(kube::Error::Api(s))) if s.code == 403 => {
            return Ran::NotRun(format!(
                "the agent may not exec in Pods here (RBAC: create pods/exec; the install's hooks option): {}",
                s.message
            ));
        }
        Ok(Err(e)) => return Ran::NotRun(format!("starting the command: {e}")),
        Ok(Ok(p)) => p,
    };
    let (status, stdout, stderr) = (process.take_status(), process.stdout(), process.stderr());
    let collected = tokio::time::timeout_at(deadline, async move {
        let (out, err) = tokio::join!(read_tail(stdout), read_tail(stderr));
        let status = match status {
            Some(s) => s.await,
            None => None,
        };
        (out, err, status)
    })
    .await;
    let Ok((out, err, status)) = collected else {
        process.abort();
        return Ran::TimedOut;
    };
    let _ = process.join().await;
    let mut output = out;
    if !err.is_empty() {
        if !output.is_empty() && !output.ends_with('\n') {
            output.push('\n');
        }
        output.push_str(&err);
    }
    let output = tail_bytes(&output, MAX_HOOK_OUTPUT);
    let Some(status) = status else {
        return Ran::NotRun(format!(
            "the exec stream ended without an exit status; output: {output}"
        ));
    };
    if status.status.as_deref() == Some("Success") {
        return Ran::Exited(0, output);
    }
    // A non-zero exit is a Failure whose details carry the code ("NonZeroExitCode").
    let code = status
        .details
        .as_ref()
        .and_then(|d| d.causes.as_ref())
        .and_then(|causes| causes.iter().find(|c| c.reason.as_deref() == Some("ExitCode")))
        .and_then(|c| c.message.as_deref())
        .and_then(|m| m.parse::<i32>().ok());
    match code {
        Some(code) => Ran::Exited(code, output),
        // Not started: no such container, no such program.
        None if output.is_empty() => Ran::NotRun(status.message.unwrap_or_default()),
        None => Ran::NotRun(format!("{}; output: {output}", status.message.unwrap_or_default())),
    }
}

/// Everything from `reader`, keeping only the last [`MAX_HOOK_OUTPUT`] bytes (a chatty
/// command cannot fill the agent's memory).
async fn read_tail<R: tokio::io::AsyncRead + Unpin>(reader: Option<R>) -> String {
    let Some(mut reader) = reader else {
        return String::new();
    };
    let mut kept: Vec<u8> = Vec::new();
    let mut buf = [0u8; 4096];
    while let Ok(n) = reader.read(&mut buf).await {
        if n == 0 {
            break;
        }
        kept.extend_from_slice(&buf[..n]);
        if kept.len() > 2 * MAX_HOOK_OUTPUT {
            kept.drain(..kept.len() - MAX_HOOK_OUTPUT);
        }
    }
    tail_bytes(&String::from_utf8_lossy(&kept), MAX_HOOK_OUTPUT)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(ns: &str, name: &str, labels: serde_json::Value, annotations: serde_json::Value, phase: &str) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"namespace": ns, "name": name, "labels": labels, "annotations": annotations},
            "spec": {"containers": [{"name": "main"}, {"name": "side"}]},
            "status": {"phase": phase}
        }))
        .unwrap()
    }

    fn hook(json: serde_json::Value) -> BackupHook {
        serde_json::from_value(json).unwrap()
    }

    fn selection(namespaces: &[&str]) -> Selection {
        Selection {
            namespaces: namespaces.iter().map(|s| s.to_string()).collect(),
            ..Selection::default()
        }
    }

    #[test]
    fn definition_hooks_select_running_pods_by_namespace_and_labels() {
        let pods = [
            pod("shop", "db-0", json!({"app": "db"}), json!({}), "Running"),
            pod("shop", "web-0", json!({"app": "web"}), json!({}), "Running"),
            pod("shop", "db-1", json!({"app": "db"}), json!({}), "Pending"),
            pod("other", "db-9", json!({"app": "db"}), json!({}), "Running"),
        ];
        let hooks = [hook(
            json!({"name": "flush", "labels": {"app": "db"}, "pre": ["sync"], "container": "side"}),
        )];
        let plan = plan(&hooks, &selection(&["shop"]), &pods);
        assert_eq!(plan.hooks.len(), 1, "{plan:?}");
        let h = &plan.hooks[0];
        assert_eq!(
            (h.pod.as_str(), h.container.as_str(), h.source.as_str()),
            ("db-0", "side", "flush")
        );
        assert_eq!(h.pre.as_ref().unwrap().argv, ["sync"]);
        assert!(h.post.is_none());
        assert_eq!(plan.notes.len(), 1, "the pending Pod is named: {plan:?}");
        assert!(plan.notes[0].contains("shop/db-1") && plan.notes[0].contains("Pending"));
    }

    #[test]
    fn annotations_run_in_the_first_container_of_pods_the_backup_takes() {
        let annotated = json!({"pre.hook.backup.velero.io/command": "[\"/bin/sh\", \"-c\", \"sync\"]",
                               "post.hook.backup.velero.io/command": "/bin/true"});
        let pods = [
            pod("shop", "a", json!({"tier": "data"}), annotated.clone(), "Running"),
            pod("shop", "b", json!({"tier": "web"}), annotated, "Running"),
            pod(
                "shop",
                "c",
                json!({"tier": "data"}),
                json!({"pre.hook.backup.velero.io/timeout": "x",
                "pre.hook.backup.velero.io/command": "y"}),
                "Running",
            ),
        ];
        let mut sel = selection(&["shop"]);
        sel.labels = BTreeMap::from([("tier".into(), "data".into())]);
        let plan = plan(&[], &sel, &pods);
        assert_eq!(plan.hooks.len(), 1, "{plan:?}");
        let h = &plan.hooks[0];
        assert_eq!(
            (h.pod.as_str(), h.container.as_str(), h.source.as_str()),
            ("a", "main", ANNOTATIONS)
        );
        assert_eq!(h.post.as_ref().unwrap().argv, ["/bin/true"]);
        assert_eq!(plan.errors.len(), 1, "{plan:?}");
        assert!(plan.errors[0].starts_with("Pod shop/c: annotation pre.hook.backup.velero.io/timeout"));
    }

    #[test]
    fn restore_hooks_go_to_the_restored_workloads_in_their_renamed_namespaces() {
        let workload = |ns: &str, labels: serde_json::Value, annotations: serde_json::Value| Workload {
            what: format!("deployments.apps {ns}/w"),
            namespace: ns.into(),
            selector: Selector::Labels(BTreeMap::from([("app".into(), "w".into())])),
            labels: serde_json::from_value(labels).unwrap(),
            annotations: serde_json::from_value(annotations).unwrap(),
        };
        let mut spec = arca_core::model::restore::RestoreSpec::everything(
            arca_core::ids::RecoveryPointId::new(),
            arca_core::ids::ClusterId::new(),
        );
        spec.namespace_suffix = "-copy".into();
        spec.hooks = vec![
            serde_json::from_value(json!({"name": "warm", "namespaces": ["shop"], "labels": {"app": "db"},
                "command": ["warm"]}))
            .unwrap(),
        ];
        let workloads = [
            workload("shop-copy", json!({"app": "db"}), json!({})),
            workload("shop", json!({"app": "db"}), json!({})),
            workload(
                "shop-copy",
                json!({"app": "web"}),
                json!({"post.hook.restore.velero.io/command": "[\"/bin/true\"]"}),
            ),
            workload(
                "other-copy",
                json!({}),
                json!({"post.hook.restore.velero.io/command": "x",
                "post.hook.restore.velero.io/exec-timeout": "never"}),
            ),
        ];
        let (steps, errors) = restore_plan(&spec, &workloads);
        let got: Vec<(&str, &str)> = steps
            .iter()
            .map(|s| (s.source.as_str(), s.workload.namespace.as_str()))
            .collect();
        assert_eq!(
            got,
            [("warm", "shop-copy"), (ANNOTATIONS, "shop-copy")],
            "source shop is target shop-copy"
        );
        assert_eq!(steps[0].wait, Duration::from_secs(300));
        assert_eq!(steps[1].command.argv, ["/bin/true"]);
        assert_eq!(errors.len(), 1);
        assert!(
            errors[0].starts_with("deployments.apps other-copy/w: annotation post.hook.restore.velero.io/exec-timeout")
        );
    }

    #[test]
    fn a_full_cluster_backup_runs_hooks_everywhere_and_a_pod_may_have_both_kinds() {
        let pods = [pod(
            "x",
            "p",
            json!({"app": "db"}),
            json!({"pre.hook.backup.velero.io/command": "a"}),
            "Running",
        )];
        let sel = Selection {
            full_cluster: true,
            ..Selection::default()
        };
        let hooks = [hook(json!({"name": "h", "namespaces": ["x"], "post": ["b"]}))];
        let plan = plan(&hooks, &sel, &pods);
        let sources: Vec<&str> = plan.hooks.iter().map(|h| h.source.as_str()).collect();
        assert_eq!(sources, ["h", ANNOTATIONS], "the definition's first");
    }
}
