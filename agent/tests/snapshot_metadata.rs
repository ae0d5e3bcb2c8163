//! CSI changed block tracking with the real `arca-agent` binary against a SnapshotMetadata
//! server of our own (tonic, the same messages) that serves recorded deltas: `csi delta`
//! reads the stream, resumes it from the last range when the sidecar drops it, prints the
//! ranges `volume backup --changed-ranges` reads, and that backup reads only those blocks and
//! restores byte for byte. A token the server refuses fails in one line.

#![allow(clippy::unwrap_used)]

mod common;

use std::process::{Command, Output};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use arca_agent::volumes::snapshot_metadata::{
    BlockMetadata, BlockMetadataType, GET_METADATA_DELTA, GetMetadataDeltaRequest, GetMetadataDeltaResponse,
};
use futures::StreamExt;
use serde_json::{Value, json};
use tonic::codegen::{Body, BoxFuture, Service, StdError, http};
use tonic::server::{Grpc, NamedService, ServerStreamingService};

const BIN: &str = env!("CARGO_BIN_EXE_arca-agent");
const TOKEN: &str = "a token of the service's audience";
const CAPACITY: i64 = 4 << 20;
/// What the sidecar answers for (snap-1, snap-2), in messages of two ranges.
const RECORDED: &[(i64, i64)] = &[
    (0, 4096),
    (4096, 4096),
    (1 << 20, 65536),
    ((2 << 20) + 100, 200),
    ((3 << 20) + 4096, 8192),
];

#[derive(Clone, Default)]
struct Sidecar {
    /// Drop the next stream after its first message, as a restarting sidecar would.
    interrupt: Arc<AtomicBool>,
    requests: Arc<Mutex<Vec<GetMetadataDeltaRequest>>>,
}

struct Delta(Sidecar);

impl ServerStreamingService<GetMetadataDeltaRequest> for Delta {
    type Response = GetMetadataDeltaResponse;
    type ResponseStream = futures::stream::BoxStream<'static, Result<GetMetadataDeltaResponse, tonic::Status>>;
    type Future = BoxFuture<tonic::Response<Self::ResponseStream>, tonic::Status>;

    fn call(&mut self, request: tonic::Request<GetMetadataDeltaRequest>) -> Self::Future {
        let sidecar = self.0.clone();
        Box::pin(async move {
            let request = request.into_inner();
            sidecar.requests.lock().unwrap().push(request.clone());
            if request.security_token != TOKEN {
                return Err(tonic::Status::unauthenticated("the security token was not accepted"));
            }
            if (
                request.base_snapshot_name.as_str(),
                request.target_snapshot_name.as_str(),
            ) != ("snap-1", "snap-2")
            {
                return Err(tonic::Status::not_found("no such snapshots"));
            }
            let remaining: Vec<_> = RECORDED
                .iter()
                .filter(|(offset, size)| offset + size > request.starting_offset)
                .collect();
            let mut messages: Vec<_> = remaining
                .chunks(2)
                .map(|chunk| {
                    Ok(GetMetadataDeltaResponse {
                        block_metadata_type: BlockMetadataType::VariableLength as i32,
                        volume_capacity_bytes: CAPACITY,
                        block_metadata: chunk
                            .iter()
                            .map(|&&(byte_offset, size_bytes)| BlockMetadata {
                                byte_offset,
                                size_bytes,
                            })
                            .collect(),
                    })
                })
                .collect();
            if sidecar.interrupt.swap(false, Ordering::SeqCst) {
                messages.truncate(1);
                messages.push(Err(tonic::Status::unavailable("the sidecar restarted")));
            }
            Ok(tonic::Response::new(futures::stream::iter(messages).boxed()))
        })
    }
}

#[derive(Clone)]
struct Server(Sidecar);

impl NamedService for Server {
    const NAME: &'static str = "snapshotmetadata.SnapshotMetadata";
}

impl<B> Service<http::Request<B>> for Server
where
    B: Body + Send + 'static,
    B::Error: Into<StdError> + Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = std::convert::Infallible;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let sidecar = self.0.clone();
        Box::pin(async move {
            if request.uri().path() != GET_METADATA_DELTA {
                return Ok(tonic::Status::unimplemented("only GetMetadataDelta").into_http());
            }
            let mut grpc = Grpc::new(tonic_prost::ProstCodec::default());
            Ok(grpc.server_streaming(Delta(sidecar), request).await)
        })
    }
}

