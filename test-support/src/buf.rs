//! `buf curl`, the gRPC, gRPC-web and Connect client the tests call the services with as an operator would
//! (reflection included), from tools/node_modules (scripts/tools.sh) or `$STORE_PLATFORM_BUF`.

use std::{
    path::{Path, PathBuf},
    process::{Command, Output},
};

/// Runs `buf curl <protocol…> --http2-prior-knowledge <args…>` and returns what it did.
pub fn curl(protocol: &[&str], args: &[&str]) -> Output {
    let buf = std::env::var_os("STORE_PLATFORM_BUF")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../tools/node_modules/.bin/buf")
        });
    assert!(
        buf.is_file(),
        "{} is missing: run scripts/tools.sh (make test does)",
        buf.display()
    );
    Command::new(&buf)
        .arg("curl")
        .args(protocol)
        .arg("--http2-prior-knowledge")
        .args(args)
        .output()
        .expect("run buf curl")
}

/// [`curl`], which must succeed; returns its standard output.
pub fn curl_ok(protocol: &[&str], args: &[&str]) -> String {
    let output = curl(protocol, args);
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "buf curl {args:?} failed:\n{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}
