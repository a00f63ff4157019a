use clap::Parser;
use store_platform_gateway::Args;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    store_platform_gateway::run(Args::parse()).await
}
