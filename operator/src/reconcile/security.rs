//! The first step of a pass, before anything that starts pods: the
//! certificates, and every Secret the pods will mount.
//!
//! - TLS, by source: operator-managed ([`certificates`]),
//!   cert-manager (the `Certificate` objects applied, their Secrets awaited),
//!   or a Secret the user provides (checked: its keys, and that its node
//!   certificate verifies against its CA for the pods' names, as peers will
//!   check it). It also yields the operator's own client certificate.
//! - Authentication and encryption: the named Secrets exist and hold a
//!   usable password and master key.
//!
//! A Secret the pods mount that is missing or unusable would leave them
//! waiting in ContainerCreating (or crash-looping) with nothing in the
//! cluster's status; instead the pass holds the StatefulSet until it is
//! fixed, and says what is missing: a problem when the user must act, a
//! wait while cert-manager issues.

use k8s_openapi::api::core::v1::Secret;
use kube::Api;
use zdb_security::pki;

use super::apply::{apply, describe};
use super::certificates;
use super::events::Events;
use super::status::{
    Problem, APPLY_FAILED, CERTIFICATE_FAILED, INVALID_SPEC, READ_FAILED, SECRET_MISSING,
};
use crate::connection::ClientTls;
use crate::crd::{IssuerRef, TlsSource, ZdbCluster};
use crate::error::Error;
use crate::names::ClusterNames;
use crate::resources::certificate::{self, Certificate};
use crate::resources::tls::{self, TlsTriple, CA_CERT_KEY, TLS_CERT_KEY, TLS_KEY_KEY};

/// What the security step found.
#[derive(Debug, Default)]
pub struct Security {
    /// How the operator speaks to the nodes: None for plaintext.
    pub client_tls: Option<ClientTls>,
    pub problems: Vec<Problem>,
    /// What the pods wait for that is under way (cert-manager issuing).
    pub waiting: Option<String>,
    /// The pods could not start: the StatefulSet is not applied.
    pub hold: bool,
}

impl Security {
    fn problem(&mut self, reason: &'static str, message: impl Into<String>) {
        self.problems.push(Problem::new(reason, message));
    }

    /// A problem that would leave the pods unable to start.
    fn refuse(&mut self, reason: &'static str, message: impl Into<String>) {
        self.problem(reason, message);
        self.hold = true;
    }

    fn wait(&mut self, message: String, hold: bool) {
        self.waiting = Some(match self.waiting.take() {
            Some(before) => format!("{before}; {message}"),
            None => message,
        });
        self.hold |= hold;
    }
}

/// Why a master key file would not load on the node: 32 bytes as 64 hex
/// characters, surrounding whitespace allowed.
fn master_key_problem(bytes: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(bytes).ok().map(str::trim);
    match text {
        Some(key) if key.len() == 64 && key.bytes().all(|b| b.is_ascii_hexdigit()) => None,
        _ => Some(
            "not a master key: 32 random bytes as 64 hex characters (`openssl rand -hex 32`)"
                .into(),
        ),
    }
}

fn password_problem(bytes: &[u8]) -> Option<String> {
    match std::str::from_utf8(bytes).map(str::trim) {
        Ok(password) if !password.is_empty() => None,
        Ok(_) => Some("the password is empty".into()),
        Err(_) => Some("the password is not UTF-8 text".into()),
    }
}

struct Step<'a> {
    cluster: &'a ZdbCluster,
    names: &'a ClusterNames,
    secrets: Api<Secret>,
    client: &'a kube::Client,
    events: &'a Events<'a>,
    out: Security,
}

