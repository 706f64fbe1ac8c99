//! Operator-managed TLS: a CA per cluster (Secret `<cluster>-ca`, made
//! once), and from it the node certificate (`<cluster>-node-tls`) and the
//! operator's client certificate (`<cluster>-client-root`), each issued
//! again when less than a third of its validity remains, or when it no
//! longer verifies against the CA (a CA made anew, a damaged Secret).
//!
//! A renewed certificate is a changed Secret: the kubelet updates the
//! files in the pods and the nodes reload them, so renewal restarts no
//! pod. Certificates are checked against the wall clock (the one rcgen and
//! rustls use), not the reconciler's status clock.
//!
//! The CA itself is not renewed (every node would have to trust two CAs
//! for a while): when it would expire within one certificate validity, a
//! problem says so and what to do.

use std::time::{Duration, SystemTime};

use k8s_openapi::api::core::v1::Secret;
use kube::runtime::events::EventType;
use kube::Api;
use zdb_security::pki::{self, CertificateAuthority, IssuedCert};

use super::apply::{apply, describe};
use super::events::Events;
use super::status::{Problem, CERTIFICATE_FAILED};
use crate::connection::ClientTls;
use crate::crd::ZdbCluster;
use crate::error::{Error, Result};
use crate::names::{ClusterNames, OPERATOR_USER};
use crate::resources::tls::{self, TlsTriple, CA_CERT_KEY, CA_KEY_KEY};

/// The two certificates the operator issues.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Node,
    Client,
}

impl Kind {
    fn describe(self) -> &'static str {
        match self {
            Kind::Node => "node certificate",
            Kind::Client => "operator's client certificate",
        }
    }
}

/// What the operator-managed step found: the operator's own TLS material,
/// and what it could not do.
#[derive(Debug, Default)]
pub struct Managed {
    pub client: Option<ClientTls>,
    /// The node certificate is in place: the pods can mount it.
    pub node_ready: bool,
    pub problems: Vec<Problem>,
}

/// What the API server said, with what the operator was doing.
fn refused(action: String) -> impl FnOnce(kube::Error) -> Error {
    move |error| Error::Refused {
        action,
        message: describe(&error),
    }
}

/// RFC 3339, for messages.
fn shown(time: SystemTime) -> String {
    k8s_openapi::jiff::Timestamp::try_from(time)
        .map(|t| t.to_string())
        .unwrap_or_else(|_| format!("{time:?}"))
}

/// Why the certificate in `secret` must be issued again, if it must: it
/// is missing or incomplete, names another CA, does not verify against
/// `ca` (for `server_name`, for a node certificate), has less than a third
/// of `valid_for` left, or more than `valid_for` (the validity was
/// shortened).
pub fn renewal_reason(
    secret: Option<&Secret>,
    ca: &CertificateAuthority,
    server_name: Option<&str>,
    valid_for: Duration,
    now: SystemTime,
) -> Option<String> {
    let Some(secret) = secret else {
        return Some("it does not exist yet".into());
    };
    let Some(triple) = TlsTriple::of(secret) else {
        return Some("it lacks ca.crt, tls.crt or tls.key".into());
    };
    let ca_pem = ca.cert_pem();
    if triple.ca != ca_pem {
        return Some("it names another CA than the cluster's".into());
    }
    if let Err(error) = pki::verify_issued(&ca_pem, &triple.cert, server_name) {
        return Some(format!(
            "it does not verify against the cluster CA ({error})"
        ));
    }
    let not_after = match pki::not_after(&triple.cert) {
        Ok(not_after) => not_after,
        Err(error) => return Some(format!("its expiry cannot be read ({error})")),
    };
    let left = not_after.duration_since(now).unwrap_or_default();
    if left < valid_for / 3 {
        return Some(format!(
            "it expires at {}, with less than a third of its validity left",
            shown(not_after)
        ));
    }
    // An hour of slack: certificates start an hour early.
    if left > valid_for + Duration::from_secs(3600) {
        return Some(format!(
            "it is valid until {}, longer than tls.validFor asks",
            shown(not_after)
        ));
    }
    None
}

