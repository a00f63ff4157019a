//! Compiles `store_platform/v1/*.proto` with protox (pure Rust, no protoc) and writes the encoded descriptor set
//! next to the generated code so the servers can offer it through reflection.

use std::{env, fs, path::PathBuf};

use prost::Message;

const PROTOS: &[&str] = &[
    "store_platform/v1/store.proto",
    "store_platform/v1/backup.proto",
    "store_platform/v1/provisioner.proto",
    "store_platform/v1/status.proto",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=store_platform");
    let descriptors = protox::compile(PROTOS, ["."])?;
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").ok_or("OUT_DIR is not set")?);
    fs::write(
        out_dir.join("store_platform_descriptor.bin"),
        descriptors.encode_to_vec(),
    )?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .compile_fds(descriptors)?;
    Ok(())
}
