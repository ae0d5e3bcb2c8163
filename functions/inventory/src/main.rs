//! Lambda entry point: a thin shell over [`arca_fn_inventory::run`]; the control plane comes from
//! the environment (see `arca_aws::wiring`).

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    let http = reqwest::Client::new();
    let urls = arca_fn_inventory::ResponseUrls::from_env();
    arca_aws::lambda::run_with_control_plane(async |cp, payload| {
        let answer = arca_fn_inventory::run(cp, &http, payload, arca_fn_inventory::LinkRetry::default(), &urls).await;
        arca_fn_inventory::metrics(&answer).emit();
        Ok(answer?)
    })
    .await
}
