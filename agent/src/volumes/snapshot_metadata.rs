//! The Kubernetes SnapshotMetadata service (CSI changed block tracking, KEP 3314): which
//! byte ranges of a volume changed between two of its VolumeSnapshots, from the driver's
//! snapshot-metadata sidecar over gRPC (`GetMetadataDelta`, a server stream). A volume
//! backup given those ranges (`volume backup --changed-ranges`) reads only them.
//!
//! The messages are written here from the published definition
//! (kubernetes-csi/external-snapshot-metadata, `proto/schema.proto`, package
//! `snapshotmetadata`): its Go module is not served where Arca is built, and a client needs
//! only these four types, so there is no generated code; prost encodes them and tonic carries
//! them. Tested against a server of our own that serves recorded deltas
//! (`agent/tests/snapshot_metadata.rs`), not against a driver's sidecar.

use std::ops::Range;

use tonic::codegen::http::uri::PathAndQuery;
use tonic::transport::{Certificate, Channel, ClientTlsConfig};

/// `rpc GetMetadataDelta(GetMetadataDeltaRequest) returns (stream GetMetadataDeltaResponse)`.
pub const GET_METADATA_DELTA: &str = "/snapshotmetadata.SnapshotMetadata/GetMetadataDelta";

/// How many times an interrupted stream is resumed from the last range received.
const RESUMES: usize = 3;

