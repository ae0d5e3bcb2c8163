//! The web console in a real browser: `arca server` (serving the console it embedded at
//! build time) where the test nodes' Pods reach it, a bucket on the nodes' moto, and then
//! the Playwright suite `console/tests/console.spec.ts` in Debian's headless Chromium,
//! which signs up, registers the cluster and installs the agent with the `kubectl apply`
//! line the page shows, creates a destination, a policy and a backup (and edits both), runs
//! it, reads the recovery point, restores it through the wizard, links a moto account and
//! reads its scan's findings, reads every page and checks what a viewer sees. Screenshots of every page go to `$CARGO_TARGET_TMPDIR/console-artefacts`
//! (printed); with `ARCA_UPDATE_SCREENSHOTS=1` the overview also replaces
//! `docs/img/console-overview.png` (README's picture).
//!
//! Like the other in-cluster tests it needs the nodes' environment (skipped with a reason
//! outside CI, a failure under CI), and Chromium, Node and `console/node_modules`
//! (`scripts/console.sh` installs them; missing under CI is a failure).

#![allow(clippy::unwrap_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::node::{Kubectl, Scene, start_server_on_moto, wait_agent_namespace_gone};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

/// What the browser run needs besides the test environment, or why it is missing.
fn browser_tools() -> Result<(PathBuf, PathBuf), String> {
    let chromium = PathBuf::from(std::env::var("ARCA_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into()));
    if !chromium.is_file() {
        return Err(format!(
            "{} is missing (scripts/console.sh test-tools installs Debian's chromium)",
            chromium.display()
        ));
    }
    let playwright = repo().join("console/node_modules/@playwright/test/cli.js");
    if !playwright.is_file() {
        return Err("console/node_modules is missing (scripts/console.sh build runs npm ci)".into());
    }
    Ok((chromium, playwright))
}

/// Removes the restored namespace too (the scene's cleanup removes the application's and
/// the agent's).
struct DeleteNamespace<'a>(Kubectl<'a>, String);

impl Drop for DeleteNamespace<'_> {
    fn drop(&mut self) {
        let _ = self
            .0
            .run(&["delete", "namespace", &self.1, "--wait=false", "--ignore-not-found"]);
    }
}

