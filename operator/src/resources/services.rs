//! The headless Service (stable DNS name per pod, also before the pod is
//! ready, so nodes find each other while they start) and the client Service,
//! both with the gRPC and status ports (and the Redis port, [`super::redis`]).

use k8s_openapi::api::core::v1::{Service, ServicePort, ServiceSpec};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::{owned_metadata, redis};
use crate::crd::ZdbCluster;
use crate::error::Result;
use crate::names::{ClusterNames, GRPC_PORT, STATUS_PORT};

fn ports(cluster: &ZdbCluster) -> Vec<ServicePort> {
    let mut ports = vec![
        ServicePort {
            name: Some("grpc".into()),
            port: GRPC_PORT,
            target_port: Some(IntOrString::String("grpc".into())),
            ..ServicePort::default()
        },
        ServicePort {
            name: Some("status".into()),
            port: STATUS_PORT,
            target_port: Some(IntOrString::String("status".into())),
            ..ServicePort::default()
        },
    ];
    ports.extend(redis::service_ports(cluster));
    ports
}

pub fn headless(cluster: &ZdbCluster, names: &ClusterNames) -> Result<Service> {
    Ok(Service {
        metadata: owned_metadata(cluster, names, names.headless_service())?,
        spec: Some(ServiceSpec {
            cluster_ip: Some("None".into()),
            // A starting node must resolve its peers (and itself) before
            // any of them is ready: bootstrap and join depend on it.
            publish_not_ready_addresses: Some(true),
            selector: Some(names.selector_labels()),
            ports: Some(ports(cluster)),
            ..ServiceSpec::default()
        }),
        status: None,
    })
}

pub fn client(cluster: &ZdbCluster, names: &ClusterNames) -> Result<Service> {
    Ok(Service {
        metadata: owned_metadata(cluster, names, names.client_service())?,
        spec: Some(ServiceSpec {
            selector: Some(names.selector_labels()),
            ports: Some(ports(cluster)),
            ..ServiceSpec::default()
        }),
        status: None,
    })
}
