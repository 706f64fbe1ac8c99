//! cert-manager as a real cluster has it, for the fake API server: the
//! `certificates.cert-manager.io` CRD (its v1 schema, for the fields a
//! client may set: unknown ones are pruned, types and enums checked), the
//! validating webhook's checks (cert-manager's `ValidateCertificate`), and
//! the controller that issues a Certificate into its Secret. Without
//! [`install`], the API server has no such resource and answers 404, as a
//! cluster without cert-manager does.

use std::time::Duration;

use serde_json::{json, Value};
use zdb_security::pki::{self, CertificateAuthority};

use super::admission::ApiError;
use super::api::FakeApi;

pub const GROUP: &str = "cert-manager.io";
pub const RESOURCE: &str = "certificates";
/// cert-manager's default validity (90 days).
const DEFAULT_DURATION: Duration = Duration::from_secs(2160 * 3600);
/// cert-manager's `MinimumCertificateDuration`.
const MINIMUM_DURATION: Duration = Duration::from_secs(3600);

const USAGES: &[&str] = &[
    "signing",
    "digital signature",
    "content commitment",
    "key encipherment",
    "key agreement",
    "data encipherment",
    "cert sign",
    "crl sign",
    "encipher only",
    "decipher only",
    "any",
    "server auth",
    "client auth",
    "code signing",
    "email protection",
    "s/mime",
    "ipsec end system",
    "ipsec tunnel",
    "ipsec user",
    "timestamping",
    "ocsp signing",
    "microsoft sgc",
    "netscape sgc",
];

fn strings() -> Value {
    json!({"type": "array", "items": {"type": "string"}})
}