impl Step<'_> {
    /// A Secret the spec names; missing (or failing `check`) is a problem,
    /// and holds the pods when they mount it.
    async fn required(
        &mut self,
        name: &str,
        purpose: &'static str,
        mounted: bool,
        check: impl FnOnce(&Secret) -> Option<String>,
    ) -> Option<Secret> {
        let secret = match self.secrets.get_opt(name).await {
            Ok(secret) => secret,
            Err(error) => {
                self.out.problem(
                    READ_FAILED,
                    format!(
                        "cannot read Secret {name} ({purpose}): {}",
                        describe(&error)
                    ),
                );
                return None;
            }
        };
        let found = match secret {
            None => Err(Error::SecretMissing {
                secret: name.to_owned(),
                purpose,
                remedy: format!("create it in namespace {}", self.names.namespace),
            }),
            Some(secret) => match check(&secret) {
                None => Ok(secret),
                Some(problem) => Err(Error::SecretInvalid {
                    secret: name.to_owned(),
                    purpose,
                    problem,
                }),
            },
        };
        match found {
            Ok(secret) => Some(secret),
            Err(error) if mounted => {
                self.out.refuse(SECRET_MISSING, error.to_string());
                None
            }
            Err(error) => {
                self.out.problem(SECRET_MISSING, error.to_string());
                None
            }
        }
    }

    /// One key of a Secret, checked by `check`.
    async fn key(
        &mut self,
        name: &str,
        key: &str,
        purpose: &'static str,
        check: fn(&[u8]) -> Option<String>,
    ) {
        self.required(name, purpose, true, |secret| {
            match secret.data.as_ref().and_then(|data| data.get(key)) {
                None => Some(format!("it has no key {key:?}")),
                Some(value) => check(&value.0).map(|problem| format!("key {key:?}: {problem}")),
            }
        })
        .await;
    }

    async fn managed(&mut self) {
        let tls = self.cluster.spec.tls.clone().unwrap_or_default();
        let (Some(valid_for), Some(ca_valid_for)) = (tls.valid_for(), tls.ca_valid_for()) else {
            self.out.refuse(
                INVALID_SPEC,
                "tls.validFor and tls.caValidFor must be durations such as 8760h",
            );
            return;
        };
        let managed = certificates::ensure(
            self.cluster,
            self.names,
            &self.secrets,
            self.events,
            valid_for,
            ca_valid_for,
        )
        .await;
        self.out.client_tls = managed.client;
        self.out.problems.extend(managed.problems);
        self.out.hold |= !managed.node_ready;
    }

    async fn cert_manager(&mut self, issuer: &IssuerRef) {
        let certificates: Api<Certificate> =
            Api::namespaced(self.client.clone(), &self.names.namespace);
        let built =
            certificate::node_certificate(self.cluster, self.names, issuer).and_then(|node| {
                Ok([
                    node,
                    certificate::client_certificate(self.cluster, self.names, issuer)?,
                ])
            });
        let wanted = match built {
            Ok(wanted) => wanted,
            Err(error) => {
                self.out.refuse(CERTIFICATE_FAILED, error.to_string());
                return;
            }
        };
        let mut not_ready = Vec::new();
        for wanted in &wanted {
            let name = wanted.metadata.name.clone().unwrap_or_default();
            match apply(&certificates, &name, wanted).await {
                Ok(applied) => not_ready.push(applied.not_ready()),
                Err(kube::Error::Api(status)) if status.code == 404 => {
                    self.out.refuse(
                        CERTIFICATE_FAILED,
                        format!(
                            "cannot create cert-manager Certificate {name}: the API server has no certificates.cert-manager.io ({}): install cert-manager, or drop tls.issuerRef",
                            status.message
                        ),
                    );
                    return;
                }
                Err(error) => {
                    self.out.problem(
                        APPLY_FAILED,
                        format!(
                            "cannot apply cert-manager Certificate {name}: {}",
                            describe(&error)
                        ),
                    );
                    not_ready.push(None);
                }
            }
        }
        let targets = [
            (
                self.names.node_tls_secret(),
                self.names.node_certificate(),
                true,
            ),
            (
                self.names.client_tls_secret(),
                self.names.client_certificate(),
                false,
            ),
        ];
        for ((secret, certificate, mounted), status) in targets.into_iter().zip(not_ready) {
            let found = match self.secrets.get_opt(&secret).await {
                Ok(found) => found,
                Err(error) => {
                    self.out.problem(
                        READ_FAILED,
                        format!("cannot read Secret {secret}: {}", describe(&error)),
                    );
                    continue;
                }
            };
            let Some(found) = found else {
                let status = status.unwrap_or_else(|| "not issued yet".into());
                self.out.wait(
                    format!(
                        "waiting for cert-manager to issue Secret {secret} (Certificate {certificate}: {status})"
                    ),
                    mounted,
                );
                continue;
            };
            match TlsTriple::of(&found) {
                Some(triple) if !mounted => self.out.client_tls = Some(triple.into()),
                Some(_) => {}
                None => {
                    let missing =
                        tls::missing_keys(&found, &[CA_CERT_KEY, TLS_CERT_KEY, TLS_KEY_KEY]);
                    self.out.refuse(
                        SECRET_MISSING,
                        format!(
                            "cert-manager's Secret {secret} lacks {}: use an issuer that provides the CA certificate (ca.crt), such as a CA or Vault issuer",
                            missing.join(", ")
                        ),
                    );
                }
            }
        }
    }

    async fn provided(&mut self, secret: &str, client_secret: Option<&str>) {
        let server_name = self.names.node_server_name();
        let node = self
            .required(secret, "the node certificate, tls.secretName", true, |found| {
                let Some(triple) = TlsTriple::of(found) else {
                    let missing = tls::missing_keys(found, &[CA_CERT_KEY, TLS_CERT_KEY, TLS_KEY_KEY]);
                    return Some(format!("it lacks {}", missing.join(", ")));
                };
                if let Err(error) = pki::verify_issued(&triple.ca, &triple.cert, Some(&server_name)) {
                    return Some(format!(
                        "its tls.crt does not verify against its ca.crt as a node certificate for {server_name} ({error}): peers would refuse it; it needs SANs *.{}.{}.svc and {}.{}.svc",
                        self.names.headless_service(), self.names.namespace, self.names.client_service(), self.names.namespace
                    ));
                }
                match tls::common_name(&triple.cert) {
                    Some(name) if name == pki::NODE_COMMON_NAME => None,
                    other => Some(format!(
                        "its tls.crt names {}, not CN {:?}: peers would take it for a user and refuse node-to-node calls",
                        other.map_or("no single common name".to_owned(), |name| format!("CN {name:?}")),
                        pki::NODE_COMMON_NAME
                    )),
                }
            })
            .await;
        let Some(client_secret) = client_secret else {
            // The node certificate serves as the operator's client
            // certificate too.
            self.out.client_tls = node.as_ref().and_then(TlsTriple::of).map(Into::into);
            return;
        };
        let client = self
            .required(
                client_secret,
                "the operator's client certificate, tls.clientSecretName",
                false,
                |found| {
                    let Some(triple) = TlsTriple::of(found) else {
                        let missing =
                            tls::missing_keys(found, &[CA_CERT_KEY, TLS_CERT_KEY, TLS_KEY_KEY]);
                        return Some(format!("it lacks {}", missing.join(", ")));
                    };
                    pki::verify_issued(&triple.ca, &triple.cert, None)
                        .err()
                        .map(|error| format!("its tls.crt does not verify against its ca.crt as a client certificate ({error})"))
                },
            )
            .await;
        self.out.client_tls = client.as_ref().and_then(TlsTriple::of).map(Into::into);
    }
}

