//! The security settings of a `ZdbCluster`: TLS (where the node
//! certificates come from), authentication (the root password) and
//! encryption at rest (the master key). Secrets are only ever named here,
//! never inlined: a spec is readable by far more people than a Secret.
//!
//! TLS has three sources, one per cluster:
//! - operator-managed (neither `secretName` nor `issuerRef`): the operator
//!   makes a CA and issues the node and client certificates from it, and
//!   issues them again before they run out;
//! - `issuerRef`: cert-manager issues them (the operator asks for them
//!   with `Certificate` objects);
//! - `secretName`: the user provides the node certificate.
//!
//! What a schema cannot say is in CEL rules, as for the rest of the spec:
//! authentication needs TLS, TLS cannot be switched on or off on a running
//! cluster (nodes serving TLS cannot talk to nodes serving plaintext during
//! the rolling restart), one TLS source at a time, validities of at least
//! an hour.

use std::time::Duration;

use kube::KubeSchema;
use serde::{Deserialize, Serialize};

/// Authentication checks passwords and certificates: without TLS they
/// would cross the network in the clear (and the node refuses to start).
pub const RULE_AUTH_NEEDS_TLS: &str = "!has(self.auth) || (has(self.tls) && self.tls.enabled)";
/// Nodes serving TLS only and nodes serving plaintext cannot reach each
/// other: a rolling restart from one to the other would never finish.
pub const RULE_TLS_KEPT: &str =
    "(has(self.tls) && self.tls.enabled) == (has(oldSelf.tls) && oldSelf.tls.enabled)";
pub const RULE_TLS_ONE_SOURCE: &str = "!has(self.secretName) || !has(self.issuerRef)";
pub const RULE_CLIENT_SECRET_NEEDS_SECRET: &str =
    "!has(self.clientSecretName) || has(self.secretName)";
/// A certificate renewed when a third of its life remains, checked every
/// few seconds, needs some life; cert-manager refuses less than an hour too.
pub const RULE_AT_LEAST_AN_HOUR: &str = "duration(self) >= duration('1h')";
/// cert-manager's own issuers are of these two kinds; an external issuer
/// (another group) has kinds of its own.
pub const RULE_CERT_MANAGER_KIND: &str =
    "self.group != 'cert-manager.io' || self.kind == 'Issuer' || self.kind == 'ClusterIssuer'";

/// A Go duration of hours, minutes and seconds, as cert-manager takes
/// (`8760h`, `1h30m`).
pub const DURATION_PATTERN: &str = r"^([0-9]{1,6}h)?([0-9]{1,7}m)?([0-9]{1,9}s)?$";
/// What a Secret may be called (a DNS subdomain).
pub const SECRET_NAME_PATTERN: &str = r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$";
/// What a key of a Secret's data may be called.
pub const SECRET_KEY_PATTERN: &str = r"^[-._a-zA-Z0-9]+$";

/// Node and client certificates, when `validFor` is absent: a year.
pub const DEFAULT_VALID_FOR: Duration = Duration::from_secs(365 * 86_400);
/// The operator-made CA, when `caValidFor` is absent: ten years.
pub const DEFAULT_CA_VALID_FOR: Duration = Duration::from_secs(10 * 365 * 86_400);

