//! Lambda entry point: a thin shell over [`arca_fn_retention::handle`]; the control plane comes
//! from the environment (`ARCA_TABLE`, `ARCA_QUEUE_PREFIX`, `ARCA_MAX_RECEIVES`,
//! `ARCA_PLAN_LIMITS`; see `arca_aws::wiring`).

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    arca_aws::lambda::run_with_control_plane(arca_fn_retention::handle).await
}