/// The openAPIV3Schema of cert-manager.io/v1 Certificate (the spec fields
/// a client sets; status as the controller writes it).
pub fn schema() -> Value {
    json!({
        "type": "object",
        "required": ["spec"],
        "properties": {
            "apiVersion": {"type": "string"},
            "kind": {"type": "string"},
            "metadata": {"type": "object"},
            "spec": {
                "type": "object",
                "required": ["issuerRef", "secretName"],
                "properties": {
                    "commonName": {"type": "string"},
                    "dnsNames": strings(),
                    "ipAddresses": strings(),
                    "uris": strings(),
                    "emailAddresses": strings(),
                    "duration": {"type": "string"},
                    "renewBefore": {"type": "string"},
                    "isCA": {"type": "boolean"},
                    "secretName": {"type": "string"},
                    "revisionHistoryLimit": {"type": "integer", "format": "int32"},
                    "usages": {"type": "array", "items": {"type": "string", "enum": USAGES}},
                    "issuerRef": {
                        "type": "object",
                        "required": ["name"],
                        "properties": {
                            "group": {"type": "string"},
                            "kind": {"type": "string"},
                            "name": {"type": "string"},
                        },
                    },
                    "privateKey": {
                        "type": "object",
                        "properties": {
                            "algorithm": {"type": "string", "enum": ["RSA", "ECDSA", "Ed25519"]},
                            "encoding": {"type": "string", "enum": ["PKCS1", "PKCS8"]},
                            "rotationPolicy": {"type": "string", "enum": ["Never", "Always"]},
                            "size": {"type": "integer"},
                        },
                    },
                    "secretTemplate": {
                        "type": "object",
                        "properties": {
                            "annotations": {"type": "object", "additionalProperties": {"type": "string"}},
                            "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                        },
                    },
                },
            },
            "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
        },
    })
}

/// Go's `Duration.String()` of whole seconds, as the webhook prints one.
fn go_duration(duration: Duration) -> String {
    let secs = duration.as_secs();
    format!("{}h{}m{}s", secs / 3600, secs % 3600 / 60, secs % 60)
}

/// The validating webhook: what cert-manager refuses that the schema lets
/// through. Refusals are 422s naming the field, as the webhook's are.
pub fn webhook_errors(certificate: &Value, causes: &mut Vec<String>) -> Result<(), ApiError> {
    let spec = &certificate["spec"];
    let set = |field: &str| match &spec[field] {
        Value::String(s) => !s.is_empty(),
        Value::Array(items) => !items.is_empty(),
        _ => false,
    };
    if ![
        "commonName",
        "dnsNames",
        "uris",
        "emailAddresses",
        "ipAddresses",
    ]
    .iter()
    .any(|field| set(field))
    {
        causes.push("spec: Invalid value: \"\": at least one of commonName (from the commonName field or from a literalSubject), dnsNames, uriSANs, ipAddresses, emailSANs or otherNames must be set".into());
    }
    if spec["commonName"].as_str().is_some_and(|cn| cn.len() > 64) {
        causes.push("spec.commonName: Too long: may not be more than 64 bytes".into());
    }
    for (i, ip) in spec["ipAddresses"]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
    {
        let text = ip.as_str().unwrap_or("");
        if text.parse::<std::net::IpAddr>().is_err() {
            causes.push(format!(
                "spec.ipAddresses[{i}]: Invalid value: {text:?}: invalid IP address"
            ));
        }
    }
    let key = &spec["privateKey"];
    let size = key["size"].as_i64().unwrap_or(0);
    match key["algorithm"].as_str().unwrap_or("RSA") {
        "ECDSA" if ![0, 256, 384, 521].contains(&size) => causes.push(format!(
            "spec.privateKey.size: Unsupported value: {size}: supported values: \"256\", \"384\", \"521\""
        )),
        "RSA" if size != 0 && !(2048..=8192).contains(&size) => causes.push(format!(
            "spec.privateKey.size: Invalid value: {size}: must be between 2048 & 8192 for rsa keyAlgorithm"
        )),
        _ => {}
    }
    let issuer = &spec["issuerRef"];
    let group = issuer["group"].as_str().unwrap_or("");
    let kind = issuer["kind"].as_str().unwrap_or("");
    if matches!(group, "" | GROUP) && !matches!(kind, "" | "Issuer" | "ClusterIssuer") {
        causes.push(format!(
            "spec.issuerRef.kind: Invalid value: {kind:?}: must be one of Issuer or ClusterIssuer"
        ));
    }
    let duration = match spec["duration"].as_str() {
        None => DEFAULT_DURATION,
        Some(text) => crate::crd::parse_duration(text).ok_or_else(|| {
            ApiError::new(
                400,
                "BadRequest",
                format!("Certificate in version \"v1\" cannot be handled as a Certificate: time: invalid duration {text:?}"),
            )
        })?,
    };
    if duration < MINIMUM_DURATION {
        causes.push(format!(
            "spec.duration: Invalid value: {:?}: certificate duration must be greater than {}",
            go_duration(duration),
            go_duration(MINIMUM_DURATION)
        ));
    }
    if let Some(text) = spec["renewBefore"].as_str() {
        if crate::crd::parse_duration(text).is_some_and(|renew| renew >= duration) {
            causes.push(format!(
                "spec.renewBefore: Invalid value: {text:?}: certificate duration {} must be greater than renewBefore {text}",
                go_duration(duration)
            ));
        }
    }
    Ok(())
}

/// Installs cert-manager's CRD (and so its webhook) in the API server.
pub fn install(api: &FakeApi) {
    api.install_crd(GROUP, RESOURCE, schema());
}

/// cert-manager's controller on one Certificate: issues it with `ca`
/// (CN, DNS names and IP addresses from the spec, `duration` or 90 days),
/// writes its Secret (kubernetes.io/tls with `ca.crt`, as the CA issuer
/// writes it) and marks it Ready.
pub fn issue(api: &FakeApi, namespace: &str, name: &str, ca: &CertificateAuthority) {
    let certificate = api
        .get(GROUP, RESOURCE, namespace, name)
        .unwrap_or_else(|| panic!("no Certificate {namespace}/{name}"));
    let spec = &certificate["spec"];
    let list = |field: &str| -> Vec<String> {
        spec[field]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect()
    };
    let mut hosts = list("dnsNames");
    hosts.extend(list("ipAddresses"));
    let duration = spec["duration"]
        .as_str()
        .and_then(crate::crd::parse_duration)
        .unwrap_or(DEFAULT_DURATION);
    let common_name = spec["commonName"].as_str().unwrap_or("");
    let issued = if common_name == pki::NODE_COMMON_NAME {
        ca.issue_node(&hosts, duration)
    } else {
        ca.issue_client(common_name, duration)
    }
    .expect("the fake issuer issues");
    let secret_name = spec["secretName"].as_str().expect("a secretName");
    let encoded = |text: &str| {
        serde_json::to_value(k8s_openapi::ByteString(text.as_bytes().to_vec())).expect("base64")
    };
    let data = json!({
        "ca.crt": encoded(&ca.cert_pem()),
        "tls.crt": encoded(&issued.cert_pem),
        "tls.key": encoded(&issued.key_pem),
    });
    if api.get("", "secrets", namespace, secret_name).is_some() {
        api.edit("", "secrets", namespace, secret_name, |secret| {
            secret["data"] = data;
        });
    } else {
        api.create(
            "",
            "secrets",
            namespace,
            json!({"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
                   "metadata": {"name": secret_name,
                                "annotations": {"cert-manager.io/certificate-name": name}},
                   "data": data}),
        )
        .expect("the API server takes cert-manager's Secret");
    }
    set_ready(
        api,
        namespace,
        name,
        "True",
        "Ready",
        "Certificate is up to date and has not expired",
    );
}

/// The Ready condition cert-manager reports on a Certificate.
pub fn set_ready(
    api: &FakeApi,
    namespace: &str,
    name: &str,
    status: &str,
    reason: &str,
    message: &str,
) {
    api.edit(GROUP, RESOURCE, namespace, name, |certificate| {
        certificate["status"] = json!({"conditions": [{
            "type": "Ready", "status": status, "reason": reason, "message": message,
            "observedGeneration": certificate["metadata"]["generation"],
        }]});
    });
}
