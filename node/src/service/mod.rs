//! The protocol adapters over the node's operations (`crate::ops`): the
//! gRPC KV, transaction, admin and auth services (decode, authorize, call,
//! encode), the gRPC health
//! service fed from the node's real health, errors as gRPC statuses, and
//! the HTTP status port (metrics, liveness, readiness), and the Redis
//! protocol front end ([`redis`]).

pub mod admin;
pub mod auth;
pub mod call;
pub mod grpc_health;
pub mod kv;
mod observe;
pub mod redis;
pub mod status;
pub mod status_http;
pub mod txn;
