fn main() -> Result<(), Box<dyn std::error::Error>> {
    tonic_prost_build::configure().compile_protos(
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