#[derive(Clone, PartialEq, prost::Message)]
pub struct GetMetadataDeltaRequest {
    /// A token of the audience the SnapshotMetadataService object names.
    #[prost(string, tag = "1")]
    pub security_token: String,
    #[prost(string, tag = "2")]
    pub namespace: String,
    #[prost(string, tag = "3")]
    pub base_snapshot_name: String,
    #[prost(string, tag = "4")]
    pub target_snapshot_name: String,
    #[prost(int64, tag = "5")]
    pub starting_offset: i64,
    #[prost(int32, tag = "6")]
    pub max_results: i32,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct BlockMetadata {
    #[prost(int64, tag = "1")]
    pub byte_offset: i64,
    #[prost(int64, tag = "2")]
    pub size_bytes: i64,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct GetMetadataDeltaResponse {
    #[prost(enumeration = "BlockMetadataType", tag = "1")]
    pub block_metadata_type: i32,
    #[prost(int64, tag = "2")]
    pub volume_capacity_bytes: i64,
    #[prost(message, repeated, tag = "3")]
    pub block_metadata: Vec<BlockMetadata>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum BlockMetadataType {
    Unknown = 0,
    FixedLength = 1,
    VariableLength = 2,
}

/// What changed between two snapshots of a volume.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Delta {
    pub volume_capacity_bytes: u64,
    /// Increasing, non-overlapping.
    pub ranges: Vec<Range<u64>>,
}

/// A channel to the sidecar at `address` (`https://host:port`, trusting `ca_pem`, the
/// SnapshotMetadataService object's `caCert`; `http://` only for tests).
pub async fn connect(address: &str, ca_pem: Option<&[u8]>) -> Result<Channel, String> {
    let mut endpoint = Channel::from_shared(address.to_owned())
        .map_err(|e| format!("snapshot metadata service address {address:?}: {e}"))?;
    if address.starts_with("https://") {
        let ca = ca_pem.ok_or_else(|| format!("snapshot metadata service {address}: no CA certificate to trust"))?;
        endpoint = endpoint
            .tls_config(ClientTlsConfig::new().ca_certificate(Certificate::from_pem(ca)))
            .map_err(|e| format!("snapshot metadata service {address}: TLS: {e}"))?;
    }
    endpoint
        .connect()
        .await
        .map_err(|e| format!("connecting to the snapshot metadata service at {address}: {e}"))
}

/// The ranges that changed from `base` to `target` (VolumeSnapshot names in `namespace`).
/// An interrupted stream is resumed (up to 3 times) from the end of the last range
/// received, as the API intends; what the server sends is checked (in order, inside the
/// volume, one capacity), since a wrong range would make a backup skip data.
pub async fn metadata_delta(
    channel: Channel,
    security_token: &str,
    namespace: &str,
    base: &str,
    target: &str,
) -> Result<Delta, String> {
    let mut grpc = tonic::client::Grpc::new(channel);
    let mut delta = Delta {
        volume_capacity_bytes: 0,
        ranges: Vec::new(),
    };
    let mut resumes = 0;
    loop {
        let request = GetMetadataDeltaRequest {
            security_token: security_token.to_owned(),
            namespace: namespace.to_owned(),
            base_snapshot_name: base.to_owned(),
            target_snapshot_name: target.to_owned(),
            starting_offset: delta.ranges.last().map_or(0, |r| r.end as i64),
            max_results: 0,
        };
        grpc.ready()
            .await
            .map_err(|e| format!("the snapshot metadata service is not ready: {e}"))?;
        let stream = grpc
            .server_streaming(
                tonic::Request::new(request),
                PathAndQuery::from_static(GET_METADATA_DELTA),
                tonic_prost::ProstCodec::default(),
            )
            .await;
        let interrupted = match stream {
            Ok(response) => {
                let mut stream = response.into_inner();
                loop {
                    match stream.message().await {
                        Ok(Some(message)) => add(&mut delta, message)?,
                        Ok(None) => return Ok(delta),
                        Err(status) => break status,
                    }
                }
            }
            Err(status) => status,
        };
        let resumable = matches!(
            interrupted.code(),
            tonic::Code::Unavailable | tonic::Code::Aborted | tonic::Code::Internal | tonic::Code::Unknown
        );
        if !resumable || resumes == RESUMES {
            return Err(format!(
                "GetMetadataDelta {namespace}/{base}..{target}: {} ({:?})",
                interrupted.message(),
                interrupted.code()
            ));
        }
        resumes += 1;
        tracing::info!(
            namespace,
            base,
            target,
            resumes,
            "snapshot metadata stream interrupted, resuming"
        );
    }
}

/// Adds one message's ranges, refusing what the API says cannot be.
fn add(delta: &mut Delta, message: GetMetadataDeltaResponse) -> Result<(), String> {
    let capacity = u64::try_from(message.volume_capacity_bytes)
        .map_err(|_| format!("negative volume capacity {}", message.volume_capacity_bytes))?;
    if delta.volume_capacity_bytes == 0 {
        delta.volume_capacity_bytes = capacity;
    } else if capacity != delta.volume_capacity_bytes {
        return Err(format!(
            "the volume capacity changed within one delta ({} then {capacity})",
            delta.volume_capacity_bytes
        ));
    }
    for block in message.block_metadata {
        let (Ok(start), Ok(size)) = (u64::try_from(block.byte_offset), u64::try_from(block.size_bytes)) else {
            return Err(format!("a range with a negative offset or size: {block:?}"));
        };
        let end = start
            .checked_add(size)
            .filter(|end| size > 0 && *end <= capacity)
            .ok_or_else(|| format!("range {start}+{size} is empty or outside the volume's {capacity} bytes"))?;
        match delta.ranges.last_mut() {
            Some(last) if end <= last.end => {
                return Err(format!(
                    "range {start}..{end} precedes the end of the one before ({}..{})",
                    last.start, last.end
                ));
            }
            // Adjacent, or (the first of a resumed stream) across the offset asked from.
            Some(last) if start <= last.end => last.end = end,
            _ => delta.ranges.push(start..end),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(capacity: i64, ranges: &[(i64, i64)]) -> GetMetadataDeltaResponse {
        GetMetadataDeltaResponse {
            block_metadata_type: BlockMetadataType::VariableLength as i32,
            volume_capacity_bytes: capacity,
            block_metadata: ranges
                .iter()
                .map(|&(byte_offset, size_bytes)| BlockMetadata {
                    byte_offset,
                    size_bytes,
                })
                .collect(),
        }
    }

    #[test]
    fn ranges_join_when_adjacent_and_anything_the_api_rules_out_is_refused() {
        let mut delta = Delta {
            volume_capacity_bytes: 0,
            ranges: Vec::new(),
        };
        add(&mut delta, message(1 << 20, &[(0, 4096), (4096, 4096), (65536, 512)])).unwrap();
        // Resumed from 66048: its first range may start before that offset.
        add(&mut delta, message(1 << 20, &[(65536, 1024), (131072, 4096)])).unwrap();
        assert_eq!(delta.ranges, vec![0..8192, 65536..66560, 131072..135168]);
        for (bad, why) in [
            (message(1 << 20, &[(100, 10)]), "precedes"),
            (message(2 << 20, &[(200_000, 10)]), "capacity changed"),
            (message(1 << 20, &[(200_000, 0)]), "empty or outside"),
            (message(1 << 20, &[((1 << 20) - 1, 2)]), "empty or outside"),
            (message(1 << 20, &[(-1, 2)]), "negative"),
        ] {
            let err = add(&mut delta.clone(), bad).unwrap_err();
            assert!(err.contains(why), "{why}: {err}");
        }
    }
}
