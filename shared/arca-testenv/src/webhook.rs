//! A webhook receiver of the test's own (axum on 127.0.0.1): it answers each request with
//! the next status of a script (204 once the script is spent) and keeps what it got, so
//! alert tests can verify signatures and count deliveries.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::{HeaderMap, StatusCode};

/// One request the receiver got.
#[derive(Clone, Debug)]
pub struct Received {
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl Received {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("a JSON body")
    }

    /// The header `name`'s value (it must be there).
    pub fn header(&self, name: &str) -> String {
        let value = self.headers.get(name).unwrap_or_else(|| panic!("no {name} header"));
        value.to_str().expect("a text header").to_owned()
    }
}

/// See the module's documentation. Its URL's path is `/hook`.
#[derive(Clone)]
pub struct WebhookReceiver {
    pub url: String,
    got: Arc<Mutex<Vec<Received>>>,
}

impl WebhookReceiver {
    pub async fn start(script: &[u16]) -> Self {
        let got: Arc<Mutex<Vec<Received>>> = Arc::default();
        let answers = Arc::new(Mutex::new(script.iter().copied().collect::<VecDeque<u16>>()));
        let app = axum::Router::new().route(
            "/hook",
            axum::routing::post({
                let got = got.clone();
                move |headers: HeaderMap, body: axum::body::Bytes| {
                    let got = got.clone();
                    let answers = answers.clone();
                    async move {
                        let body = body.to_vec();
                        got.lock().expect("received").push(Received { headers, body });
                        let status = answers.lock().expect("script").pop_front().unwrap_or(204);
                        StatusCode::from_u16(status).expect("a status code")
                    }
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind a loopback port");
        let url = format!("http://{}/hook", listener.local_addr().expect("local addr"));
        tokio::spawn(async move { axum::serve(listener, app).await });
        WebhookReceiver { url, got }
    }

    /// What it got so far, in order.
    pub fn got(&self) -> Vec<Received> {
        self.got.lock().expect("received").clone()
    }

    /// Waits (≤ 10 s) until it holds `n` requests, then a moment more for any extra one.
    pub async fn wait_for(&self, n: usize) -> Vec<Received> {
        for _ in 0..100 {
            if self.got.lock().expect("received").len() >= n {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        self.got()
    }
}
