//! What the agent reports about its cluster: versions, size, and what Arca can do there.

use k8s_openapi::api::core::v1::{Namespace, Node};
use kube::api::{Api, ListParams};
use serde::Serialize;

/// The cluster as the heartbeat will describe it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ClusterFacts {
    pub kubernetes_version: String,
    pub node_count: usize,
    pub namespaces: Vec<String>,
    pub capabilities: Capabilities,
}

/// What the product supports on a cluster of a given version (product FAQ):
/// resource backup from 1.13, CSI snapshots from 1.17 with the snapshot API served.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Capabilities {
    pub resource_backup: bool,
    pub csi_snapshots: bool,
}

/// Parses "v1.37.2", "v1.29.3-eks-adc7111" or "1.17" into (major, minor).
pub fn parse_version(git_version: &str) -> Option<(u32, u32)> {
    let mut parts = git_version.trim_start_matches('v').split(['.', '-', '+']);
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.trim_end_matches('+').parse().ok()?;
    Some((major, minor))
}

pub fn capabilities(version: Option<(u32, u32)>, snapshot_api_served: bool) -> Capabilities {
    let at_least = |minor: u32| version.is_some_and(|(maj, min)| maj > 1 || (maj == 1 && min >= minor));
    Capabilities {
        resource_backup: at_least(13),
        csi_snapshots: at_least(17) && snapshot_api_served,
    }
}

/// Asks the API server. Node listing may be forbidden to a narrowly scoped identity;
/// that is reported as zero nodes rather than failing the whole heartbeat.
pub async fn collect(client: &kube::Client) -> kube::Result<ClusterFacts> {
    let version = client.apiserver_version().await?;
    let node_count = match Api::<Node>::all(client.clone())
        .list_metadata(&ListParams::default())
        .await
    {
        Ok(nodes) => nodes.items.len(),
        Err(kube::Error::Api(status)) if status.code == 403 => 0,
        Err(e) => return Err(e),
    };
    let namespaces = Api::<Namespace>::all(client.clone())
        .list_metadata(&ListParams::default())
        .await?
        .items
        .into_iter()
        .filter_map(|ns| ns.metadata.name)
        .collect();
    let groups = client.list_api_groups().await?;
    let snapshot_api_served = groups
        .groups
        .iter()
        .any(|g| g.name == "snapshot.storage.k8s.io" && g.versions.iter().any(|v| v.version == "v1"));
    Ok(ClusterFacts {
        capabilities: capabilities(parse_version(&version.git_version), snapshot_api_served),
        kubernetes_version: version.git_version,
        node_count,
        namespaces,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_parse_from_real_world_strings() {
        assert_eq!(parse_version("v1.37.2"), Some((1, 37)));
        assert_eq!(parse_version("v1.29.3-eks-adc7111"), Some((1, 29)));
        assert_eq!(parse_version("1.17"), Some((1, 17)));
        assert_eq!(parse_version("v1.16+"), Some((1, 16)));
        assert_eq!(parse_version("garbage"), None);
    }

    #[test]
    fn capabilities_follow_the_version_thresholds() {
        // (version, snapshot API served, resource backup, CSI snapshots)
        for (version, snapshot_api, resource_backup, csi_snapshots) in [
            (Some((1, 12)), true, false, false),
            (Some((1, 13)), true, true, false),
            (Some((1, 17)), false, true, false),
            (Some((1, 17)), true, true, true),
            (None, true, false, false),
        ] {
            assert_eq!(
                capabilities(version, snapshot_api),
                Capabilities {
                    resource_backup,
                    csi_snapshots
                },
                "{version:?}, snapshot API {snapshot_api}"
            );
        }
    }

    #[tokio::test]
    async fn collects_facts_from_a_real_api_server() {
        let Some(cluster) = arca_testenv::cluster_a().await else {
            return;
        };
        let facts = collect(&cluster.client).await.unwrap();
        assert!(parse_version(&facts.kubernetes_version).is_some(), "{facts:?}");
        assert!(facts.namespaces.iter().any(|n| n == "kube-system"), "{facts:?}");
        assert!(
            facts.capabilities.csi_snapshots,
            "the test environment installs the snapshot CRDs: {facts:?}"
        );
    }

    #[tokio::test]
    async fn a_reader_without_node_access_still_reports() {
        let Some(cluster) = arca_testenv::cluster_a_reader().await else {
            return;
        };
        // The reader may list namespaces but not nodes; the heartbeat must still work.
        let facts = collect(&cluster.client).await.unwrap();
        assert_eq!(facts.node_count, 0);
        assert!(facts.namespaces.iter().any(|n| n == "default"), "{facts:?}");
    }
}