/// The cluster CA: read from its Secret, or made (and the Secret
/// created) if there is none.
async fn ensure_ca(
    cluster: &ZdbCluster,
    names: &ClusterNames,
    secrets: &Api<Secret>,
    events: &Events<'_>,
    ca_valid_for: Duration,
) -> Result<CertificateAuthority> {
    let name = names.ca_secret();
    let existing = secrets
        .get_opt(&name)
        .await
        .map_err(refused(format!("read Secret {name}")))?;
    if let Some(secret) = existing {
        let invalid = |problem: String| Error::SecretInvalid {
            secret: name.clone(),
            purpose: "the cluster CA",
            problem,
        };
        let (Some(cert), Some(key)) = (
            tls::text(&secret, CA_CERT_KEY),
            tls::text(&secret, CA_KEY_KEY),
        ) else {
            return Err(invalid(format!(
                "it lacks {CA_CERT_KEY} or {CA_KEY_KEY}: delete it and the operator makes a new CA (and issues every certificate again)"
            )));
        };
        return CertificateAuthority::from_pem(&cert, &key).map_err(|error| {
            invalid(format!(
                "the operator cannot sign with it ({error}): delete it and the operator makes a new CA"
            ))
        });
    }
    let ca = CertificateAuthority::generate(
        &format!("zdb CA {}/{}", names.namespace, names.name),
        ca_valid_for,
    )
    .map_err(|source| Error::Pki {
        what: "making the cluster CA".into(),
        source,
    })?;
    apply(secrets, &name, &tls::ca_secret(cluster, names, &ca)?)
        .await
        .map_err(refused(format!("apply Secret {name}")))?;
    events
        .publish(
            EventType::Normal,
            "CertificateAuthorityCreated",
            "CreateCA",
            format!("made the cluster CA, in Secret {name}"),
        )
        .await;
    Ok(ca)
}

/// The certificate of `kind`: as its Secret holds it, or issued (again)
/// and the Secret applied.
async fn ensure_certificate(
    cluster: &ZdbCluster,
    names: &ClusterNames,
    secrets: &Api<Secret>,
    events: &Events<'_>,
    ca: &CertificateAuthority,
    kind: Kind,
    valid_for: Duration,
) -> Result<TlsTriple> {
    let (name, server_name) = match kind {
        Kind::Node => (names.node_tls_secret(), Some(names.node_server_name())),
        Kind::Client => (names.client_tls_secret(), None),
    };
    let existing = secrets
        .get_opt(&name)
        .await
        .map_err(refused(format!("read Secret {name}")))?;
    let Some(reason) = renewal_reason(
        existing.as_ref(),
        ca,
        server_name.as_deref(),
        valid_for,
        SystemTime::now(),
    ) else {
        // renewal_reason found all three keys.
        return existing
            .as_ref()
            .and_then(TlsTriple::of)
            .ok_or_else(|| Error::SecretInvalid {
                secret: name,
                purpose: kind.describe(),
                problem: "it changed while being read".into(),
            });
    };
    let issued: IssuedCert = match kind {
        Kind::Node => ca.issue_node(&names.node_certificate_dns_names(), valid_for),
        Kind::Client => ca.issue_client(OPERATOR_USER, valid_for),
    }
    .map_err(|source| Error::Pki {
        what: format!("issuing the {}", kind.describe()),
        source,
    })?;
    let ca_pem = ca.cert_pem();
    let secret = tls::certificate_secret(cluster, names, name.clone(), &ca_pem, &issued)?;
    apply(secrets, &name, &secret)
        .await
        .map_err(refused(format!("apply Secret {name}")))?;
    let (event, action) = if existing.is_some() {
        ("CertificateRenewed", "RenewCertificate")
    } else {
        ("CertificateIssued", "IssueCertificate")
    };
    let until = pki::not_after(&issued.cert_pem)
        .map(shown)
        .unwrap_or_default();
    events
        .publish(
            EventType::Normal,
            event,
            action,
            format!(
                "issued the {} into Secret {name}, valid until {until}: {reason}",
                kind.describe()
            ),
        )
        .await;
    Ok(TlsTriple {
        ca: ca_pem,
        cert: issued.cert_pem,
        key: issued.key_pem,
    })
}

