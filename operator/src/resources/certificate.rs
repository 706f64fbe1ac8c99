//! The cert-manager `Certificate` objects (cert-manager.io/v1) the
//! operator asks for when `tls.issuerRef` names an issuer: one for the
//! nodes (`<cluster>-node` into Secret `<cluster>-node-tls`) and one for
//! its own client (`<cluster>-client-root`). cert-manager issues them, and
//! renews them when a third of their life remains (its default); the nodes
//! reload the files the kubelet updates, with no restart.
//!
//! Only the fields the operator sets are modelled: the objects go by
//! server-side apply, and their status is read only for the Ready
//! condition's message.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::CustomResource;
use serde::{Deserialize, Serialize};

use super::owned_metadata;
use crate::crd::{IssuerRef, ZdbCluster};
use crate::error::Result;
use crate::names::{ClusterNames, OPERATOR_USER};

/// What a cert-manager Certificate asks for (the fields zdb uses).
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[kube(
    group = "cert-manager.io",
    version = "v1",
    kind = "Certificate",
    namespaced,
    schema = "disabled",
    status = "CertificateStatus"
)]
#[serde(rename_all = "camelCase")]
pub struct CertificateSpec {
    pub secret_name: String,
    #[serde(default)]
    pub common_name: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dns_names: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ip_addresses: Vec<String>,
    #[serde(default)]
    pub usages: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration: Option<String>,
    #[serde(default)]
    pub private_key: PrivateKey,
    #[serde(default)]
    pub issuer_ref: IssuerReference,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct PrivateKey {
    pub algorithm: String,
    pub size: u32,
    pub encoding: String,
    /// A new key with every certificate (cert-manager's default since
    /// 1.18, set so that older versions do the same).
    pub rotation_policy: String,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
pub struct IssuerReference {
    pub name: String,
    pub kind: String,
    pub group: String,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct CertificateStatus {
    #[serde(default)]
    pub conditions: Vec<CertificateCondition>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct CertificateCondition {
    #[serde(rename = "type")]
    pub type_: String,
    pub status: String,
    #[serde(default)]
    pub reason: Option<String>,
    #[serde(default)]
    pub message: Option<String>,
}

impl Certificate {
    /// Why cert-manager has not issued it (its Ready condition), if it says.
    pub fn not_ready(&self) -> Option<String> {
        let ready = self
            .status
            .as_ref()?
            .conditions
            .iter()
            .find(|c| c.type_ == "Ready")?;
        (ready.status != "True").then(|| {
            let reason = ready.reason.as_deref().unwrap_or("NotReady");
            match ready.message.as_deref() {
                Some(message) if !message.is_empty() => format!("{reason}: {message}"),
                _ => reason.to_owned(),
            }
        })
    }
}

fn certificate(
    metadata: ObjectMeta,
    spec: CertificateSpec,
    issuer: &IssuerRef,
    cluster: &ZdbCluster,
) -> Certificate {
    let mut certificate = Certificate::new("", spec);
    certificate.metadata = metadata;
    certificate.spec.duration = cluster.spec.tls.as_ref().and_then(|t| t.valid_for.clone());
    certificate.spec.issuer_ref = IssuerReference {
        name: issuer.name.clone(),
        kind: issuer.kind.clone(),
        group: issuer.group.clone(),
    };
    // ECDSA P-256, PKCS#8: what the operator's own CA issues too.
    certificate.spec.private_key = PrivateKey {
        algorithm: "ECDSA".into(),
        size: 256,
        encoding: "PKCS8".into(),
        rotation_policy: "Always".into(),
    };
    certificate
}

/// CN `node`, usable as TLS server and client (a node dials its peers),
/// for every pod's stable name and the client Service.
pub fn node_certificate(
    cluster: &ZdbCluster,
    names: &ClusterNames,
    issuer: &IssuerRef,
) -> Result<Certificate> {
    let spec = CertificateSpec {
        secret_name: names.node_tls_secret(),
        common_name: zdb_security::pki::NODE_COMMON_NAME.into(),
        dns_names: names.node_certificate_dns_names(),
        ip_addresses: vec!["127.0.0.1".into()],
        usages: vec![
            "digital signature".into(),
            "server auth".into(),
            "client auth".into(),
        ],
        ..CertificateSpec::default()
    };
    let metadata = owned_metadata(cluster, names, names.node_certificate())?;
    Ok(certificate(metadata, spec, issuer, cluster))
}

/// CN `root`, client use only: the operator's own admin calls.
pub fn client_certificate(
    cluster: &ZdbCluster,
    names: &ClusterNames,
    issuer: &IssuerRef,
) -> Result<Certificate> {
    let spec = CertificateSpec {
        secret_name: names.client_tls_secret(),
        common_name: OPERATOR_USER.into(),
        usages: vec!["digital signature".into(), "client auth".into()],
        ..CertificateSpec::default()
    };
    let metadata = owned_metadata(cluster, names, names.client_certificate())?;
    Ok(certificate(metadata, spec, issuer, cluster))
}