#[test]
fn the_console_drives_a_backup_and_a_restore_in_a_real_browser() {
    let Some(nodes) = arca_testenv::nodes() else { return };
    let (chromium, playwright) = match browser_tools() {
        Ok(tools) => tools,
        Err(why) if std::env::var_os("CI").is_some() => panic!("the console's browser test cannot run under CI: {why}"),
        Err(why) => {
            eprintln!("skipped: {why}");
            return;
        }
    };
    let scene = Scene::new(&nodes, "console");
    let _restored = DeleteNamespace(scene.a, format!("{}-restored", scene.namespace));
    wait_agent_namespace_gone(&scene.a);
    // Its AWS is the nodes' moto, where the linked account's role is assumed and scanned.
    let (_server, url) = start_server_on_moto(scene.work.path(), &nodes, &[]);
    let aws_account = common::fresh_account();
    // A PostgreSQL instance with automated backups in that (fresh) account, for the
    // account's inventory and the RDS pages.
    let db = "orders-db";
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let config = common::config_in_env(&nodes.aws, &aws_account, "us-east-1").await;
        let rds = aws_sdk_rds::Client::new(&config);
        common::postgres(&rds, db)
            .backup_retention_period(7)
            .send()
            .await
            .unwrap();
    });

    // The server must serve the built console: a build without console/dist answers a page
    // saying how to build it, which must never pass here.
    let head = Command::new("curl")
        .args([
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code} %{content_type}",
            &format!("{url}/"),
        ])
        .output()
        .unwrap();
    let head = String::from_utf8(head.stdout).unwrap();
    assert_eq!(
        head, "200 text/html; charset=utf-8",
        "arca was built without console/dist: run scripts/console.sh build, then build again"
    );

    // The destination's bucket, on the nodes' moto as the agent Pod reaches it.
    let bucket = arca_testenv::unique("console").to_lowercase();
    let created = Command::new("curl")
        .args(["-sf", "-X", "PUT", &format!("{}/{bucket}", nodes.aws.endpoint_url)])
        .status()
        .unwrap();
    assert!(created.success(), "creating bucket {bucket} on moto");
    // The destination's customer-held key, on the same moto (its default account, which the
    // agent's keys from the credentials Secret act in).
    let kms_key_arn = tokio::runtime::Runtime::new().unwrap().block_on(async {
        let kms = aws_sdk_kms::Client::new(&nodes.aws.sdk_config().await);
        let made = kms.create_key().description("console").send().await.unwrap();
        made.key_metadata().unwrap().arn().unwrap().to_owned()
    });
    let moto_port = nodes.aws.endpoint_url.trim_end_matches('/').rsplit(':').next().unwrap();

    let artefacts = Path::new(env!("CARGO_TARGET_TMPDIR")).join("console-artefacts");
    let _ = std::fs::remove_dir_all(&artefacts);
    std::fs::create_dir_all(&artefacts).unwrap();
    eprintln!("console test artefacts (screenshots, traces): {}", artefacts.display());

    let status = Command::new("node")
        .arg(&playwright)
        .arg("test")
        .current_dir(repo().join("console"))
        .env("ARCA_CONSOLE_URL", &url)
        .env("ARCA_CHROMIUM", &chromium)
        .env("ARCA_KUBECTL", &nodes.kubectl)
        .env("ARCA_KUBECONFIG", &nodes.kubeconfig_a)
        .env("ARCA_CONSOLE_NAMESPACE", &scene.namespace)
        .env("ARCA_CONSOLE_BUCKET", &bucket)
        .env("ARCA_CONSOLE_KMS_KEY_ARN", &kms_key_arn)
        .env("ARCA_CONSOLE_AWS_ACCOUNT", &aws_account)
        .env("ARCA_CONSOLE_RDS_DB", db)
        .env(
            "ARCA_CONSOLE_S3_ENDPOINT",
            format!("http://{}:{moto_port}", nodes.host_ip),
        )
        .env("ARCA_CONSOLE_ARTEFACTS", &artefacts)
        // Playwright must use Debian's Chromium, never download its own.
        .env("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1")
        .env("CI", "true")
        .status()
        .unwrap();
    assert!(
        status.success(),
        "the console's browser suite failed (artefacts in {})",
        artefacts.display()
    );

    // The agent Pod kept the cluster's key in the bucket, wrapped by the customer's KMS key.
    let key_files = tokio::runtime::Runtime::new().unwrap().block_on(async {
        let s3 = aws_sdk_s3::Client::from_conf(
            aws_sdk_s3::config::Builder::from(&nodes.aws.sdk_config().await)
                .force_path_style(true)
                .build(),
        );
        let listed = s3.list_objects_v2().bucket(&bucket).send().await.unwrap();
        let mut files = Vec::new();
        for key in listed
            .contents()
            .iter()
            .filter_map(|o| o.key())
            .filter(|k| k.contains("/keys/g1-"))
        {
            let body = s3.get_object().bucket(&bucket).key(key).send().await.unwrap().body;
            let file: serde_json::Value = serde_json::from_slice(&body.collect().await.unwrap().into_bytes()).unwrap();
            files.push(file);
        }
        files
    });
    assert_eq!(key_files.len(), 1, "one customer-held cluster key: {key_files:?}");
    assert_eq!(
        (key_files[0]["kind"].as_str(), key_files[0]["kms_key_id"].as_str()),
        (Some("kms"), Some(kms_key_arn.as_str()))
    );

    // One screenshot per page, at 1280 px and at a phone's width.
    for page in [
        "signin",
        "overview",
        "clusters",
        "cluster",
        "backups",
        "jobs",
        "job",
        "recovery-points",
        "recovery-point",
        "restore-wizard",
        "restore-results",
        "policies",
        "destinations",
        "cloud-accounts",
        "cloud-account",
        "rds",
        "audit",
        "phone-overview",
        "viewer-backups",
    ] {
        let file = artefacts.join(format!("{page}.png"));
        let bytes = std::fs::read(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        assert!(bytes.starts_with(b"\x89PNG"), "{} is a PNG", file.display());
    }
    if std::env::var_os("ARCA_UPDATE_SCREENSHOTS").is_some() {
        std::fs::create_dir_all(repo().join("docs/img")).unwrap();
        std::fs::copy(
            artefacts.join("overview.png"),
            repo().join("docs/img/console-overview.png"),
        )
        .unwrap();
    }
}
