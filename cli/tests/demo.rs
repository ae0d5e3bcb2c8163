//! The README's first command, `scripts/demo.sh`, end to end against the real test
//! environment: `arca server`, the agent installed into clusters a and b (as Pods from the
//! agent image when the environment has nodes, else as `arca-agent run` processes), a
//! namespace backed up from a and restored into b. The script checks cluster b itself;
//! this test checks it again through its own client, and that no credential was printed.
//!
//! `arca` is the binary this test was built with (`ARCA_BIN`); the script builds
//! `arca-agent` with cargo in the same target directory (a no-op when it is fresh, which
//! a sibling file next to `arca` would not guarantee under `cargo test -p arca-cli`).

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret, Service};
use kube::Api;

/// The cargo target directory holding `exe`: the nearest ancestor with cargo's
/// `CACHEDIR.TAG` (also right under `--target <triple>` and custom profiles).
fn target_dir(exe: &Path) -> PathBuf {
    exe.ancestors()
        .find(|d| d.join("CACHEDIR.TAG").is_file())
        .unwrap_or_else(|| panic!("no cargo target directory above {}", exe.display()))
        .to_path_buf()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_readme_demo_backs_up_a_namespace_and_restores_it_into_another_cluster() {
    // With the nodes' environment the demo runs there (its README default: agents as Pods);
    // without, against the bare clusters with agents as processes.
    let nodes = arca_testenv::nodes();
    let (Some(a), Some(b)) = (match &nodes {
        Some(_) => arca_testenv::node_clusters().await.unzip(),
        None => (arca_testenv::cluster_a().await, arca_testenv::cluster_b().await),
    }) else {
        return;
    };
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/demo.sh");
    let arca = Path::new(env!("CARGO_BIN_EXE_arca"));
    let work = tempfile::tempdir().unwrap();
    let ns = arca_testenv::unique("demo");
    let restored = format!("{ns}-restored");

    let mut demo = std::process::Command::new("bash");
    demo.arg(&script)
        .env("ARCA_BIN", arca)
        .env_remove("ARCA_AGENT_BIN")
        .env("CARGO_TARGET_DIR", target_dir(arca))
        .env("ARCA_DEMO_DIR", work.path())
        .env("ARCA_DEMO_NAMESPACE", &ns)
        // The test environment's clusters, found by the script itself: with their nodes the
        // agents run in-cluster, installed with the one-time links (the README's default).
        .env_remove("ARCA_DEMO_KUBECONFIG_A")
        .env_remove("ARCA_DEMO_KUBECONFIG_B")
        .env_remove("ARCA_DEMO_AGENT")
        .envs(nodes.iter().flat_map(|n| n.testenv.clone()))
        // Keep the namespaces for the checks below (this test deletes them).
        .env("ARCA_DEMO_KEEP", "1")
        // Nothing of the developer's own login may leak in.
        .env_remove("ARCA_API_URL")
        .env_remove("ARCA_API_KEY")
        .env_remove("ARCA_CONFIG");
    let out = tokio::task::spawn_blocking(move || demo.output())
        .await
        .unwrap()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let all = format!("{stdout}\n--- stderr ---\n{stderr}");
    assert!(
        out.status.success(),
        "scripts/demo.sh failed ({:?}):\n{all}",
        out.status.code()
    );
    let success = stdout
        .lines()
        .find(|l| l.starts_with("demo: SUCCESS: "))
        .unwrap_or_else(|| panic!("no success line:\n{all}"));
    assert!(
        success.contains(&format!("namespace {ns} of cluster a")) && success.contains(&restored),
        "{success}"
    );
    for step in [
        "arca signup",
        "arca backups run --wait",
        "arca restores create --wait",
        "checking cluster b",
    ] {
        assert!(stdout.contains(step), "the output names the step {step:?}:\n{all}");
    }

    // No credential on the terminal: the API key and both agent tokens stay in files.
    let config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(work.path().join("config.json")).unwrap()).unwrap();
    let mut secrets = vec![config["apiKey"].as_str().unwrap().to_owned()];
    let in_cluster = stdout.contains("installing the agent into each: kubectl apply -f <link>");
    assert_eq!(
        in_cluster,
        nodes.is_some(),
        "with the test environment's nodes the agents run in-cluster, else as processes:\n{all}"
    );
    if in_cluster {
        // The agents ran as Pods (the test environment has nodes): their tokens reached the
        // clusters inside the one-time links' manifests, and neither links nor tokens were shown.
        assert!(
            std::env::var_os("ARCA_TEST_NODES").is_some(),
            "in-cluster only with nodes:\n{all}"
        );
        for c in ["a", "b"] {
            assert!(
                stdout.contains(&format!("cluster {c}: the agent Pod is Ready")),
                "{all}"
            );
        }
        for prefix in ["arcagent_", "arcainst_"] {
            assert!(!all.contains(prefix), "a credential ({prefix}…) was printed:\n{all}");
        }
        assert!(
            stdout.contains("the restored Deployment's Pod runs on arca-b-node"),
            "{all}"
        );
    } else {
        for c in ["a", "b"] {
            secrets.push(std::fs::read_to_string(work.path().join(format!("{c}.token"))).unwrap());
        }
    }
    for secret in &secrets {
        assert!(secret.len() > 16, "a real credential was saved");
        assert!(!all.contains(secret.as_str()), "a credential was printed:\n{all}");
    }

    // Cluster b, through our own client: every object, labelled by the restore.
    let labelled = |labels: Option<std::collections::BTreeMap<String, String>>| {
        labels.unwrap_or_default().contains_key("arca.io/restore-id")
    };
    let ns_b = Api::<Namespace>::all(b.client.clone()).get(&restored).await.unwrap();
    assert!(labelled(ns_b.metadata.labels), "namespace {restored}");
    let cm = Api::<ConfigMap>::namespaced(b.client.clone(), &restored)
        .get("settings")
        .await
        .unwrap();
    assert_eq!(
        cm.data.clone().unwrap_or_default().get("greeting").map(String::as_str),
        Some("hello from cluster a")
    );
    assert!(labelled(cm.metadata.labels));
    let secret = Api::<Secret>::namespaced(b.client.clone(), &restored)
        .get("creds")
        .await
        .unwrap();
    assert_eq!(
        secret.data.unwrap_or_default().get("password").map(|v| v.0.clone()),
        Some(b"demo-password".to_vec())
    );
    let deployment = Api::<Deployment>::namespaced(b.client.clone(), &restored)
        .get("web")
        .await
        .unwrap();
    assert!(labelled(deployment.metadata.labels));
    let service = Api::<Service>::namespaced(b.client.clone(), &restored)
        .get("web")
        .await
        .unwrap();
    assert!(labelled(service.metadata.labels));
    assert!(
        Api::<ConfigMap>::namespaced(b.client.clone(), &ns)
            .get_opt("settings")
            .await
            .unwrap()
            .is_none(),
        "nothing restored under the source namespace's name"
    );

    for (cluster, name) in [(&a, &ns), (&b, &restored)] {
        let _ = Api::<Namespace>::all(cluster.client.clone())
            .delete(name, &Default::default())
            .await;
    }
}
