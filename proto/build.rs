fn main() -> Result<(), Box<dyn std::error::Error>> {
    tonic_prost_build::configure()
        .codec_path("crate::codec::ZdbCodec")
        .compile_protos(
            &[
                "proto/zdb/v1/kv.proto",
                "proto/zdb/v1/admin.proto",
                "proto/zdb/v1/raft.proto",
                "proto/google/rpc/status.proto",
            ],
            &["proto"],
        )?;
    Ok(())
}
