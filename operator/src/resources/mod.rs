//! The Kubernetes objects a `ZdbCluster` owns, built as pure functions of the
//! cluster and of the decisions the reconciler made (replicas, partition),
//! and of the certificates it issued ([`tls`]; [`certificate`] when
//! cert-manager issues them). [`redis`] adds the Redis port when
//! `spec.redis` turns it on.
//! Everything here is sent with server-side apply, so every builder returns
//! the complete desired object.

pub mod certificate;
pub mod configmap;
pub mod pdb;
pub mod pod_template;
pub mod redis;
pub mod secret_mounts;
pub mod services;
pub mod statefulset;
pub mod tls;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::Resource;

use crate::crd::ZdbCluster;
use crate::error::{Error, Result};
use crate::names::ClusterNames;

/// The owner reference every owned object carries: deleting the
/// `ZdbCluster` deletes them (volumes excepted: StatefulSets keep claims).
pub fn owner_reference(cluster: &ZdbCluster) -> Result<OwnerReference> {
    cluster
        .controller_owner_ref(&())
        .ok_or(Error::MissingObjectField("metadata.uid"))
}

/// Metadata of an owned object: name, namespace, labels, owner.
pub fn owned_metadata(
    cluster: &ZdbCluster,
    names: &ClusterNames,
    name: String,
) -> Result<ObjectMeta> {
    Ok(ObjectMeta {
        name: Some(name),
        namespace: Some(names.namespace.clone()),
        labels: Some(names.labels()),
        owner_references: Some(vec![owner_reference(cluster)?]),
        ..ObjectMeta::default()
    })
}
