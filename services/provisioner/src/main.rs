use clap::Parser;
use store_platform_provisioner::Args;

/// mimalloc, not glibc's malloc: at 1,000 stores glibc's allocator took a quarter of the provisioner's CPU, more per
/// store the larger the heap (docs/benchmarks.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    store_platform_provisioner::run(Args::parse()).await
}
