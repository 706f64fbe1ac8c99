//! The Redis front end of a `ZdbCluster`: every node can serve the Redis
//! protocol (RESP2/RESP3, `zdb-node --redis-listen`) beside gRPC, with the
//! same TLS and authentication (`spec.tls`, `spec.auth`).
//!
//! The port is bounded by the schema; a CEL rule keeps it off the ports
//! every node listens on anyway (the node could not bind it, and a Service
//! cannot list one port twice).

use kube::KubeSchema;
use serde::{Deserialize, Serialize};

/// The port Redis clients expect.
pub const DEFAULT_REDIS_PORT: i32 = 6379;
/// Not the gRPC port (7700) nor the status port (7701): see
/// [`crate::names::GRPC_PORT`] and [`crate::names::STATUS_PORT`].
pub const RULE_REDIS_PORT_FREE: &str = "self != 7700 && self != 7701";

/// The Redis protocol on every node and on the cluster's Services.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RedisSpec {
    /// Serve Redis on every node (`--redis-listen`), and list the port on
    /// the Services. Turning it on or off restarts the pods one at a time.
    #[serde(default)]
    pub enabled: bool,
    /// The port, on the pods and on the Services (default 6379; not 7700
    /// or 7701, the gRPC and status ports).
    #[serde(default = "default_redis_port")]
    #[schemars(range(min = 1, max = 65535))]
    #[x_kube(validation = kube::core::Rule::new(RULE_REDIS_PORT_FREE).message("redis.port must not be 7700 (gRPC) or 7701 (status), which every node listens on already: choose another port, such as 6379"))]
    pub port: i32,
}

fn default_redis_port() -> i32 {
    DEFAULT_REDIS_PORT
}

impl Default for RedisSpec {
    fn default() -> Self {
        RedisSpec {
            enabled: false,
            port: DEFAULT_REDIS_PORT,
        }
    }
}

impl RedisSpec {
    /// The port to serve, None when Redis is off.
    pub fn serving_port(&self) -> Option<i32> {
        self.enabled.then_some(self.port)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::names::{GRPC_PORT, STATUS_PORT};

    #[test]
    fn the_rule_names_the_ports_every_node_listens_on() {
        assert_eq!(
            RULE_REDIS_PORT_FREE,
            format!("self != {GRPC_PORT} && self != {STATUS_PORT}")
        );
    }

    #[test]
    fn off_by_default_on_the_usual_port() {
        let redis: RedisSpec = serde_json::from_value(serde_json::json!({})).expect("a spec");
        assert_eq!(redis, RedisSpec::default());
        assert_eq!(redis.serving_port(), None);
        let on: RedisSpec =
            serde_json::from_value(serde_json::json!({"enabled": true})).expect("a spec");
        assert_eq!(on.serving_port(), Some(DEFAULT_REDIS_PORT));
    }
}
