//! The gRPC services a node serves to clients and operators, and the HTTP
//! status port.

pub mod admin;
pub mod kv;
mod observe;
pub mod range_stats;
pub mod status;
pub mod status_http;
pub mod validate;
