//! The Secrets of operator-managed TLS, in the layout cert-manager writes
//! (so the pods mount either the same way): `<cluster>-ca` holds the CA
//! (`ca.crt`, `ca.key`; Opaque, since a CA is no TLS server),
//! `<cluster>-node-tls` the node certificate and `<cluster>-client-root`
//! the operator's client certificate (both kubernetes.io/tls, plus
//! `ca.crt`). And reading a Secret's keys back as text.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::ByteString;
use zdb_security::pki::{CertificateAuthority, IssuedCert};

use super::owned_metadata;
use crate::crd::ZdbCluster;
use crate::error::Result;
use crate::names::ClusterNames;

pub const CA_CERT_KEY: &str = "ca.crt";
pub const CA_KEY_KEY: &str = "ca.key";
pub const TLS_CERT_KEY: &str = "tls.crt";
pub const TLS_KEY_KEY: &str = "tls.key";
pub const TLS_SECRET_TYPE: &str = "kubernetes.io/tls";

fn secret(
    cluster: &ZdbCluster,
    names: &ClusterNames,
    name: String,
    type_: &str,
    data: &[(&str, &str)],
) -> Result<Secret> {
    Ok(Secret {
        metadata: owned_metadata(cluster, names, name)?,
        type_: Some(type_.into()),
        data: Some(
            data.iter()
                .map(|(key, value)| ((*key).to_owned(), ByteString(value.as_bytes().to_vec())))
                .collect::<BTreeMap<_, _>>(),
        ),
        ..Secret::default()
    })
}

/// `<cluster>-ca`: what an administrator copies `ca.crt` out of to trust
/// the cluster, and what the operator signs with.
pub fn ca_secret(
    cluster: &ZdbCluster,
    names: &ClusterNames,
    ca: &CertificateAuthority,
) -> Result<Secret> {
    secret(
        cluster,
        names,
        names.ca_secret(),
        "Opaque",
        &[(CA_CERT_KEY, &ca.cert_pem()), (CA_KEY_KEY, &ca.key_pem())],
    )
}

/// A certificate Secret: `name` holds `cert`, and `ca_pem` as `ca.crt`.
pub fn certificate_secret(
    cluster: &ZdbCluster,
    names: &ClusterNames,
    name: String,
    ca_pem: &str,
    cert: &IssuedCert,
) -> Result<Secret> {
    secret(
        cluster,
        names,
        name,
        TLS_SECRET_TYPE,
        &[
            (CA_CERT_KEY, ca_pem),
            (TLS_CERT_KEY, &cert.cert_pem),
            (TLS_KEY_KEY, &cert.key_pem),
        ],
    )
}

/// The text under `key`, if the Secret has it and it is UTF-8 and not blank.
pub fn text(secret: &Secret, key: &str) -> Option<String> {
    let bytes = secret.data.as_ref()?.get(key)?;
    let text = std::str::from_utf8(&bytes.0).ok()?;
    (!text.trim().is_empty()).then(|| text.to_owned())
}

/// The keys of `wanted` the Secret lacks (or holds empty).
pub fn missing_keys<'a>(secret: &Secret, wanted: &[&'a str]) -> Vec<&'a str> {
    wanted
        .iter()
        .copied()
        .filter(|key| {
            secret
                .data
                .as_ref()
                .and_then(|data| data.get(*key))
                .is_none_or(|value| value.0.is_empty())
        })
        .collect()
}

/// The subject common name of the first certificate of a PEM text (None
/// without one, or with several: see `zdb_security::pki::common_name`).
pub fn common_name(cert_pem: &str) -> Option<String> {
    use base64::Engine;
    let body: String = cert_pem
        .lines()
        .map(str::trim)
        .skip_while(|line| *line != "-----BEGIN CERTIFICATE-----")
        .skip(1)
        .take_while(|line| *line != "-----END CERTIFICATE-----")
        .collect();
    let der = base64::engine::general_purpose::STANDARD
        .decode(body)
        .ok()?;
    zdb_security::pki::common_name(&der)
}

/// The PEM triple of a certificate Secret (ca.crt, tls.crt, tls.key).
#[derive(Clone, PartialEq, Eq)]
pub struct TlsTriple {
    pub ca: String,
    pub cert: String,
    pub key: String,
}

impl TlsTriple {
    pub fn of(secret: &Secret) -> Option<TlsTriple> {
        Some(TlsTriple {
            ca: text(secret, CA_CERT_KEY)?,
            cert: text(secret, TLS_CERT_KEY)?,
            key: text(secret, TLS_KEY_KEY)?,
        })
    }
}

impl std::fmt::Debug for TlsTriple {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsTriple")
            .field("ca", &self.ca)
            .field("cert", &self.cert)
            .field("key", &"<redacted>")
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::crd::ZdbClusterSpec;

    fn cluster() -> ZdbCluster {
        let spec: ZdbClusterSpec = serde_json::from_value(serde_json::json!({
            "replicas": 3, "image": "zdb:1", "storage": {"size": "1Gi"},
        }))
        .expect("a valid spec");
        let mut cluster = ZdbCluster::new("db", spec);
        cluster.metadata.uid = Some("uid-1".into());
        cluster
    }

    #[test]
    fn certificate_secrets_read_back_and_never_print_their_key() {
        let names = ClusterNames::new("db", "prod");
        let ca =
            CertificateAuthority::generate("test CA", Duration::from_secs(86_400)).expect("a CA");
        let issued = ca
            .issue_client("root", Duration::from_secs(3600))
            .expect("a certificate");
        let secret = certificate_secret(
            &cluster(),
            &names,
            names.client_tls_secret(),
            &ca.cert_pem(),
            &issued,
        )
        .expect("a Secret");
        assert_eq!(secret.type_.as_deref(), Some(TLS_SECRET_TYPE));
        let triple = TlsTriple::of(&secret).expect("all three keys");
        assert_eq!(triple.cert, issued.cert_pem);
        assert!(!format!("{triple:?}").contains("PRIVATE KEY"));
        assert!(missing_keys(&secret, &[CA_CERT_KEY, TLS_KEY_KEY, "other"]) == ["other"]);
        assert_eq!(common_name(&issued.cert_pem).as_deref(), Some("root"));
        assert_eq!(common_name("no certificate"), None);

        let ca_secret = ca_secret(&cluster(), &names, &ca).expect("a Secret");
        assert_eq!(ca_secret.type_.as_deref(), Some("Opaque"));
        let key = text(&ca_secret, CA_KEY_KEY).expect("the key");
        let back =
            CertificateAuthority::from_pem(&text(&ca_secret, CA_CERT_KEY).expect("the cert"), &key)
                .expect("the same CA");
        assert_eq!(back.cert_pem(), ca.cert_pem());
    }
}
