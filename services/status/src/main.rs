use clap::Parser;
use store_platform_status::Args;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    store_platform_status::run(Args::parse()).await
}
