//! Lambda entry point: a thin shell over [`arca_fn_rds::handle`]; the control plane comes from the
//! environment (`ARCA_TABLE`, `ARCA_RDS_QUEUE_URL`, ...; see `arca_aws::wiring`). The
//! function's event source is the RDS work queue (SQS, `ReportBatchItemFailures`).

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    arca_aws::lambda::run_with_control_plane(arca_fn_rds::handle).await
}
