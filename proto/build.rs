//! Generates the Rust code for every .proto of Confab with a vendored protoc,
//! so a fresh machine needs no system protobuf compiler.

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protos = [
        "proto/router.proto",
        "proto/persist.proto",
        "proto/client.proto",
        "proto/gateway.proto",
    ];
    let mut config = prost_build::Config::new();
    config.protoc_executable(protoc_bin_vendored::protoc_bin_path()?);
    config.include_file("confab.rs");
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    tonic_prost_build::configure()
        .out_dir(&out_dir)
        .compile_with_config(config, &protos, &["proto"])?;
    for proto in protos {
        println!("cargo:rerun-if-changed={proto}");
    }
    Ok(())
}