/// The CA, then the node and client certificates; what fails is a problem
/// (and what depends on it is not attempted).
pub async fn ensure(
    cluster: &ZdbCluster,
    names: &ClusterNames,
    secrets: &Api<Secret>,
    events: &Events<'_>,
    valid_for: Duration,
    ca_valid_for: Duration,
) -> Managed {
    let mut managed = Managed::default();
    let failed = |error: Error| Problem::new(CERTIFICATE_FAILED, error.to_string());
    let ca = match ensure_ca(cluster, names, secrets, events, ca_valid_for).await {
        Ok(ca) => ca,
        Err(error) => {
            managed.problems.push(failed(error));
            return managed;
        }
    };
    if let Ok(not_after) = pki::not_after(&ca.cert_pem()) {
        let left = not_after
            .duration_since(SystemTime::now())
            .unwrap_or_default();
        if left < valid_for {
            managed.problems.push(Problem::new(
                CERTIFICATE_FAILED,
                format!(
                    "the cluster CA in Secret {} expires at {}, within tls.validFor: the operator does not renew CAs; delete the Secret to have a new CA made (nodes fail to reach each other for the minute or so the kubelet takes to update every pod)",
                    names.ca_secret(),
                    shown(not_after)
                ),
            ));
        }
    }
    for kind in [Kind::Node, Kind::Client] {
        match ensure_certificate(cluster, names, secrets, events, &ca, kind, valid_for).await {
            Ok(triple) if kind == Kind::Client => managed.client = Some(triple.into()),
            Ok(_) => managed.node_ready = true,
            Err(error) => managed.problems.push(failed(error)),
        }
    }
    managed
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::ZdbClusterSpec;

    const DAY: Duration = Duration::from_secs(86_400);

    fn cluster() -> ZdbCluster {
        let spec: ZdbClusterSpec = serde_json::from_value(serde_json::json!({
            "replicas": 3, "image": "zdb:1", "storage": {"size": "1Gi"},
        }))
        .expect("a valid spec");
        let mut cluster = ZdbCluster::new("db", spec);
        cluster.metadata.uid = Some("uid-1".into());
        cluster
    }

    fn node_secret(ca: &CertificateAuthority, cert: &IssuedCert) -> Secret {
        let names = ClusterNames::new("db", "prod");
        tls::certificate_secret(
            &cluster(),
            &names,
            names.node_tls_secret(),
            &ca.cert_pem(),
            cert,
        )
        .expect("a Secret")
    }

    #[test]
    fn certificates_are_renewed_with_a_third_of_their_life_left() {
        let names = ClusterNames::new("db", "prod");
        let ca = CertificateAuthority::generate("test CA", 3650 * DAY).expect("a CA");
        let hosts = names.node_certificate_dns_names();
        let server = names.node_server_name();
        let now = SystemTime::now();
        let reason = |secret: Option<&Secret>, ca: &CertificateAuthority| {
            renewal_reason(secret, ca, Some(&server), 365 * DAY, now)
        };
        assert_eq!(reason(None, &ca).as_deref(), Some("it does not exist yet"));
        let fresh = node_secret(&ca, &ca.issue_node(&hosts, 365 * DAY).expect("issued"));
        assert_eq!(reason(Some(&fresh), &ca), None);
        let near = node_secret(&ca, &ca.issue_node(&hosts, 100 * DAY).expect("issued"));
        assert!(reason(Some(&near), &ca).is_some_and(|r| r.contains("less than a third")));
        let long = node_secret(&ca, &ca.issue_node(&hosts, 400 * DAY).expect("issued"));
        assert!(reason(Some(&long), &ca).is_some_and(|r| r.contains("longer than")));
        let expired = node_secret(&ca, &ca.issue_expired_node(&hosts).expect("issued"));
        assert!(reason(Some(&expired), &ca).is_some_and(|r| r.contains("does not verify")));
        // Another pod naming scheme: peers would refuse it.
        let wrong_names = node_secret(
            &ca,
            &ca.issue_node(&["db-0.elsewhere".into()], 365 * DAY)
                .expect("issued"),
        );
        assert!(reason(Some(&wrong_names), &ca).is_some_and(|r| r.contains("does not verify")));
        // A new CA: everything is issued again.
        let other = CertificateAuthority::generate("other CA", 3650 * DAY).expect("a CA");
        assert!(reason(Some(&fresh), &other).is_some_and(|r| r.contains("another CA")));
        let mut partial = fresh.clone();
        if let Some(data) = partial.data.as_mut() {
            data.remove(tls::TLS_KEY_KEY);
        }
        assert!(reason(Some(&partial), &ca).is_some_and(|r| r.contains("lacks")));
    }

    #[test]
    fn node_certificates_cover_every_pod_and_the_client_service() {
        let names = ClusterNames::new("db", "prod");
        let ca = CertificateAuthority::generate("test CA", 3650 * DAY).expect("a CA");
        let node = ca
            .issue_node(&names.node_certificate_dns_names(), DAY)
            .expect("issued");
        for host in [
            "db-0.db-nodes.prod.svc",
            "db-17.db-nodes.prod.svc",
            "db-3.db-nodes.prod.svc.cluster.local",
            "db.prod.svc",
            "db.prod.svc.cluster.local",
            "db",
            "localhost",
            "127.0.0.1",
        ] {
            pki::verify_issued(&ca.cert_pem(), &node.cert_pem, Some(host))
                .unwrap_or_else(|e| panic!("{host}: {e}"));
        }
        assert!(pki::verify_issued(
            &ca.cert_pem(),
            &node.cert_pem,
            Some("db-0.other-nodes.prod.svc")
        )
        .is_err());
    }
}
