//! The agent binary. For now it connects to its cluster and prints what it found; the
//! job loop comes with the agent-protocol issue.

use anyhow::Context;
use clap::Parser;

#[derive(Parser)]
#[command(name = "arca-agent", version, about = "Arca's in-cluster backup agent")]
struct Args {
    /// A kubeconfig to use instead of the in-cluster service account (or $KUBECONFIG).
    #[arg(long)]
    kubeconfig: Option<std::path::PathBuf>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    arca_runtime::init_tracing();
    let args = Args::parse();
    let config = match &args.kubeconfig {
        Some(path) => {
            let kubeconfig = kube::config::Kubeconfig::read_from(path)
                .with_context(|| format!("reading kubeconfig {}", path.display()))?;
            kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default()).await?
        }
        None => kube::Config::infer().await.context("no in-cluster config and no kubeconfig")?,
    };
    let client = kube::Client::try_from(config)?;
    let facts = arca_agent::facts::collect(&client).await.context("reading the cluster's facts")?;
    println!("{}", serde_json::to_string_pretty(&facts)?);
    Ok(())
}