/// TLS between nodes and for every client.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = kube::core::Rule::new(RULE_TLS_ONE_SOURCE).message("give tls.secretName or tls.issuerRef, not both: one is where the node certificate comes from"),
    validation = kube::core::Rule::new(RULE_CLIENT_SECRET_NEEDS_SECRET).message("tls.clientSecretName goes with tls.secretName: with operator-managed or cert-manager certificates the operator has its own"),
)]
pub struct TlsSpec {
    /// Serve TLS only, on every node, and have nodes verify each other's
    /// certificates. Cannot change once the cluster exists.
    #[serde(default)]
    pub enabled: bool,
    /// A Secret (type kubernetes.io/tls, plus `ca.crt`) with the node
    /// certificate: CN `node`, usable as TLS server and client, with SANs
    /// `*.<cluster>-nodes.<namespace>.svc` and `<cluster>.<namespace>.svc`.
    /// The operator creates no certificate then; the nodes reload the
    /// files when the Secret changes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253), regex(pattern = SECRET_NAME_PATTERN))]
    pub secret_name: Option<String>,
    /// With `secretName`: a Secret (kubernetes.io/tls, plus `ca.crt`) with
    /// a client certificate for user `root`, for the operator's own calls.
    /// When absent, the operator presents the node certificate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253), regex(pattern = SECRET_NAME_PATTERN))]
    pub client_secret_name: Option<String>,
    /// Have cert-manager issue the certificates: the operator creates
    /// `Certificate` objects (`<cluster>-node`, `<cluster>-client-root`)
    /// naming this issuer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer_ref: Option<IssuerRef>,
    /// How long node and client certificates are valid (a Go duration,
    /// default 8760h). They are issued again when a third of it remains.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 2, max = 32), regex(pattern = DURATION_PATTERN))]
    #[x_kube(validation = kube::core::Rule::new(RULE_AT_LEAST_AN_HOUR).message("tls.validFor must be at least 1h, as a duration such as 8760h"))]
    pub valid_for: Option<String>,
    /// How long the CA the operator makes is valid (default 87600h).
    /// Only for operator-managed certificates; the CA is not renewed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 2, max = 32), regex(pattern = DURATION_PATTERN))]
    #[x_kube(validation = kube::core::Rule::new(RULE_AT_LEAST_AN_HOUR).message("tls.caValidFor must be at least 1h, as a duration such as 87600h"))]
    pub ca_valid_for: Option<String>,
}

/// A cert-manager issuer.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = kube::core::Rule::new(RULE_CERT_MANAGER_KIND).message("tls.issuerRef.kind must be Issuer or ClusterIssuer for group cert-manager.io: fix the kind, or name the group of an external issuer"))]
pub struct IssuerRef {
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// Issuer (in the cluster's namespace) or ClusterIssuer; an external
    /// issuer's kind with its group.
    #[serde(default = "default_issuer_kind")]
    #[schemars(length(min = 1, max = 63))]
    pub kind: String,
    #[serde(default = "default_issuer_group")]
    #[schemars(length(min = 1, max = 253))]
    pub group: String,
}

fn default_issuer_kind() -> String {
    "Issuer".into()
}

fn default_issuer_group() -> String {
    "cert-manager.io".into()
}

/// Authentication: every call needs a client certificate or a password
/// login. Needs TLS.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct AuthSpec {
    /// The password of user `root` (role root: admin on every key). Each
    /// node sets it when it starts, so a changed password takes effect as
    /// the pods restart.
    pub root_password_secret: PasswordSecretRef,
}

/// A key of a Secret holding a password.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PasswordSecretRef {
    #[schemars(length(min = 1, max = 253), regex(pattern = SECRET_NAME_PATTERN))]
    pub name: String,
    #[serde(default = "default_password_key")]
    #[schemars(length(min = 1, max = 253), regex(pattern = SECRET_KEY_PATTERN))]
    pub key: String,
}

fn default_password_key() -> String {
    "password".into()
}

/// Encryption at rest of every node's data.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct EncryptionSpec {
    /// The master key: 32 random bytes as 64 hex characters
    /// (`openssl rand -hex 32`). Never edit it in place: to change it,
    /// create a new Secret, name it here and the old one as
    /// `previousMasterKeySecret`; each node rewraps its keys as it restarts.
    pub master_key_secret: MasterKeySecretRef,
    /// The master key the data was last wrapped with, while changing it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_master_key_secret: Option<MasterKeySecretRef>,
}

