// Compiles our own tfplugin6 and go-plugin protos with the vendored protoc: no system protoc.
fn main() -> Result<(), Box<dyn std::error::Error>> {
    // SAFETY: build scripts are single-threaded; prost-build reads PROTOC from the environment.
    unsafe { std::env::set_var("PROTOC", protoc_bin_vendored::protoc_bin_path()?) };
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../proto");
    let protos = [
        root.join("tfplugin6.proto"),
        root.join("plugin/grpc_controller.proto"),
        root.join("plugin/grpc_stdio.proto"),
        root.join("plugin/grpc_broker.proto"),
    ];
    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        .compile_protos(&protos, std::slice::from_ref(&root))?;
    for p in &protos {
        println!("cargo:rerun-if-changed={}", p.display());
    }
    Ok(())
}