fn agent(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .env("ARCA_REPO_PASSWORD", "csi passphrase")
        .env_remove("RUST_LOG")
        .output()
        .unwrap()
}

fn ok(out: Output) -> String {
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recorded_delta_is_read_resumed_and_drives_an_incremental_backup() {
    let sidecar = Sidecar::default();
    sidecar.interrupt.store(true, Ordering::SeqCst);
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(Server(sidecar.clone()))
            .serve(addr),
    );
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, format!("{TOKEN}\n")).unwrap();
    let address = format!("http://{addr}");
    let delta_args = |token: &std::path::Path| {
        vec![
            "csi".to_owned(),
            "delta".into(),
            "--address".into(),
            address.clone(),
            "--token-file".into(),
            token.display().to_string(),
            "--namespace".into(),
            "app".into(),
            "--base".into(),
            "snap-1".into(),
            "--target".into(),
            "snap-2".into(),
        ]
    };
    let run = |args: Vec<String>| {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        agent(&args)
    };
    // The server may take a moment to listen.
    let mut out = run(delta_args(&token));
    for _ in 0..50 {
        if out.status.success() {
            break;
        }
        sidecar.interrupt.store(true, Ordering::SeqCst);
        sidecar.requests.lock().unwrap().clear();
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        out = run(delta_args(&token));
    }
    let ranges: Value = serde_json::from_str(&ok(out)).unwrap();
    assert_eq!(
        ranges,
        json!([
            { "offset": 0, "length": 8192 },
            { "offset": 1 << 20, "length": 65536 },
            { "offset": (2 << 20) + 100, "length": 200 },
            { "offset": (3 << 20) + 4096, "length": 8192 },
        ])
    );
    let requests = sidecar.requests.lock().unwrap().clone();
    assert_eq!(
        requests.iter().map(|r| r.starting_offset).collect::<Vec<_>>(),
        vec![0, 8192],
        "interrupted after the first message, resumed from the end of its last range"
    );
    assert!(
        requests
            .iter()
            .all(|r| r.namespace == "app" && r.security_token == TOKEN)
    );

    // The ranges drive an incremental backup: only their blocks are read.
    let repo = format!("file://{}", dir.path().join("repo").display());
    ok(agent(&common::repo_init(&repo)));
    let source = dir.path().join("disk.img");
    let mut image = arca_testenv::noise(11, CAPACITY as usize);
    std::fs::write(&source, &image).unwrap();
    let source_arg = source.to_str().unwrap();
    ok(agent(&common::volume_backup(&repo, "app/data", source_arg)));
    for range in ranges.as_array().unwrap() {
        let (offset, length) = (
            range["offset"].as_u64().unwrap() as usize,
            range["length"].as_u64().unwrap() as usize,
        );
        for byte in &mut image[offset..offset + length] {
            *byte = byte.wrapping_add(1);
        }
    }
    std::fs::write(&source, &image).unwrap();
    let ranges_file = dir.path().join("ranges.json");
    std::fs::write(&ranges_file, ranges.to_string()).unwrap();
    let mut args = common::volume_backup(&repo, "app/data", source_arg);
    let ranges_arg = ranges_file.to_str().unwrap();
    args.extend(["--changed-ranges", ranges_arg, "--json"]);
    let backed_up: Value = serde_json::from_str(&ok(agent(&args))).unwrap();
    let read = backed_up["manifest"]["stats"]["bytes_read"].as_u64().unwrap();
    assert!(read <= 5 * 65536, "only the blocks the ranges touch are read: {read}");
    let target = dir.path().join("restored.img");
    ok(agent(&common::volume_restore(&repo, "app/data", "latest", &target)));
    assert!(std::fs::read(&target).unwrap() == image, "restored byte for byte");

    // A token the service refuses: one line naming why.
    let wrong = dir.path().join("wrong");
    std::fs::write(&wrong, "not the token").unwrap();
    let out = run(delta_args(&wrong));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(err.contains("the security token was not accepted"), "{err}");
}
