//! Compiles our Talos API subset (`proto/talos`) into Rust, servers and clients.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protoc = protoc_bin_vendored::protoc_bin_path()?;
    // SAFETY: build scripts are single-threaded; nothing else reads the environment here.
    unsafe { std::env::set_var("PROTOC", protoc) };
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../proto/talos");
    let files = [
        "common/common.proto",
        "machine/machine.proto",
        "cosi/state.proto",
        "resource/definitions/runtime/runtime.proto",
    ];
    let paths: Vec<_> = files.iter().map(|f| root.join(f)).collect();
    println!("cargo:rerun-if-changed={}", root.display());
    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        .compile_protos(&paths, &[root])?;
    Ok(())
}
