//! What `spec.redis` adds to the node pod and the Services: the node flag
//! `--redis-listen=0.0.0.0:<port>`, a container port and a Service port
//! named [`REDIS_PORT_NAME`]. TLS and authentication need nothing more: the
//! node serves Redis with the gRPC port's settings.
//!
//! Nothing is added while Redis is off: the pod template (and its hash)
//! stays what it was, so upgrading the operator restarts no pod.

use k8s_openapi::api::core::v1::{ContainerPort, ServicePort};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use crate::crd::ZdbCluster;

pub const REDIS_PORT_NAME: &str = "redis";

/// The node flags.
pub fn args(cluster: &ZdbCluster) -> Vec<String> {
    cluster
        .redis_port()
        .map(|port| format!("--redis-listen=0.0.0.0:{port}"))
        .into_iter()
        .collect()
}

/// The node container's ports.
pub fn container_ports(cluster: &ZdbCluster) -> Vec<ContainerPort> {
    cluster
        .redis_port()
        .map(|port| ContainerPort {
            name: Some(REDIS_PORT_NAME.into()),
            container_port: port,
            ..ContainerPort::default()
        })
        .into_iter()
        .collect()
}

/// The ports of both Services (the same number as on the pods).
pub fn service_ports(cluster: &ZdbCluster) -> Vec<ServicePort> {
    cluster
        .redis_port()
        .map(|port| ServicePort {
            name: Some(REDIS_PORT_NAME.into()),
            port,
            target_port: Some(IntOrString::String(REDIS_PORT_NAME.into())),
            ..ServicePort::default()
        })
        .into_iter()
        .collect()
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::Service;
    use serde_json::{json, Value};

    use super::*;
    use crate::crd::ZdbClusterSpec;
    use crate::names::ClusterNames;
    use crate::resources::{pod_template::pod_template, services, statefulset};

    fn cluster(redis: Option<Value>) -> ZdbCluster {
        let mut spec = json!({"replicas": 3, "image": "zdb:1", "storage": {"size": "1Gi"}});
        if let Some(redis) = redis {
            spec["redis"] = redis;
        }
        let spec: ZdbClusterSpec = serde_json::from_value(spec).expect("a valid spec");
        let mut cluster = ZdbCluster::new("db", spec);
        cluster.metadata.namespace = Some("prod".into());
        cluster.metadata.uid = Some("uid-1".into());
        cluster
    }

    /// (args, container ports, client Service ports, headless Service ports)
    fn rendered(cluster: &ZdbCluster) -> (Vec<String>, Vec<String>, Vec<String>, Vec<String>) {
        let names = ClusterNames::new("db", "prod");
        let pod = pod_template(cluster, &names).spec.expect("a pod spec");
        let container = &pod.containers[0];
        let container_ports: Vec<String> = container
            .ports
            .iter()
            .flatten()
            .map(|p| {
                format!(
                    "{}={}",
                    p.name.clone().unwrap_or_default(),
                    p.container_port
                )
            })
            .collect();
        let service_ports = |service: Service| -> Vec<String> {
            service
                .spec
                .and_then(|s| s.ports)
                .into_iter()
                .flatten()
                .map(|p| {
                    let target = match p.target_port {
                        Some(IntOrString::String(name)) => name,
                        other => format!("{other:?}"),
                    };
                    format!("{}={}->{target}", p.name.unwrap_or_default(), p.port)
                })
                .collect()
        };
        (
            container.args.clone().unwrap_or_default(),
            container_ports,
            service_ports(services::client(cluster, &names).expect("a Service")),
            service_ports(services::headless(cluster, &names).expect("a Service")),
        )
    }

    #[test]
    fn enabled_redis_gets_a_flag_a_container_port_and_service_ports() {
        let (args, container_ports, client, headless) =
            rendered(&cluster(Some(json!({"enabled": true, "port": 6380}))));
        assert!(
            args.contains(&"--redis-listen=0.0.0.0:6380".to_owned()),
            "{args:?}"
        );
        assert_eq!(container_ports, ["grpc=7700", "status=7701", "redis=6380"]);
        let ports = [
            "grpc=7700->grpc",
            "status=7701->status",
            "redis=6380->redis",
        ];
        assert_eq!(client, ports);
        assert_eq!(headless, ports);
        // The port defaults to Redis' own.
        let (args, _, client, _) = rendered(&cluster(Some(json!({"enabled": true}))));
        assert!(args.contains(&"--redis-listen=0.0.0.0:6379".to_owned()));
        assert_eq!(client[2], "redis=6379->redis");
    }

    #[test]
    fn disabled_redis_adds_nothing_and_keeps_the_template() {
        let names = ClusterNames::new("db", "prod");
        let hash = |cluster: &ZdbCluster| {
            statefulset::template_hash(&pod_template(cluster, &names)).expect("a hash")
        };
        let absent = cluster(None);
        for off in [json!({}), json!({"enabled": false, "port": 6380})] {
            let off = cluster(Some(off));
            let (args, container_ports, client, headless) = rendered(&off);
            assert!(!args.iter().any(|a| a.starts_with("--redis")), "{args:?}");
            assert_eq!(container_ports, ["grpc=7700", "status=7701"]);
            assert_eq!(client, ["grpc=7700->grpc", "status=7701->status"]);
            assert_eq!(headless, client);
            assert_eq!(hash(&off), hash(&absent));
        }
        let on = cluster(Some(json!({"enabled": true})));
        assert_ne!(hash(&on), hash(&absent), "turning it on rolls the pods");
    }
}