pub async fn prepare(
    cluster: &ZdbCluster,
    names: &ClusterNames,
    client: &kube::Client,
    events: &Events<'_>,
) -> Security {
    let mut step = Step {
        cluster,
        names,
        secrets: Api::namespaced(client.clone(), &names.namespace),
        client,
        events,
        out: Security::default(),
    };
    let source = cluster.tls_source();
    if cluster.spec.auth.is_some() && source.is_none() {
        step.out.refuse(
            INVALID_SPEC,
            "auth needs tls.enabled: true (passwords and certificates must not cross the network in the clear): turn TLS on, or drop auth",
        );
    }
    match source {
        None => {}
        Some(TlsSource::Managed) => step.managed().await,
        Some(TlsSource::CertManager(issuer)) => step.cert_manager(issuer).await,
        Some(TlsSource::Provided {
            secret,
            client_secret,
        }) => step.provided(secret, client_secret).await,
    }
    if let Some(auth) = &cluster.spec.auth {
        let secret = &auth.root_password_secret;
        step.key(
            &secret.name,
            &secret.key,
            "the root password, auth.rootPasswordSecret",
            password_problem,
        )
        .await;
    }
    if let Some(encryption) = &cluster.spec.encryption {
        let key = &encryption.master_key_secret;
        step.key(
            &key.name,
            &key.key,
            "the master key, encryption.masterKeySecret",
            master_key_problem,
        )
        .await;
        if let Some(previous) = &encryption.previous_master_key_secret {
            step.key(
                &previous.name,
                &previous.key,
                "the previous master key, encryption.previousMasterKeySecret",
                master_key_problem,
            )
            .await;
        }
    }
    step.out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn master_keys_and_passwords_are_checked_as_the_node_reads_them() {
        let key = "ab".repeat(32);
        assert_eq!(master_key_problem(key.as_bytes()), None);
        assert_eq!(master_key_problem(format!("{key}\n").as_bytes()), None);
        for bad in ["", "abc", &"zz".repeat(32), &"ab".repeat(33)] {
            assert!(master_key_problem(bad.as_bytes()).is_some(), "{bad:?}");
        }
        assert_eq!(password_problem(b"hunter2\n"), None);
        assert!(password_problem(b" \n").is_some());
        assert!(password_problem(&[0xff, 0xfe]).is_some());
    }
}
