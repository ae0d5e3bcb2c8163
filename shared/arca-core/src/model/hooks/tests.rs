use super::*;

fn hook(json: serde_json::Value) -> BackupHook {
    serde_json::from_value(json).unwrap()
}

#[test]
fn a_hook_reads_as_the_api_spells_it_with_defaults() {
    let h = hook(serde_json::json!({"name": "db", "labels": {"app": "pg"}, "pre": ["sh", "-c", "sync"]}));
    assert_eq!(h.timeout_seconds, 30);
    assert_eq!(h.on_error, OnError::Fail);
    h.validate("hooks[0]").unwrap();
    let (pre, post) = h.commands();
    assert_eq!(pre.unwrap().argv, ["sh", "-c", "sync"]);
    assert!(post.is_none());
}

#[test]
fn templates_give_commands_and_given_commands_replace_theirs() {
    let pg = hook(serde_json::json!({"name": "pg", "template": "postgresql"}));
    let (pre, post) = pg.commands();
    let pre = pre.unwrap();
    assert_eq!(pre.argv[..2], ["/bin/sh", "-c"]);
    assert!(pre.argv[2].contains("CHECKPOINT"), "{:?}", pre.argv);
    assert!(post.is_none());

    let mongo = hook(serde_json::json!({"name": "m", "template": "mongodb", "post": ["true"]}));
    let (pre, post) = mongo.commands();
    assert!(pre.unwrap().argv[2].contains("db.fsyncLock()"));
    assert_eq!(post.unwrap().argv, ["true"], "a given command replaces the template's");

    let mysql = hook(serde_json::json!({"name": "my", "template": "mysql"}));
    let (pre, post) = mysql.commands();
    let pre = &pre.unwrap().argv[2];
    assert!(pre.contains("FLUSH TABLES WITH READ LOCK"), "{pre}");
    assert!(
        pre.contains(&format!("SLEEP({MYSQL_LOCK_SECONDS})")),
        "the lock lapses by itself: {pre}"
    );
    assert!(post.unwrap().argv[2].starts_with("kill "));
}

#[test]
fn a_freeze_path_freezes_inside_the_template_and_thaws_first() {
    let h = hook(serde_json::json!({"name": "pg", "template": "postgresql", "freezePath": "/var/lib/it's"}));
    h.validate("h").unwrap();
    let (pre, post) = h.commands();
    let pre = &pre.unwrap().argv[2];
    assert!(pre.ends_with(r"&& fsfreeze --freeze '/var/lib/it'\''s'"), "{pre}");
    assert_eq!(post.unwrap().argv[2], r"fsfreeze --unfreeze '/var/lib/it'\''s'");
    let plain = hook(serde_json::json!({"name": "f", "template": "fsfreeze"}));
    let err = plain.validate("hooks[1]").unwrap_err();
    assert!(matches!(err, Error::Invalid { field, .. } if field == "hooks[1].freezePath"));
}

#[test]
fn bad_hooks_are_refused_naming_the_field() {
    let field = |json: serde_json::Value| match hook(json).validate("hooks[0]") {
        Err(Error::Invalid { field, .. }) => field,
        other => panic!("{other:?}"),
    };
    assert_eq!(
        field(serde_json::json!({"name": "Bad Name", "pre": ["x"]})),
        "hooks[0].name"
    );
    assert_eq!(field(serde_json::json!({"name": "a"})), "hooks[0].pre");
    assert_eq!(field(serde_json::json!({"name": "a", "pre": [""]})), "hooks[0].pre[0]");
    assert_eq!(
        field(serde_json::json!({"name": "a", "pre": ["x"], "timeoutSeconds": 0})),
        "hooks[0].timeoutSeconds"
    );
    assert_eq!(
        field(serde_json::json!({"name": "a", "pre": ["x"], "freezePath": "data"})),
        "hooks[0].freezePath"
    );
    assert_eq!(
        field(serde_json::json!({"name": "a", "pre": ["x"], "container": "A_b"})),
        "hooks[0].container"
    );
    let twice = vec![
        hook(serde_json::json!({"name": "a", "pre": ["x"]})),
        hook(serde_json::json!({"name": "a", "post": ["y"]})),
    ];
    assert!(matches!(validate_hooks("hooks", &twice), Err(Error::Invalid { field, .. }) if field == "hooks[1].name"));
}

