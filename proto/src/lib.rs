//! zdb's wire protocol, generated from `proto/`:
//! - `zdb.v1` `Kv`: the client API (kv.proto);
//! - `zdb.v1` `Txn` and `TxnRange`: transactions coordinated by the node
//!   that receives them, and the per-range protocol they run on (txn.proto);
//! - `zdb.v1` `Admin`: node administration (admin.proto);
//! - `zdb.v1` `RaftTransport`: node-to-node Raft traffic and the replicated
//!   command format (raft.proto);
//! - `google.rpc.Status`: the rich-error envelope that carries a typed
//!   [`v1::Error`] in a failed call's status details;
//! - [`eviction`]: eviction policies by their Redis names;
//! - [`timestamp`]: the hybrid timestamps of the oracle and of versions;
//! - [`codec`]: the gRPC codec of every service (malformed bytes are an
//!   INVALID_ARGUMENT);
//! - [`FILE_DESCRIPTOR_SET`]: the protocol's descriptors, for reflection.

pub mod v1 {
    tonic::include_proto!("zdb.v1");
}

pub mod google_rpc {
    tonic::include_proto!("google.rpc");
}

pub mod codec;
pub mod eviction;
pub mod timestamp;

/// Every message and service of the protocol, encoded, for gRPC reflection
/// (`grpcurl`, `grpcui`, clients that discover the API at run time).
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("zdb_descriptor");
mod error_details;

pub use error_details::{decode_error_details, encode_error_details};
