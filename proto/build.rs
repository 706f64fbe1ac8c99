fn main() -> Result<(), Box<dyn std::error::Error>> {
    let descriptor_set =
        std::path::PathBuf::from(std::env::var("OUT_DIR")?).join("zdb_descriptor.bin");
    tonic_prost_build::configure()
        .codec_path("crate::codec::ZdbCodec")
        .file_descriptor_set_path(descriptor_set)
        .compile_protos(
            &[
                "proto/zdb/v1/kv.proto",
                "proto/zdb/v1/admin.proto",
                "proto/zdb/v1/raft.proto",
                "proto/zdb/v1/txn.proto",
                "proto/zdb/v1/auth.proto",
                "proto/google/rpc/status.proto",
            ],
            &["proto"],
        )?;
    Ok(())
}