#[test]
fn velero_annotations_are_read_and_arca_ones_win() {
    let annotations: BTreeMap<String, String> = [
        ("pre.hook.backup.velero.io/container", "db"),
        ("pre.hook.backup.velero.io/command", r#"["/bin/sh", "-c", "sync"]"#),
        ("pre.hook.backup.velero.io/timeout", "1m30s"),
        ("pre.hook.backup.velero.io/on-error", "Continue"),
        ("post.hook.backup.velero.io/command", "/usr/bin/velero-post"),
        ("post.hook.backup.arca.dev/command", r#"["/bin/true"]"#),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    let AnnotationHooks { container, pre, post } = annotation_hooks(&annotations).unwrap();
    assert_eq!(container.as_deref(), Some("db"));
    let pre = pre.unwrap();
    assert_eq!(pre.argv, ["/bin/sh", "-c", "sync"]);
    assert_eq!(pre.timeout, Duration::from_secs(90));
    assert_eq!(pre.on_error, OnError::Continue);
    let post = post.unwrap();
    assert_eq!(post.argv, ["/bin/true"], "arca.dev wins over velero.io");
    assert_eq!(post.on_error, OnError::Fail);
    assert_eq!(post.timeout, Duration::from_secs(30));
    assert_eq!(
        annotation_hooks(&BTreeMap::new()).unwrap(),
        AnnotationHooks::default(),
        "no annotation, no hook"
    );
}

#[test]
fn unreadable_annotations_are_named() {
    let one = |k: &str, v: &str| {
        let mut a = BTreeMap::from([("pre.hook.backup.velero.io/command".to_owned(), "x".to_owned())]);
        a.insert(k.to_owned(), v.to_owned());
        annotation_hooks(&a).unwrap_err()
    };
    assert!(one("pre.hook.backup.velero.io/command", "[1, 2]").contains("pre.hook.backup.velero.io/command"));
    assert!(one("pre.hook.backup.velero.io/timeout", "soon").contains("not a duration"));
    assert!(one("pre.hook.backup.velero.io/on-error", "Ignore").contains("neither Continue nor Fail"));
}

#[test]
fn restore_hooks_read_from_the_api_and_from_velero_annotations() {
    let h: RestoreHook = serde_json::from_value(serde_json::json!({"name": "reindex", "command": ["true"]})).unwrap();
    h.validate("hooks[0]").unwrap();
    assert_eq!((h.timeout_seconds, h.wait_seconds), (30, 300));
    let bad: RestoreHook = serde_json::from_value(serde_json::json!({"name": "x", "command": []})).unwrap();
    assert!(matches!(bad.validate("hooks[0]"), Err(Error::Invalid { field, .. }) if field == "hooks[0].command"));
    let slow: RestoreHook =
        serde_json::from_value(serde_json::json!({"name": "x", "command": ["y"], "waitSeconds": 0})).unwrap();
    assert!(matches!(slow.validate("hooks[0]"), Err(Error::Invalid { field, .. }) if field == "hooks[0].waitSeconds"));

    let annotations: BTreeMap<String, String> = [
        ("post.hook.restore.velero.io/command", r#"["/bin/sh", "-c", "reindex"]"#),
        ("post.hook.restore.velero.io/container", "db"),
        ("post.hook.restore.velero.io/exec-timeout", "2m"),
        ("post.hook.restore.velero.io/wait-timeout", "10m"),
        ("post.hook.restore.velero.io/on-error", "Continue"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    let RestoreAnnotationHook {
        container,
        command,
        wait,
    } = restore_annotation_hook(&annotations).unwrap().unwrap();
    assert_eq!(container.as_deref(), Some("db"));
    assert_eq!(command.argv, ["/bin/sh", "-c", "reindex"]);
    assert_eq!(command.timeout, Duration::from_secs(120));
    assert_eq!(command.on_error, OnError::Continue);
    assert_eq!(wait, Duration::from_secs(600));
    assert_eq!(restore_annotation_hook(&BTreeMap::new()).unwrap(), None);
    let typo = BTreeMap::from([
        ("post.hook.restore.velero.io/command".to_owned(), "x".to_owned()),
        (
            "post.hook.restore.velero.io/wait-timeout".to_owned(),
            "forever".to_owned(),
        ),
    ]);
    assert!(restore_annotation_hook(&typo).unwrap_err().contains("wait-timeout"));
}

#[test]
fn durations_read_as_go_writes_them() {
    assert_eq!(parse_duration("30s").unwrap(), Duration::from_secs(30));
    assert_eq!(parse_duration("1h").unwrap(), Duration::from_secs(3600));
    assert_eq!(parse_duration("2m5s").unwrap(), Duration::from_secs(125));
    assert_eq!(parse_duration("1500ms").unwrap(), Duration::from_millis(1500));
    for bad in ["", "10", "s", "1d", "0s", "2h"] {
        assert!(parse_duration(bad).is_err(), "{bad}");
    }
}

#[test]
fn outcomes_are_bounded_and_read_as_one_line() {
    let outcome = HookOutcome {
        hook: "db".into(),
        phase: HookPhase::Pre,
        namespace: "shop".into(),
        pod: "pg-0".into(),
        container: "postgres".into(),
        command: vec!["x".repeat(1000)],
        result: HookResult::Failed,
        exit_code: Some(3),
        duration_ms: 12,
        on_error: OnError::Continue,
        output: format!("{}the end", "y".repeat(5000)),
    }
    .bounded();
    assert!(outcome.output.len() <= MAX_HOOK_OUTPUT && outcome.output.ends_with("the end"));
    assert!(outcome.command[0].len() <= 256);
    let line = outcome.line();
    assert!(
        line.starts_with("WARNING: pre hook db in shop/pg-0 (postgres) failed (exit code 3) in 12 ms: "),
        "{line}"
    );
    assert_eq!(tail_bytes("héllo", 5), "…lo");
}