/// A key of a Secret holding a master key.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct MasterKeySecretRef {
    #[schemars(length(min = 1, max = 253), regex(pattern = SECRET_NAME_PATTERN))]
    pub name: String,
    #[serde(default = "default_master_key_key")]
    #[schemars(length(min = 1, max = 253), regex(pattern = SECRET_KEY_PATTERN))]
    pub key: String,
}

fn default_master_key_key() -> String {
    "master.key".into()
}

/// Where a cluster's node certificate comes from.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum TlsSource<'a> {
    /// The operator's own CA.
    Managed,
    /// cert-manager, through this issuer.
    CertManager(&'a IssuerRef),
    /// A Secret the user provides, and optionally one with a client
    /// certificate for the operator.
    Provided {
        secret: &'a str,
        client_secret: Option<&'a str>,
    },
}

impl TlsSpec {
    /// None when TLS is off.
    pub fn source(&self) -> Option<TlsSource<'_>> {
        if !self.enabled {
            return None;
        }
        Some(match (&self.secret_name, &self.issuer_ref) {
            (Some(secret), _) => TlsSource::Provided {
                secret,
                client_secret: self.client_secret_name.as_deref(),
            },
            (None, Some(issuer)) => TlsSource::CertManager(issuer),
            (None, None) => TlsSource::Managed,
        })
    }

    /// `validFor`, or the default; None when it is not a duration.
    pub fn valid_for(&self) -> Option<Duration> {
        match &self.valid_for {
            Some(text) => parse_duration(text),
            None => Some(DEFAULT_VALID_FOR),
        }
    }

    /// `caValidFor`, or the default; None when it is not a duration.
    pub fn ca_valid_for(&self) -> Option<Duration> {
        match &self.ca_valid_for {
            Some(text) => parse_duration(text),
            None => Some(DEFAULT_CA_VALID_FOR),
        }
    }
}

/// A duration as `DURATION_PATTERN` has it: hours, minutes and seconds,
/// each optional, in that order (`8760h`, `1h30m`, `90s`).
pub fn parse_duration(text: &str) -> Option<Duration> {
    let mut rest = text;
    let mut total: u64 = 0;
    let mut seen_any = false;
    for (unit, seconds) in [('h', 3600u64), ('m', 60), ('s', 1)] {
        let digits = rest.chars().take_while(char::is_ascii_digit).count();
        if digits == 0 || !rest[digits..].starts_with(unit) {
            continue;
        }
        let amount: u64 = rest[..digits].parse().ok()?;
        total = total.checked_add(amount.checked_mul(seconds)?)?;
        rest = &rest[digits + 1..];
        seen_any = true;
    }
    (seen_any && rest.is_empty()).then(|| Duration::from_secs(total))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_as_go_writes_them() {
        assert_eq!(parse_duration("8760h"), Some(DEFAULT_VALID_FOR));
        assert_eq!(parse_duration("1h30m"), Some(Duration::from_secs(5400)));
        assert_eq!(parse_duration("90s"), Some(Duration::from_secs(90)));
        assert_eq!(parse_duration("2h0m5s"), Some(Duration::from_secs(7205)));
        for bad in ["", "h", "1d", "30m1h", "1h1h", "-1h", "1.5h", "1h "] {
            assert_eq!(parse_duration(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn the_source_follows_the_fields() {
        let mut tls = TlsSpec::default();
        assert_eq!(tls.source(), None, "off by default");
        tls.enabled = true;
        assert_eq!(tls.source(), Some(TlsSource::Managed));
        tls.issuer_ref = Some(IssuerRef {
            name: "ca".into(),
            kind: default_issuer_kind(),
            group: default_issuer_group(),
        });
        assert!(matches!(tls.source(), Some(TlsSource::CertManager(_))));
        tls.issuer_ref = None;
        tls.secret_name = Some("db-certs".into());
        assert_eq!(
            tls.source(),
            Some(TlsSource::Provided {
                secret: "db-certs",
                client_secret: None
            })
        );
    }
}
