//! The README's `arca` examples, run as written against `arca server` with AWS on moto, so
//! they cannot drift from the CLI: every `arca …` line of its `sh` blocks (continuations
//! joined, comments dropped), in order, with its placeholders (`"$KEY"`, `cl_…`, `rp_…`,
//! the example account, …) replaced by what the earlier lines made. Each line has an
//! expectation below, and the test fails on a README line without one or an expectation
//! without its line, so changing either means looking at the other.
//!
//! Lines that need an agent in a cluster or an EKS recovery point (a backup's `--wait`, a
//! restore, an EKS re-creation) cannot complete here; they are run against an address
//! where nothing listens, which proves the CLI accepts them as written (a usage error
//! exits 2 before any request) without waiting on work nobody does. The rest complete.

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Output;

use common::{Server, User, fresh_account, postgres, rds_in, spawn_server, stderr, stop_with_sigterm};

/// What one README line must do.
#[derive(Clone, Copy, Debug)]
enum Expect {
    /// Exit 0, stdout containing this text.
    Ok(&'static str),
    /// Exit 1 with this problem code (`arca: error: <code>: …`).
    Fails(&'static str),
    /// Accepted as written; needs what this environment has not (see the module doc).
    Accepted,
    /// Starts serving (on any port, as the README's comment allows) and stops on SIGTERM.
    Serves,
}

/// The README's lines and what each does, in README order.
const EXPECTATIONS: &[(&str, Expect)] = &[
    ("arca server --data-dir ./arca-data", Expect::Serves),
    ("arca signup --org-name acme", Expect::Ok("acme")),
    ("arca login --api-key \"$KEY\" --api-url https://…", Expect::Ok("")),
    (
        "arca policies create nightly --schedule \"0 2 * * *=14:3\" --timezone Europe/Paris",
        Expect::Ok("nightly"),
    ),
    ("arca clusters register prod", Expect::Ok("kubectl apply -f")),
    (
        "arca clusters register edge --agent-token-file edge.token",
        Expect::Ok("edge"),
    ),
    (
        "arca destinations create local --local-path /srv/arca-backups",
        Expect::Ok("local"),
    ),
    ("arca destinations maintenance local", Expect::Ok("")),
    (
        "arca destinations purge local --cluster cl_…",
        Expect::Fails("purge_not_possible"),
    ),
    (
        "arca backups create web --cluster prod --namespaces web,db --labels app=web --pv-mode snapshot --policy nightly --destination local",
        Expect::Ok("web"),
    ),
    ("arca backups run web --wait", Expect::Accepted),
    ("arca jobs list -o json", Expect::Ok("[")),
    ("arca recovery-points list --backup web", Expect::Ok("")),
    (
        "arca restores create --recovery-point rp_… --cluster prod --namespace-suffix=-restored --wait",
        Expect::Accepted,
    ),
    ("arca policies delete nightly", Expect::Fails("policy_in_use")),
    (
        "arca backups update web --namespaces web,db,cache --no-policy",
        Expect::Ok("backup web updated"),
    ),
    (
        "arca cloud-accounts link --name aws-prod --region us-east-1,eu-west-1",
        Expect::Ok("ExternalId"),
    ),
    (
        "arca cloud-accounts set-role aws-prod --role-arn arn:aws:iam::111122223333:role/arca-…",
        Expect::Ok("ACTIVE"),
    ),
    ("arca cloud-accounts inventory aws-prod", Expect::Ok("us-east-1")),
    (
        "arca cloud-accounts inventory aws-prod --show --region us-east-1",
        Expect::Ok("orders"),
    ),
    (
        "arca cloud-accounts findings aws-prod --severity HIGH",
        Expect::Ok("last scan"),
    ),
    (
        "arca clusters register prod-eks --aws-account aws-prod --aws-region us-east-1 --eks-cluster prod",
        Expect::Ok("prod-eks"),
    ),
    (
        "arca rds backups create orders --account aws-prod --region us-east-1 --db-instance orders,ledger --policy nightly --copy-to us-west-2 --copy-retain-days 30",
        Expect::Ok("orders"),
    ),
    ("arca rds backups run orders --wait", Expect::Ok("COMPLETED")),
    ("arca rds recovery-points list --backup orders", Expect::Ok("us-west-2")),
    (
        "arca rds restores create --account aws-prod --recovery-point rp_… --target orders-restored --wait",
        Expect::Ok("COMPLETED"),
    ),
    ("arca recovery-points aws rp_…", Expect::Accepted),
    ("arca eks recreate rp_… --name prod-2 --wait", Expect::Accepted),
    (
        "arca eks recreate rp_… --name prod-2 --install-agent --wait",
        Expect::Accepted,
    ),
    ("arca eks install-agent eksr_… [--kubeconfig FILE]", Expect::Accepted),
    ("arca eks list", Expect::Ok("")),
    (
        "arca org update --default-destination local",
        Expect::Ok("org acme updated"),
    ),
    ("arca apikeys create ci --role viewer", Expect::Ok("arca_")),
    // The admin's creation of `ci` just above is in the trail.
    ("arca audit list --operation createApiKey", Expect::Ok("createApiKey")),
    (
        "arca alerts channels create oncall --webhook https://hooks.example.com/arca --events job.failed,job.skipped",
        Expect::Ok("its signing secret (shown only now): arcawhsec_"),
    ),
    ("arca alerts deliveries --status failed", Expect::Ok("")),
    ("arca clusters get prod", Expect::Ok("prod")),
];

/// The `arca …` lines of the README's `sh` blocks: continuations joined, comments dropped.
fn readme_commands(readme: &str) -> Vec<String> {
    let mut commands = Vec::new();
    let mut in_sh = false;
    let mut pending = String::new();
    for line in readme.lines() {
        if line.trim_start().starts_with("```") {
            in_sh = !in_sh && line.trim() == "```sh";
            continue;
        }
        if !in_sh {
            continue;
        }
        let code = without_comment(line);
        let (code, continues) = match code.trim_end().strip_suffix('\\') {
            Some(head) => (head.trim_end(), true),
            None => (code.trim_end(), false),
        };
        if !pending.is_empty() {
            pending.push(' ');
        }
        pending.push_str(code.trim_start());
        if !continues {
            let command = std::mem::take(&mut pending);
            if command.starts_with("arca ") {
                commands.push(command);
            }
        }
    }
    commands
}

/// `line` up to a `#` that starts a shell comment (after a blank, outside quotes).
fn without_comment(line: &str) -> &str {
    let mut quote = None;
    let mut previous = ' ';
    for (i, c) in line.char_indices() {
        match (quote, c) {
            (None, '"' | '\'') => quote = Some(c),
            (Some(q), c) if c == q => quote = None,
            (None, '#') if previous.is_whitespace() => return &line[..i],
            _ => {}
        }
        previous = c;
    }
    line
}

/// Shell words of a command (quotes only: the README's lines use no other syntax).
fn words(command: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word: Option<String> = None;
    let mut quote = None;
    for c in command.chars() {
        match (quote, c) {
            (None, '"' | '\'') => {
                quote = Some(c);
                word.get_or_insert_with(String::new);
            }
            (Some(q), c) if c == q => quote = None,
            (None, c) if c.is_whitespace() => words.extend(word.take()),
            (_, c) => word.get_or_insert_with(String::new).push(c),
        }
    }
    words.extend(word);
    words
}

/// The values the placeholders of the README stand for, filled in as the lines run.
struct Placeholders(BTreeMap<&'static str, String>);

impl Placeholders {
    fn apply(&self, word: &str) -> String {
        self.0
            .iter()
            .fold(word.to_owned(), |w, (placeholder, value)| w.replace(placeholder, value))
    }
}

fn run(user: &User, dir: &Path, args: &[String], api_url: &str) -> Output {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_arca"));
    cmd.args(&args)
        .current_dir(dir)
        .env("ARCA_API_URL", api_url)
        .env("ARCA_CONFIG", &user.config)
        .env("HOME", &user.home)
        .env_remove("ARCA_API_KEY");
    cmd.output().unwrap()
}

/// `arca <args>` on any port in `dir`: it says where it listens, answers there with its
/// state in `dir/arca-data`, and stops cleanly on SIGTERM though its stdout is closed.
fn serves(dir: &Path, args: &[String]) {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    // Its stdout is closed at once: a server nobody reads any more still stops cleanly.
    let (child, url, _) = spawn_server(&args, dir);
    let user = User::new(&url, dir, "serves");
    user.ok(&["signup", "--org-name", "readme"]);
    assert!(dir.join("arca-data").join(arca_api::state::DB_FILE).exists());
    stop_with_sigterm(child);
}

#[test]
fn the_readme_examples_run_as_written() {
    arca_testenv::aws().expect("the test environment's moto (scripts/testenv.sh env)");
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md")).unwrap();
    let commands = readme_commands(&readme);
    let expected: BTreeMap<&str, Expect> = EXPECTATIONS.iter().copied().collect();
    let unlisted: Vec<&String> = commands.iter().filter(|c| !expected.contains_key(c.as_str())).collect();
    assert!(
        unlisted.is_empty(),
        "README lines without an expectation in {}: {unlisted:#?}",
        file!()
    );
    let stale: Vec<&&str> = expected.keys().filter(|e| !commands.iter().any(|c| c == *e)).collect();
    assert!(
        stale.is_empty(),
        "expectations whose line is no longer in the README: {stale:#?}"
    );

    let dir = tempfile::tempdir().unwrap();
    let work = dir.path().join("work");
    std::fs::create_dir_all(&work).unwrap();
    let server = Server::start(&dir.path().join("data"));
    let user = User::new(&server.url(), dir.path(), "user");
    // The example account's databases, in an account of this run's own.
    let account = fresh_account();
    server.rt.block_on(async {
        let rds = rds_in(&account, "us-east-1").await;
        for db in ["orders", "ledger"] {
            postgres(&rds, db).send().await.unwrap();
        }
    });
    let backups = work.join("arca-backups");
    let mut placeholders = Placeholders(BTreeMap::from([
        ("https://…", server.url()),
        ("111122223333", account.clone()),
        ("role/arca-…", "role/arca-cross-account".to_owned()),
        ("/srv/arca-backups", backups.display().to_string()),
        ("eksr_…", "eksr_01jexample".to_owned()),
    ]));

    for command in &commands {
        // What the earlier lines made, for the placeholders of the next ones.
        if std::fs::metadata(&user.config).is_ok() {
            placeholders.0.insert("$KEY", user.saved_key());
        }
        let args: Vec<String> = words(command)
            .iter()
            .skip(1)
            .filter(|w| !(w.starts_with('[') || w.ends_with(']')))
            .map(|w| placeholders.apply(w))
            .collect();
        match expected[command.as_str()] {
            Expect::Ok(text) => {
                let out = run(&user, &work, &args, &server.url());
                let stdout = String::from_utf8_lossy(&out.stdout);
                assert!(out.status.success(), "{command}\n  ran as {args:?}\n  {}", stderr(&out));
                assert!(stdout.contains(text), "{command}: {text:?} not in {stdout}");
            }
            Expect::Fails(code) => {
                let out = run(&user, &work, &args, &server.url());
                let err = stderr(&out);
                assert_eq!(out.status.code(), Some(1), "{command}: {err}");
                assert!(err.starts_with(&format!("arca: error: {code}: ")), "{command}: {err}");
            }
            Expect::Serves => serves(&work, &args),
            Expect::Accepted => {
                let nowhere = "http://127.0.0.1:9";
                let out = run(&user, &work, &args, nowhere);
                let err = stderr(&out);
                assert_eq!(
                    out.status.code(),
                    Some(1),
                    "{command} is not accepted as written: {err}"
                );
                assert!(
                    err.contains("127.0.0.1:9"),
                    "{command}: failed before its request: {err}"
                );
            }
        }
        if command == "arca clusters register prod" {
            let prod = user.json(&["clusters", "get", "prod"]);
            placeholders.0.insert("cl_…", prod["id"].as_str().unwrap().to_owned());
        }
        if command.starts_with("arca rds recovery-points list") {
            let points = user.json(&["rds", "recovery-points", "list", "--backup", "orders"]);
            let source = points
                .as_array()
                .unwrap()
                .iter()
                .find(|p| p["type"] == "SNAPSHOT" && p["database"]["identifier"] == "orders")
                .unwrap_or_else(|| panic!("{points}"));
            placeholders.0.insert("rp_…", source["id"].as_str().unwrap().to_owned());
        }
    }
    assert!(work.join("edge.token").exists(), "--agent-token-file wrote the token");
    server.stop();
}

#[test]
fn readme_lines_are_read_as_the_shell_would() {
    let readme = "text\n```sh\narca a --x \"1 2\" \\\n     --y 3   # a comment\necho no\n```\n```\narca not-sh\n```\n";
    assert_eq!(readme_commands(readme), vec!["arca a --x \"1 2\" --y 3"]);
    assert_eq!(
        words("arca a --x \"1 # 2\" 'b c' d"),
        ["arca", "a", "--x", "1 # 2", "b c", "d"]
    );
    assert_eq!(without_comment("arca x \"#1\" # note"), "arca x \"#1\" ");
}
