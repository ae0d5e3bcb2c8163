use super::*;

#[test]
fn a_destinations_upkeep_prefix_holds_its_repositories_only() {
    use crate::ids::{ClusterId, DestinationId};
    use crate::model::maintenance::RepositoryKey;
    let (one, other) = (DestinationId::new(), DestinationId::new());
    let key = |destination_id| RepositoryKey {
        destination_id,
        cluster_id: ClusterId::new(),
    };
    let prefix = upkeep_destination_prefix(&one);
    assert!(upkeep_sk(&key(one)).starts_with(&prefix));
    assert!(!upkeep_sk(&key(other)).starts_with(&prefix));
    assert!(
        prefix.ends_with('#'),
        "no destination id is a prefix of another's key: {prefix}"
    );
}

#[test]
fn key_shapes_are_exactly_these() {
    let org: OrgId = "org_01ARZ3NDEKTSV4RRFFQ69G5FAV".parse().unwrap();
    let job: JobId = "job_01ARZ3NDEKTSV4RRFFQ69G5FAV".parse().unwrap();
    let rp: RecoveryPointId = "rp_01ARZ3NDEKTSV4RRFFQ69G5FAV".parse().unwrap();
    assert_eq!(org_pk(&org), "ORG#org_01ARZ3NDEKTSV4RRFFQ69G5FAV");
    assert_eq!(org_of_pk(&org_pk(&org)), Some(org));
    assert_eq!(org_of_pk("RPEXPIRY"), None);
    assert_eq!(job_sk(&job), "JOB#01ARZ3NDEKTSV4RRFFQ69G5FAV");
    let ach: AlertChannelId = "ach_01ARZ3NDEKTSV4RRFFQ69G5FAV".parse().unwrap();
    let adl: AlertDeliveryId = "adl_01ARZ3NDEKTSV4RRFFQ69G5FAV".parse().unwrap();
    assert_eq!(alert_channel_sk(&ach), "ALERTCH#ach_01ARZ3NDEKTSV4RRFFQ69G5FAV");
    assert_eq!(alert_delivery_sk(&adl), "ALERTDLV#01ARZ3NDEKTSV4RRFFQ69G5FAV");
    assert_eq!(
        alert_delivery_due_gsi2(&org, &adl, DateTime::UNIX_EPOCH).sk,
        "1970-01-01T00:00:00Z#ORG#org_01ARZ3NDEKTSV4RRFFQ69G5FAV#ALERTDLV#01ARZ3NDEKTSV4RRFFQ69G5FAV"
    );
    assert_eq!(
        alert_delivery_by_channel_gsi3(&org, &ach, &adl).pk,
        "ORG#org_01ARZ3NDEKTSV4RRFFQ69G5FAV#ACH#ach_01ARZ3NDEKTSV4RRFFQ69G5FAV"
    );
    assert_eq!(alert_event_sk("job.failed:x"), "ALERTEVT#job.failed:x");
    assert_eq!(
        audit_sk(&"aud_01ARZ3NDEKTSV4RRFFQ69G5FAV".parse().unwrap()),
        "AUDIT#01ARZ3NDEKTSV4RRFFQ69G5FAV"
    );
    assert_eq!(
        policy_sk(&"pol_01ARZ3NDEKTSV4RRFFQ69G5FAV".parse().unwrap()),
        "POLICY#pol_01ARZ3NDEKTSV4RRFFQ69G5FAV"
    );
    assert_eq!(
        cluster_sk(&"cl_01ARZ3NDEKTSV4RRFFQ69G5FAV".parse().unwrap()),
        "CLUSTER#cl_01ARZ3NDEKTSV4RRFFQ69G5FAV"
    );
    assert_eq!(
        backup_sk(&"bkp_01ARZ3NDEKTSV4RRFFQ69G5FAV".parse().unwrap()),
        "BACKUP#bkp_01ARZ3NDEKTSV4RRFFQ69G5FAV"
    );
    assert_eq!(
        destination_sk(&"dst_01ARZ3NDEKTSV4RRFFQ69G5FAV".parse().unwrap()),
        "DEST#dst_01ARZ3NDEKTSV4RRFFQ69G5FAV"
    );
    assert_eq!(
        restore_sk(&"rst_01ARZ3NDEKTSV4RRFFQ69G5FAV".parse().unwrap()),
        "RESTORE#rst_01ARZ3NDEKTSV4RRFFQ69G5FAV"
    );
    assert_eq!(
        api_key_sk(&"key_01ARZ3NDEKTSV4RRFFQ69G5FAV".parse().unwrap()),
        "APIKEY#key_01ARZ3NDEKTSV4RRFFQ69G5FAV"
    );
    let rst: RestoreId = "rst_01ARZ3NDEKTSV4RRFFQ69G5FAV".parse().unwrap();
    let page = crate::model::restore::RestoreObjectsPageId {
        restore_id: rst,
        seq: 42,
    };
    assert_eq!(
        restore_objects_sk(&page),
        "RSTOBJ#rst_01ARZ3NDEKTSV4RRFFQ69G5FAV#000042"
    );
    assert!(
        !restore_objects_sk(&page).starts_with(RESTORE_SK_PREFIX),
        "object results must stay out of the RESTORE# listing"
    );
    assert_eq!(recovery_point_sk(&rp), "RP#rp_01ARZ3NDEKTSV4RRFFQ69G5FAV");
    let cl: ClusterId = "cl_01ARZ3NDEKTSV4RRFFQ69G5FAV".parse().unwrap();
    let dst: DestinationId = "dst_01ARZ3NDEKTSV4RRFFQ69G5FAV".parse().unwrap();
    let org_s = "ORG#org_01ARZ3NDEKTSV4RRFFQ69G5FAV";
    let cl_s = "cl_01ARZ3NDEKTSV4RRFFQ69G5FAV";
    let dst_s = "dst_01ARZ3NDEKTSV4RRFFQ69G5FAV";
    assert_eq!(
        recovery_point_by_cluster_gsi3(&org, &cl, &rp),
        IndexKey {
            pk: format!("{org_s}#CL#{cl_s}"),
            sk: "RP#rp_01ARZ3NDEKTSV4RRFFQ69G5FAV".into()
        }
    );
    assert_eq!(
        job_by_cluster_gsi3(&org, &cl, &job),
        IndexKey {
            pk: format!("{org_s}#CL#{cl_s}"),
            sk: "JOB#01ARZ3NDEKTSV4RRFFQ69G5FAV".into()
        }
    );
    let by_destination = recovery_point_by_destination_gsi1(&org, &dst, &cl, &rp);
    assert_eq!(
        by_destination,
        IndexKey {
            pk: format!("{org_s}#DST#{dst_s}"),
            sk: format!("RP#{cl_s}#rp_01ARZ3NDEKTSV4RRFFQ69G5FAV")
        }
    );
    assert!(by_destination.sk.starts_with(&recovery_points_of_cluster_prefix(&cl)));
    assert_eq!(
        cluster_by_destination_gsi3(&org, &dst, &cl).sk,
        format!("CLUSTER#{cl_s}")
    );
    assert_eq!(
        definition_by_destination_gsi3(&org, &dst, &"bkp_01ARZ3NDEKTSV4RRFFQ69G5FAV".parse().unwrap()),
        IndexKey {
            pk: format!("{org_s}#DST#{dst_s}"),
            sk: "BACKUP#bkp_01ARZ3NDEKTSV4RRFFQ69G5FAV".into()
        }
    );
    assert_eq!(
        rds_recovery_point_by_definition_gsi3(&org, &"rdsbkp_01ARZ3NDEKTSV4RRFFQ69G5FAV".parse().unwrap(), &rp),
        IndexKey {
            pk: format!("{org_s}#RDSBKP#rdsbkp_01ARZ3NDEKTSV4RRFFQ69G5FAV"),
            sk: "RDSRP#rp_01ARZ3NDEKTSV4RRFFQ69G5FAV".into()
        }
    );
    for hashed in [
        GSI1_API_KEY_PREFIX,
        GSI1_AGENT_PREFIX,
        GSI1_INSTALL_PREFIX,
        GSI1_PENDING_AGENT_PREFIX,
    ] {
        assert!(
            !by_destination.pk.starts_with(hashed),
            "the in-org GSI1 relation must not share a hash lookup's partitions"
        );
    }
    assert_eq!(
        agent_sk(&"cl_01ARZ3NDEKTSV4RRFFQ69G5FAV".parse().unwrap()),
        "AGENT#cl_01ARZ3NDEKTSV4RRFFQ69G5FAV"
    );
    assert_eq!(
        active_job_sk(&"bkp_01ARZ3NDEKTSV4RRFFQ69G5FAV".parse().unwrap()),
        "ACTIVE#bkp_01ARZ3NDEKTSV4RRFFQ69G5FAV"
    );
    let hash = crate::model::secret::Secret::from_presented("abc").hash();
    let h = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
    assert_eq!(
        api_key_gsi1(&hash),
        IndexKey {
            pk: format!("APIKEY#{h}"),
            sk: "APIKEY".into()
        }
    );
    assert_eq!(
        agent_token_gsi1(&hash),
        IndexKey {
            pk: format!("AGENT#{h}"),
            sk: "CLUSTER".into()
        }
    );
    assert_eq!(
        install_sk(&"cl_01ARZ3NDEKTSV4RRFFQ69G5FAV".parse().unwrap()),
        "INSTALL#cl_01ARZ3NDEKTSV4RRFFQ69G5FAV"
    );
    assert_eq!(
        install_token_gsi1(&hash),
        IndexKey {
            pk: format!("INSTALL#{h}"),
            sk: "INSTALL".into()
        }
    );
    let at: DateTime<Utc> = "2025-03-04T05:06:07.890Z".parse().unwrap();
    assert_eq!(
        recovery_point_expiry_gsi2(&org, &rp, at),
        IndexKey {
            pk: "RPEXPIRY".into(),
            sk: "2025-03-04T05:06:07Z#ORG#org_01ARZ3NDEKTSV4RRFFQ69G5FAV#RP#rp_01ARZ3NDEKTSV4RRFFQ69G5FAV".into()
        }
    );
    assert_eq!(recovery_point_expiry_bound(at), "2025-03-04T05:06:07Z");
    assert_eq!(
        rds_recovery_point_expiry_gsi2(&org, &rp, at),
        IndexKey {
            pk: "RDSEXPIRY".into(),
            sk: "2025-03-04T05:06:07Z#ORG#org_01ARZ3NDEKTSV4RRFFQ69G5FAV#RDSRP#rp_01ARZ3NDEKTSV4RRFFQ69G5FAV".into()
        }
    );
    assert_eq!(rds_recovery_point_sk(&rp), "RDSRP#rp_01ARZ3NDEKTSV4RRFFQ69G5FAV");
    let ca: CloudAccountId = "ca_01ARZ3NDEKTSV4RRFFQ69G5FAV".parse().unwrap();
    let key = crate::model::rds::RdsDatabaseKey {
        cloud_account_id: ca,
        region: "us-east-1".into(),
        database: crate::model::rds::RdsDatabaseRef {
            identifier: "orders".into(),
            cluster: true,
        },
    };
    let finding = crate::model::cloud::security::SecurityFindingId {
        cloud_account_id: ca,
        fingerprint: "00ff".into(),
    };
    assert_eq!(
        security_finding_sk(&finding),
        "SECFIND#ca_01ARZ3NDEKTSV4RRFFQ69G5FAV#00ff"
    );
    assert_eq!(security_scan_sk(&ca), "SECSCAN#ca_01ARZ3NDEKTSV4RRFFQ69G5FAV");
    assert_eq!(
        rds_copy_sk(&key),
        "RDSCOPY#ca_01ARZ3NDEKTSV4RRFFQ69G5FAV#us-east-1#c#orders"
    );
    assert_eq!(
        rds_backup_sk(&"rdsbkp_01ARZ3NDEKTSV4RRFFQ69G5FAV".parse().unwrap()),
        "RDSBACKUP#rdsbkp_01ARZ3NDEKTSV4RRFFQ69G5FAV"
    );
}
