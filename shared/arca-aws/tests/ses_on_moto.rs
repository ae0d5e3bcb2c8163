//! The SES email sender against moto (5.x serves SESv2 `SendEmail`): a message from a
//! verified address arrives with its recipients, subject and plain-text body, as moto's
//! own record of sent mail (`GET /moto-api/data.json`, `ses` → `Message`) shows; from an
//! address SES has not verified, the refusal comes back as the delivery log's cause.

use arca_aws::SesEmailSender;
use arca_core::ports::notify::EmailSender;
use serde_json::Value;

/// Every message moto's SES has accepted, as its data endpoint lists them.
async fn sent_messages(endpoint: &str) -> Vec<Value> {
    let data: Value = reqwest::get(format!("{endpoint}/moto-api/data.json"))
        .await
        .expect("moto's data endpoint")
        .json()
        .await
        .expect("moto's data is JSON");
    data["ses"]["Message"].as_array().cloned().unwrap_or_default()
}

#[tokio::test]
async fn a_verified_sender_sends_and_an_unverified_one_is_refused_with_the_cause() {
    // A private moto: its data dump (`/moto-api/data.json`) holds only this test's mail;
    // the shared one's also holds every other test's state, which moto may fail to dump.
    let Some(env) = arca_testenv::private_moto() else {
        return;
    };
    let sdk = env.sdk_config().await;
    let client = aws_sdk_sesv2::Client::new(&sdk);
    let from = format!("{}@alerts.example.com", arca_testenv::unique("arca"));
    client
        .create_email_identity()
        .email_identity(&from)
        .send()
        .await
        .expect("verify the sender on moto");

    let sender = SesEmailSender::new(client.clone(), from.clone());
    let subject = format!("[Arca] job {} FAILED", arca_testenv::unique("job"));
    let body = "K8S_BACKUP job FAILED\n\nreason: hook failed\n";
    let to = vec!["oncall@example.com".to_owned(), "lead@example.com".to_owned()];
    sender.send(&to, &subject, body).await.expect("sent");

    let sent = sent_messages(&env.endpoint_url).await;
    let ours: Vec<&Value> = sent.iter().filter(|m| m["subject"] == subject.as_str()).collect();
    assert_eq!(ours.len(), 1, "one message with our subject: {sent:?}");
    let m = ours[0];
    assert_eq!(m["source"], from.as_str());
    assert_eq!(m["body"], body);
    assert_eq!(
        m["destinations"]["ToAddresses"],
        serde_json::json!(["oncall@example.com", "lead@example.com"]),
        "{m}"
    );

    let unverified = SesEmailSender::new(client, "nobody@unverified.example.com");
    let err = unverified
        .send(&to, "[Arca] refused", "never sent")
        .await
        .expect_err("an unverified sender is refused");
    assert!(err.starts_with("SES refused the email: MessageRejected"), "{err}");
    assert!(
        !sent_messages(&env.endpoint_url)
            .await
            .iter()
            .any(|m| m["subject"] == "[Arca] refused"),
        "nothing was sent"
    );
}
