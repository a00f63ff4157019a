use clap::Parser;
use store_platform_provisioner::Args;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    store_platform_provisioner::run(Args::parse()).await
}
