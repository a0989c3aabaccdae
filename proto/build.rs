//! Compiles `scanscope/v1/*.proto` with protox (no system protoc) and generates the tonic
//! client and server into OUT_DIR.
fn main() -> anyhow::Result<()> {
    let files = ["scanscope/v1/ingest.proto"];
    for f in &files {
        println!("cargo:rerun-if-changed={f}");
    }
    let fds = protox::compile(files, ["."])?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        // prost's codec with a guard against decode amplification (src/codec.rs).
        .codec_path("crate::codec::BoundedCodec")
        // Flow addresses as `Bytes`: slices of one buffer, not two allocations per flow (a
        // NetFlow collector makes a million a second; a body decoded from `Bytes` shares it).
        .bytes(".scanscope.v1.Flow")
        .compile_fds(fds)?;
    Ok(())
}
