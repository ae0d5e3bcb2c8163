use super::*;

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().to_utc()
}

fn spec(target: ChannelTarget) -> ChannelSpec {
    ChannelSpec {
        name: "on-call".into(),
        target,
        events: vec![],
        enabled: true,
        disconnected_after_minutes: 30,
    }
}

#[test]
fn the_signature_is_hmac_sha256_of_timestamp_dot_body() {
    // Against a value computed independently with openssl:
    // printf '1700000000.{"a":1}' | openssl dgst -sha256 -hmac 'arcawhsec_test'
    let secret = SigningSecret::from_text("arcawhsec_test");
    let header = signature_header(&secret, 1_700_000_000, br#"{"a":1}"#);
    assert_eq!(
        header,
        "t=1700000000,v1=e57bdb7d2c1b459c238ec04f96cb3536adc1e1aa30a3a72224f1f3b3ee8c2357"
    );
    assert!(verify_signature(
        "arcawhsec_test",
        &header,
        br#"{"a":1}"#,
        1_700_000_100
    ));
    assert!(
        !verify_signature("arcawhsec_test", &header, br#"{"a":2}"#, 1_700_000_100),
        "body changed"
    );
    assert!(
        !verify_signature("other", &header, br#"{"a":1}"#, 1_700_000_100),
        "wrong secret"
    );
    assert!(
        !verify_signature("arcawhsec_test", &header, br#"{"a":1}"#, 1_700_000_000 + 301),
        "a replay after the tolerance"
    );
    assert!(!verify_signature(
        "arcawhsec_test",
        "v1=abc",
        br#"{"a":1}"#,
        1_700_000_000
    ));
}

#[test]
fn backoff_waits_longer_each_time_then_gives_up() {
    let delays: Vec<_> = (1..=MAX_ATTEMPTS).map(retry_delay).collect();
    assert_eq!(delays[0], Some(Duration::minutes(1)));
    assert_eq!(delays[1], Some(Duration::minutes(5)));
    assert_eq!(delays[4], Some(Duration::hours(6)));
    assert_eq!(delays[5], None, "the sixth failure is the last");
    assert_eq!(retry_delay(0), None);
    assert!(delays.windows(2).all(|w| w[1].is_none() || w[0] < w[1]));
}

#[test]
fn a_delivery_retries_on_failure_and_ends_delivered_or_failed() {
    let t = at("2026-01-01T00:00:00Z");
    let event = AlertEvent::new(AlertEventKind::JobFailed, JobId::new(), OrgId::new(), t, "x");
    let mut d = AlertDelivery::new(AlertChannelId::new(), event.clone(), t);
    assert_eq!((d.status, d.next_attempt_at), (DeliveryStatus::Pending, Some(t)));
    d.record_attempt(AttemptOutcome::Answered(500), t);
    assert_eq!(d.status, DeliveryStatus::Pending);
    assert_eq!(d.next_attempt_at, Some(t + Duration::minutes(1)));
    assert_eq!((d.last_status, d.attempts), (Some(500), 1));
    d.record_attempt(AttemptOutcome::Answered(204), t + Duration::minutes(1));
    assert_eq!(d.status, DeliveryStatus::Delivered);
    assert_eq!((d.next_attempt_at, d.last_error.clone()), (None, None));

    let mut d = AlertDelivery::new(AlertChannelId::new(), event, t);
    for _ in 0..MAX_ATTEMPTS {
        assert_eq!(d.status, DeliveryStatus::Pending);
        d.record_attempt(AttemptOutcome::Error("connection refused".into()), t);
    }
    assert_eq!(d.status, DeliveryStatus::Failed);
    assert_eq!(d.attempts, MAX_ATTEMPTS);
    assert_eq!(d.next_attempt_at, None);
    assert_eq!(d.last_error.as_deref(), Some("connection refused"));
}

#[test]
fn channels_hear_what_they_subscribe_to_while_enabled() {
    let t = at("2026-01-01T00:00:00Z");
    let mut ch = AlertChannel {
        id: AlertChannelId::new(),
        org_id: OrgId::new(),
        spec: spec(ChannelTarget::Webhook {
            url: "https://example.com/hook".into(),
        }),
        signing_secret: None,
        created_at: t,
        updated_at: t,
        version: 1,
    };
    assert!(AlertEventKind::SUBSCRIBABLE.iter().all(|k| ch.hears(*k)), "empty: all");
    assert!(!ch.hears(AlertEventKind::Test));
    ch.spec.events = vec![AlertEventKind::JobFailed];
    assert!(ch.hears(AlertEventKind::JobFailed));
    assert!(!ch.hears(AlertEventKind::JobSkipped));
    ch.spec.enabled = false;
    assert!(!ch.hears(AlertEventKind::JobFailed));
}

#[test]
fn specs_are_validated_field_by_field() {
    let ok = spec(ChannelTarget::Webhook {
        url: "https://hooks.example.com/arca?x=1".into(),
    });
    ok.validate().unwrap();
    let field = |s: ChannelSpec| match s.validate().unwrap_err() {
        Error::Invalid { field, .. } => field,
        other => panic!("{other:?}"),
    };
    let mut s = ok.clone();
    s.name = " ".into();
    assert_eq!(field(s), "name");
    for url in ["ftp://x", "https://", "https://a b", "example.com"] {
        let s = spec(ChannelTarget::Webhook { url: url.into() });
        assert_eq!(field(s), "url", "{url}");
    }
    let s = spec(ChannelTarget::Email { recipients: vec![] });
    assert_eq!(field(s), "recipients");
    let s = spec(ChannelTarget::Email {
        recipients: vec!["oncall@example.com".into(), "nobody".into()],
    });
    assert_eq!(field(s), "recipients[1]");
    let mut s = ok.clone();
    s.events = vec![AlertEventKind::Test];
    assert_eq!(field(s), "events");
    let mut s = ok;
    s.disconnected_after_minutes = 1;
    assert_eq!(field(s), "disconnectedAfterMinutes");
}

#[test]
fn a_patch_changes_what_it_sets_and_never_the_kind() {
    let current = spec(ChannelTarget::Webhook {
        url: "https://a.example.com/".into(),
    });
    let patched = ChannelPatch {
        enabled: Some(false),
        events: Some(vec![AlertEventKind::JobFailed]),
        ..Default::default()
    }
    .applied_to(&current)
    .unwrap();
    assert_eq!(patched.name, "on-call");
    assert!(!patched.enabled);
    assert_eq!(patched.events, vec![AlertEventKind::JobFailed]);
    let err = ChannelPatch {
        target: Some(ChannelTarget::Email {
            recipients: vec!["a@b.c".into()],
        }),
        ..Default::default()
    }
    .applied_to(&current)
    .unwrap_err();
    assert!(
        matches!(err, Error::Invalid { ref field, .. } if field == "kind"),
        "{err}"
    );
}

#[test]
fn the_payload_has_stable_names_and_no_empty_ids() {
    let t = at("2026-01-01T00:00:00Z");
    let job = JobId::new();
    let event = AlertEvent::new(AlertEventKind::JobFailed, job, OrgId::new(), t, "backup failed")
        .with_reason(Some("hook failed"))
        .with_subject(AlertSubject {
            job_id: Some(job),
            ..Default::default()
        });
    let json: serde_json::Value = serde_json::from_slice(&event.body().unwrap()).unwrap();
    assert_eq!(json["type"], "job.failed");
    assert_eq!(json["id"], format!("job.failed:{job}"));
    assert_eq!(json["jobId"], job.to_string());
    assert_eq!(json["reason"], "hook failed");
    assert!(json.get("clusterId").is_none());
    let (subject, body) = event.email(None);
    assert_eq!(subject, "[Arca] backup failed");
    assert!(body.contains(&format!("jobId: {job}")), "{body}");
    assert!(body.contains("reason: hook failed\n"), "{body}");
    assert!(!body.contains("console:"), "no link without a public URL: {body}");
    let (_, linked) = event.email(Some("https://arca.example.com/"));
    assert!(
        linked.ends_with(&format!("\nconsole: https://arca.example.com/jobs/{job}\n")),
        "{linked}"
    );
    assert_eq!(
        serde_json::to_value(AlertEventKind::CloudAccountStackUpdate).unwrap(),
        "cloudAccount.stackUpdateAvailable"
    );
    let secret = SigningSecret::generate().unwrap();
    assert!(secret.expose().starts_with(SIGNING_SECRET_PREFIX));
    assert_eq!(format!("{secret:?}"), "SigningSecret(<redacted>)");
}
