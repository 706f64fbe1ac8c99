//! TLS, authentication and encryption at rest: the certificates the
//! operator makes, renews or asks cert-manager for, the Secrets it checks
//! and mounts, the flags the nodes get, and the TLS it speaks itself.

use std::time::Duration;

use k8s_openapi::ByteString;
use serde_json::{json, Value};
use zdb_security::pki::{self, CertificateAuthority};

use super::*;
use crate::connection::ClientTls;
use crate::crd::Phase;
use crate::names::{AUTH_MOUNT, ENCRYPTION_MOUNT, PREVIOUS_ENCRYPTION_MOUNT, TLS_MOUNT};
use crate::testing::cert_manager;

const DAY: Duration = Duration::from_secs(86_400);

pub fn with_tls(tls: Value) -> Value {
    let mut cluster = cluster(3, "zdb:v1");
    cluster["spec"]["tls"] = tls;
    cluster
}

/// A harness whose API server `setup` prepared before the cluster exists.
pub async fn harness_with(cluster: Value, setup: impl FnOnce(&FakeApi)) -> Harness {
    let (client, api) = FakeApi::start();
    api.namespace(NS, json!({}));
    setup(&api);
    api.create("zdb.io", "zdbclusters", NS, cluster)
        .expect("the API server accepts the cluster");
    Harness::around(client, api, NAME).with_finalizer().await
}

/// The cluster bootstrapped and settled, as [`bootstrapped`] does.
async fn settle(harness: &Harness) {
    harness.settle_statefulset("r1", "r1");
    for ordinal in 0..3 {
        harness.put_pod(ordinal, "r1", true, None);
    }
    harness.running_cluster(3);
    harness.reconcile().await;
}

fn text(secret: &Value, key: &str) -> String {
    let bytes: ByteString =
        serde_json::from_value(secret["data"][key].clone()).expect("a base64 value");
    String::from_utf8(bytes.0).expect("text")
}

fn secret(harness: &Harness, name: &str) -> Value {
    harness
        .api
        .get("", "secrets", NS, name)
        .unwrap_or_else(|| panic!("Secret {name}"))
}

fn secret_writes(requests: &[Recorded]) -> Vec<String> {
    requests
        .iter()
        .filter(|r| r.resource == "secrets" && r.verb != "get")
        .map(|r| format!("{} {}", r.verb, r.name.clone().unwrap_or_default()))
        .collect()
}

fn container(harness: &Harness) -> Value {
    harness.statefulset()["spec"]["template"]["spec"]["containers"][0].clone()
}

fn args(harness: &Harness) -> Vec<String> {
    container(harness)["args"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|a| a.as_str().map(str::to_owned))
        .collect()
}

/// The volume mounted at `path`, and its Secret source.
fn secret_volume(harness: &Harness, path: &str) -> Value {
    let mount = container(harness)["volumeMounts"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|m| m["mountPath"] == path)
        .cloned()
        .unwrap_or_else(|| panic!("nothing mounted at {path}"));
    assert_eq!(mount["readOnly"], true);
    let volumes = harness.statefulset()["spec"]["template"]["spec"]["volumes"].clone();
    let volume = volumes
        .as_array()
        .into_iter()
        .flatten()
        .find(|v| v["name"] == mount["name"])
        .cloned()
        .expect("the mount's volume");
    assert_eq!(volume["secret"]["defaultMode"], 0o400);
    volume["secret"].clone()
}

fn tls_flags() -> Vec<String> {
    vec![
        format!("--tls-ca-file={TLS_MOUNT}/ca.crt"),
        format!("--tls-cert-file={TLS_MOUNT}/tls.crt"),
        format!("--tls-key-file={TLS_MOUNT}/tls.key"),
    ]
}

fn degraded(harness: &Harness) -> (String, String) {
    let cluster = harness.stored_cluster();
    (
        condition(&cluster, status::DEGRADED).1,
        condition_message(&cluster, status::DEGRADED),
    )
}

#[tokio::test]
async fn operator_managed_tls_makes_a_ca_issues_certificates_and_mounts_them() {
    let harness = harness_with(with_tls(json!({"enabled": true})), |_| {}).await;
    let (_, requests, _) = harness.reconcile().await;

    // The CA, then the node and client certificates, each created by apply.
    assert_eq!(
        secret_writes(&requests),
        ["patch db-ca", "patch db-node-tls", "patch db-client-root"]
    );
    let ca_secret = secret(&harness, "db-ca");
    assert_eq!(ca_secret["type"], "Opaque");
    assert_eq!(ca_secret["metadata"]["ownerReferences"][0]["uid"], "uid-1");
    let ca =
        CertificateAuthority::from_pem(&text(&ca_secret, "ca.crt"), &text(&ca_secret, "ca.key"))
            .expect("a CA the operator signs with");
    let node = secret(&harness, "db-node-tls");
    assert_eq!(node["type"], "kubernetes.io/tls");
    assert_eq!(text(&node, "ca.crt"), ca.cert_pem());
    for host in [
        "db-0.db-nodes.prod.svc",
        "db-9.db-nodes.prod.svc",
        "db.prod.svc",
        "localhost",
    ] {
        pki::verify_issued(&ca.cert_pem(), &text(&node, "tls.crt"), Some(host))
            .unwrap_or_else(|e| panic!("{host}: {e}"));
    }
    let client = secret(&harness, "db-client-root");
    pki::verify_issued(&ca.cert_pem(), &text(&client, "tls.crt"), None)
        .expect("a client certificate of the cluster CA");
    assert!(
        pki::verify_issued(
            &ca.cert_pem(),
            &text(&client, "tls.crt"),
            Some("db.prod.svc")
        )
        .is_err(),
        "no server certificate"
    );
    let reasons = events(&requests);
    assert!(
        reasons.starts_with(&[
            "CertificateAuthorityCreated".to_owned(),
            "CertificateIssued".to_owned(),
            "CertificateIssued".to_owned()
        ]),
        "{reasons:?}"
    );

    // Mounted read-only, with the flags; probes stay on the status port.
    assert_eq!(
        secret_volume(&harness, TLS_MOUNT)["secretName"],
        "db-node-tls"
    );
    let flags = args(&harness);
    for flag in tls_flags() {
        assert!(flags.contains(&flag), "{flags:?}");
    }
    let probe = &container(&harness)["readinessProbe"]["httpGet"];
    assert_eq!(
        (probe["path"].clone(), probe["port"].clone()),
        (json!("/readyz"), json!("status"))
    );

    // A settled cluster: nothing is issued again, and the operator speaks
    // TLS with its client certificate.
    settle(&harness).await;
    harness.zdb.take_tls_seen();
    let (_, requests, _) = harness.reconcile().await;
    assert!(
        secret_writes(&requests).is_empty(),
        "{:?}",
        secret_writes(&requests)
    );
    let expected = ClientTls {
        ca: ca.cert_pem(),
        cert: text(&client, "tls.crt"),
        key: text(&client, "tls.key"),
    };
    let seen = harness.zdb.take_tls_seen();
    assert!(!seen.is_empty());
    assert!(seen.iter().all(|tls| tls.as_ref() == Some(&expected)));
    let running = harness.placement.running.lock().expect("lock").clone();
    assert_eq!(running["prod/db"].tls, Some(expected));
    assert_eq!(
        harness.stored_cluster().status.and_then(|s| s.phase),
        Some(Phase::Running)
    );
}

#[tokio::test]
async fn a_certificate_near_expiry_is_issued_again_from_the_same_ca_without_a_restart() {
    let harness = harness_with(with_tls(json!({"enabled": true})), |_| {}).await;
    harness.reconcile().await;
    settle(&harness).await;
    let ca_before = secret(&harness, "db-ca");
    let ca =
        CertificateAuthority::from_pem(&text(&ca_before, "ca.crt"), &text(&ca_before, "ca.key"))
            .expect("the CA");
    // A node certificate of the same CA with two days left (of a year).
    let near = ca
        .issue_node(&harness.names.node_certificate_dns_names(), 2 * DAY)
        .expect("issued");
    let encoded =
        |text: &str| serde_json::to_value(ByteString(text.as_bytes().to_vec())).expect("base64");
    harness
        .api
        .edit("", "secrets", NS, "db-node-tls", |secret| {
            secret["data"]["tls.crt"] = encoded(&near.cert_pem);
            secret["data"]["tls.key"] = encoded(&near.key_pem);
        });
    let template_before = harness.statefulset()["spec"]["template"].clone();
    let partition_before = harness.partition();

    let (_, requests, _) = harness.reconcile().await;
    assert_eq!(secret_writes(&requests), ["patch db-node-tls"]);
    assert!(events(&requests).contains(&"CertificateRenewed".to_owned()));
    let renewed = secret(&harness, "db-node-tls");
    assert_ne!(text(&renewed, "tls.crt"), near.cert_pem);
    assert_ne!(text(&renewed, "tls.key"), near.key_pem, "a new key too");
    pki::verify_issued(
        &ca.cert_pem(),
        &text(&renewed, "tls.crt"),
        Some("db-1.db-nodes.prod.svc"),
    )
    .expect("issued by the same CA");
    let left = pki::not_after(&text(&renewed, "tls.crt"))
        .expect("an expiry")
        .duration_since(std::time::SystemTime::now())
        .expect("in the future");
    assert!(left > 300 * DAY, "a year again: {left:?}");
    assert_eq!(
        secret(&harness, "db-ca")["data"],
        ca_before["data"],
        "the CA stays"
    );
    // The kubelet updates the files and the nodes reload them: no restart.
    assert_eq!(harness.statefulset()["spec"]["template"], template_before);
    assert_eq!(harness.partition(), partition_before);

    // The CA made anew: everything is issued again from it.
    harness
        .api
        .delete("", "secrets", NS, "db-ca", "Background")
        .expect("deleted");
    let (_, requests, _) = harness.reconcile().await;
    assert_eq!(
        secret_writes(&requests),
        ["patch db-ca", "patch db-node-tls", "patch db-client-root"]
    );
    let new_ca = text(&secret(&harness, "db-ca"), "ca.crt");
    assert_ne!(new_ca, ca.cert_pem());
    assert_eq!(text(&secret(&harness, "db-node-tls"), "ca.crt"), new_ca);
}

#[tokio::test]
async fn issuer_ref_asks_cert_manager_for_the_certificates_and_makes_no_ca() {
    let tls = json!({"enabled": true, "issuerRef": {"name": "cluster-ca", "kind": "ClusterIssuer"}, "validFor": "720h"});
    let harness = harness_with(with_tls(tls), cert_manager::install).await;
    let (_, requests, _) = harness.reconcile().await;

    let node = harness
        .api
        .get(cert_manager::GROUP, cert_manager::RESOURCE, NS, "db-node")
        .expect("the node Certificate");
    assert_eq!(node["metadata"]["ownerReferences"][0]["uid"], "uid-1");
    let spec = &node["spec"];
    assert_eq!(spec["secretName"], "db-node-tls");
    assert_eq!(spec["commonName"], "node");
    assert_eq!(spec["duration"], "720h");
    assert_eq!(spec["ipAddresses"], json!(["127.0.0.1"]));
    assert_eq!(
        spec["usages"],
        json!(["digital signature", "server auth", "client auth"])
    );
    assert_eq!(
        spec["issuerRef"],
        json!({"name": "cluster-ca", "kind": "ClusterIssuer", "group": "cert-manager.io"})
    );
    let dns: Vec<&str> = spec["dnsNames"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    for name in [
        "*.db-nodes.prod.svc",
        "*.db-nodes.prod.svc.cluster.local",
        "db.prod.svc",
        "localhost",
    ] {
        assert!(dns.contains(&name), "{dns:?}");
    }
    let client = harness
        .api
        .get(
            cert_manager::GROUP,
            cert_manager::RESOURCE,
            NS,
            "db-client-root",
        )
        .expect("the client Certificate");
    assert_eq!(client["spec"]["commonName"], "root");
    assert_eq!(
        client["spec"]["usages"],
        json!(["digital signature", "client auth"])
    );
    assert!(
        harness.api.get("", "secrets", NS, "db-ca").is_none(),
        "no CA of its own"
    );
    assert!(secret_writes(&requests).is_empty());

    // Until cert-manager has issued, the pods would not start: no StatefulSet.
    assert!(harness.api.get("apps", "statefulsets", NS, NAME).is_none());
    let cluster = harness.stored_cluster();
    assert_eq!(
        condition(&cluster, status::PROGRESSING),
        ("True".into(), status::WAITING_FOR_CERTIFICATES.into())
    );
    assert!(condition_message(&cluster, status::PROGRESSING)
        .contains("waiting for cert-manager to issue Secret db-node-tls (Certificate db-node: not issued yet)"));
    cert_manager::set_ready(
        &harness.api,
        NS,
        "db-node",
        "False",
        "Pending",
        "Issuer cluster-ca not found",
    );
    harness.reconcile().await;
    assert!(
        condition_message(&harness.stored_cluster(), status::PROGRESSING)
            .contains("Pending: Issuer cluster-ca not found")
    );

    let issuer = CertificateAuthority::generate("cert-manager CA", 365 * DAY).expect("a CA");
    cert_manager::issue(&harness.api, NS, "db-node", &issuer);
    cert_manager::issue(&harness.api, NS, "db-client-root", &issuer);
    let (_, requests, _) = harness.reconcile().await;
    assert!(events(&requests).contains(&"Created".to_owned()));
    assert_eq!(
        secret_volume(&harness, TLS_MOUNT)["secretName"],
        "db-node-tls"
    );
    assert!(tls_flags().iter().all(|flag| args(&harness).contains(flag)));
    assert!(
        secret_writes(&requests).is_empty(),
        "cert-manager's Secrets are its own"
    );

    settle(&harness).await;
    let issued = secret(&harness, "db-client-root");
    let seen = harness.zdb.take_tls_seen();
    assert!(seen.iter().any(|tls| tls
        .as_ref()
        .is_some_and(|tls| tls.cert == text(&issued, "tls.crt"))));
}

#[tokio::test]
async fn issuer_ref_without_cert_manager_says_to_install_it() {
    let tls = json!({"enabled": true, "issuerRef": {"name": "cluster-ca"}});
    let harness = harness_with(with_tls(tls), |_| {}).await;
    let (_, requests, _) = harness.reconcile().await;
    let refused: Vec<&Recorded> = requests
        .iter()
        .filter(|r| r.resource == "certificates")
        .collect();
    assert_eq!(refused.len(), 1);
    assert_eq!(refused[0].code, 404);
    let (reason, message) = degraded(&harness);
    assert_eq!(reason, status::CERTIFICATE_FAILED);
    assert!(
        message.contains("install cert-manager, or drop tls.issuerRef"),
        "{message}"
    );
    assert!(harness.api.get("apps", "statefulsets", NS, NAME).is_none());
}

#[tokio::test]
async fn cert_manager_refuses_what_its_webhook_refuses() {
    let (_, api) = FakeApi::start();
    api.namespace(NS, json!({}));
    cert_manager::install(&api);
    let certificate = |spec: Value| {
        json!({"apiVersion": "cert-manager.io/v1", "kind": "Certificate",
               "metadata": {"name": "c"}, "spec": spec})
    };
    let error = api
        .create(
            cert_manager::GROUP,
            cert_manager::RESOURCE,
            NS,
            certificate(json!({
            "secretName": "s", "issuerRef": {"name": "i", "kind": "Issuers"},
            "duration": "30m", "privateKey": {"algorithm": "ECDSA", "size": 512}})),
        )
        .expect_err("refused");
    assert_eq!(error.code, 422);
    for expected in [
        "at least one of commonName",
        "spec.issuerRef.kind: Invalid value: \"Issuers\"",
        "certificate duration must be greater than 1h0m0s",
        "spec.privateKey.size: Unsupported value: 512",
    ] {
        assert!(
            error.message.contains(expected),
            "{expected}: {}",
            error.message
        );
    }
    let error = api
        .create(
            cert_manager::GROUP,
            cert_manager::RESOURCE,
            NS,
            certificate(json!({
            "commonName": "x", "issuerRef": {"name": "i"}})),
        )
        .expect_err("refused by the schema");
    assert!(
        error.message.contains("spec.secretName: Required value"),
        "{}",
        error.message
    );
    let error = api
        .create(cert_manager::GROUP, cert_manager::RESOURCE, NS, certificate(json!({
            "commonName": "x", "secretName": "s", "issuerRef": {"name": "i"}, "usages": ["server"]})))
        .expect_err("refused by the schema");
    assert!(
        error.message.contains("Unsupported value: \"server\""),
        "{}",
        error.message
    );
}

fn provided_secret(name: &str, ca: &CertificateAuthority, cert: &pki::IssuedCert) -> Value {
    let encoded =
        |text: &str| serde_json::to_value(ByteString(text.as_bytes().to_vec())).expect("base64");
    json!({"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
           "metadata": {"name": name},
           "data": {"ca.crt": encoded(&ca.cert_pem()), "tls.crt": encoded(&cert.cert_pem),
                    "tls.key": encoded(&cert.key_pem)}})
}

#[tokio::test]
async fn a_provided_secret_is_checked_and_mounted_and_nothing_is_created() {
    let tls = json!({"enabled": true, "secretName": "db-certs"});
    let harness = harness_with(with_tls(tls), |_| {}).await;

    // Missing: the pods could not start, and the status says why.
    let (_, requests, _) = harness.reconcile().await;
    assert!(harness.api.get("apps", "statefulsets", NS, NAME).is_none());
    let (reason, message) = degraded(&harness);
    assert_eq!(reason, status::SECRET_MISSING);
    assert!(
        message.contains("Secret db-certs (the node certificate, tls.secretName) does not exist: create it in namespace prod"),
        "{message}"
    );
    assert_eq!(warnings(&requests).len(), 1);

    // A certificate for other names: peers would refuse it.
    let ca = CertificateAuthority::generate("their CA", 365 * DAY).expect("a CA");
    let elsewhere = ca
        .issue_node(&["db.example.com".into()], 30 * DAY)
        .expect("issued");
    harness
        .api
        .create(
            "",
            "secrets",
            NS,
            provided_secret("db-certs", &ca, &elsewhere),
        )
        .expect("created");
    harness.reconcile().await;
    assert!(harness.api.get("apps", "statefulsets", NS, NAME).is_none());
    let (_, message) = degraded(&harness);
    assert!(message.contains("peers would refuse it"), "{message}");

    // A client certificate, not a node's.
    let user = ca.issue_client("db-node", 30 * DAY).expect("issued");
    harness
        .api
        .delete("", "secrets", NS, "db-certs", "Background")
        .expect("deleted");
    let mut user_secret = provided_secret("db-certs", &ca, &user);
    user_secret["type"] = json!("Opaque");
    harness
        .api
        .create("", "secrets", NS, user_secret)
        .expect("created");
    harness.reconcile().await;
    assert!(harness.api.get("apps", "statefulsets", NS, NAME).is_none());
    let (_, message) = degraded(&harness);
    assert!(
        message.contains(
            "Secret db-certs (the node certificate, tls.secretName): its tls.crt does not verify"
        ),
        "{message}"
    );

    let good = ca
        .issue_node(&harness.names.node_certificate_dns_names(), 30 * DAY)
        .expect("issued");
    harness
        .api
        .delete("", "secrets", NS, "db-certs", "Background")
        .expect("deleted");
    harness
        .api
        .create("", "secrets", NS, provided_secret("db-certs", &ca, &good))
        .expect("created");
    let (_, requests, _) = harness.reconcile().await;
    assert!(secret_writes(&requests).is_empty(), "creates nothing");
    assert!(requests.iter().all(|r| r.resource != "certificates"));
    assert_eq!(secret_volume(&harness, TLS_MOUNT)["secretName"], "db-certs");
    assert!(tls_flags().iter().all(|flag| args(&harness).contains(flag)));
    assert_eq!(
        condition(&harness.stored_cluster(), status::DEGRADED).0,
        "False"
    );

    // Without a client certificate of its own, the operator presents the node's.
    settle(&harness).await;
    let seen = harness.zdb.take_tls_seen();
    assert!(seen
        .iter()
        .all(|tls| tls.as_ref().is_some_and(|tls| tls.cert == good.cert_pem)));
    for name in ["db-ca", "db-node-tls", "db-client-root"] {
        assert!(harness.api.get("", "secrets", NS, name).is_none(), "{name}");
    }
}

#[tokio::test]
async fn auth_without_tls_is_refused_by_the_crd_and_by_the_operator() {
    let (_, api) = FakeApi::start();
    api.namespace(NS, json!({}));
    let mut refused = cluster(3, "zdb:v1");
    refused["spec"]["auth"] = json!({"rootPasswordSecret": {"name": "db-root"}});
    let error = api
        .create("zdb.io", "zdbclusters", NS, refused.clone())
        .expect_err("the CRD refuses it");
    assert_eq!(error.code, 422);
    assert!(
        error.message.contains("auth needs tls.enabled: true"),
        "{}",
        error.message
    );
    refused["spec"]["tls"] = json!({"enabled": false});
    assert!(api.create("zdb.io", "zdbclusters", NS, refused).is_err());

    // Under an older CRD without the rule, the operator refuses it itself.
    let harness = Harness::new(cluster(3, "zdb:v1")).await;
    harness.edit_spec_unchecked(|spec| {
        spec["auth"] = json!({"rootPasswordSecret": {"name": "db-root", "key": "password"}});
    });
    harness.reconcile().await;
    let (reason, message) = degraded(&harness);
    assert_eq!(reason, status::INVALID_SPEC);
    assert!(
        message.contains("auth needs tls.enabled: true"),
        "{message}"
    );
    assert!(harness.api.get("apps", "statefulsets", NS, NAME).is_none());
}

#[tokio::test]
async fn tls_cannot_be_switched_on_for_a_running_cluster() {
    let harness = bootstrapped(3).await;
    let error = harness
        .clusters()
        .patch(
            NAME,
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"tls": {"enabled": true}}})),
        )
        .await
        .expect_err("refused");
    assert!(
        error
            .to_string()
            .contains("tls.enabled cannot change once the cluster exists"),
        "{error}"
    );
}

fn opaque(name: &str, data: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name}, "stringData": data})
}

#[tokio::test]
async fn auth_and_encryption_mount_their_secrets_and_pass_their_flags() {
    let mut spec = with_tls(json!({"enabled": true}));
    spec["spec"]["auth"] = json!({"rootPasswordSecret": {"name": "db-root", "key": "pw"}});
    spec["spec"]["encryption"] = json!({
        "masterKeySecret": {"name": "db-key-2"},
        "previousMasterKeySecret": {"name": "db-key-1"},
    });
    let harness = harness_with(spec, |api| {
        for secret in [
            opaque("db-root", json!({"pw": "correct horse"})),
            opaque("db-key-2", json!({"master.key": "ab".repeat(32)})),
            opaque("db-key-1", json!({"master.key": "not hex"})),
        ] {
            api.create("", "secrets", NS, secret).expect("created");
        }
    })
    .await;

    // A previous key the node could not read: the pods wait.
    harness.reconcile().await;
    assert!(harness.api.get("apps", "statefulsets", NS, NAME).is_none());
    let (reason, message) = degraded(&harness);
    assert_eq!(reason, status::SECRET_MISSING);
    assert!(
        message.contains("Secret db-key-1 (the previous master key, encryption.previousMasterKeySecret): key \"master.key\": not a master key"),
        "{message}"
    );
    harness.api.edit("", "secrets", NS, "db-key-1", |secret| {
        secret["data"]["master.key"] =
            serde_json::to_value(ByteString(format!("{}\n", "cd".repeat(32)).into_bytes()))
                .expect("base64");
    });
    harness.reconcile().await;
    assert_eq!(
        condition(&harness.stored_cluster(), status::DEGRADED).0,
        "False"
    );

    let auth = secret_volume(&harness, AUTH_MOUNT);
    assert_eq!(auth["secretName"], "db-root");
    assert_eq!(
        auth["items"],
        json!([{"key": "pw", "path": "root-password"}])
    );
    let key = secret_volume(&harness, ENCRYPTION_MOUNT);
    assert_eq!(key["secretName"], "db-key-2");
    assert_eq!(
        key["items"],
        json!([{"key": "master.key", "path": "master.key"}])
    );
    assert_eq!(
        secret_volume(&harness, PREVIOUS_ENCRYPTION_MOUNT)["secretName"],
        "db-key-1"
    );
    let flags = args(&harness);
    for flag in [
        format!("--auth-root-password-file={AUTH_MOUNT}/root-password"),
        format!("--encryption-key-file={ENCRYPTION_MOUNT}/master.key"),
        format!("--encryption-previous-key-file={PREVIOUS_ENCRYPTION_MOUNT}/master.key"),
    ] {
        assert!(flags.contains(&flag), "{flag}: {flags:?}");
    }

    // Dropping the previous key once every node rewrapped: a new template.
    let hash = |h: &Harness| {
        h.statefulset()["metadata"]["annotations"][crate::names::TEMPLATE_HASH_ANNOTATION].clone()
    };
    let before = hash(&harness);
    harness
        // A merge patch: null removes the field.
        .edit_spec(|spec| spec["encryption"]["previousMasterKeySecret"] = Value::Null)
        .await;
    harness.reconcile().await;
    assert_ne!(hash(&harness), before);
    assert!(!args(&harness)
        .iter()
        .any(|a| a.starts_with("--encryption-previous-key-file")));
}

#[tokio::test]
async fn secrets_the_fake_api_server_refuses_as_a_real_one() {
    let (_, api) = FakeApi::start();
    api.namespace(NS, json!({}));
    let error = api
        .create(
            "",
            "secrets",
            NS,
            json!({"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
                                           "metadata": {"name": "t"}, "data": {"tls.crt": "YQ=="}}),
        )
        .expect_err("refused");
    assert_eq!(error.code, 422);
    assert!(
        error.message.contains("data[tls.key]: Required value"),
        "{}",
        error.message
    );
    // cert-manager not installed: no such resource.
    let client = api.client(Identity::Admin);
    let certificates: kube::Api<crate::resources::certificate::Certificate> =
        kube::Api::namespaced(client, NS);
    let error = certificates.get("x").await.expect_err("404");
    assert!(
        error
            .to_string()
            .contains("the server could not find the requested resource"),
        "{error}"
    );
}

#[tokio::test]
async fn a_secret_in_the_way_is_a_problem_with_the_api_servers_words() {
    // A Secret of the same name, of another type, that the user made.
    let harness = harness_with(with_tls(json!({"enabled": true})), |api| {
        api.create(
            "",
            "secrets",
            NS,
            opaque("db-node-tls", json!({"note": "mine"})),
        )
        .expect("created");
    })
    .await;
    harness.reconcile().await;
    let (reason, message) = degraded(&harness);
    assert_eq!(reason, status::CERTIFICATE_FAILED);
    assert!(
        message.contains("cannot apply Secret db-node-tls: Secret \"db-node-tls\" is invalid: type: Invalid value: \"kubernetes.io/tls\": field is immutable"),
        "{message}"
    );
    assert!(
        harness.api.get("apps", "statefulsets", NS, NAME).is_none(),
        "no pod could mount it"
    );
    // The CA and the client certificate were made all the same.
    assert!(harness.api.get("", "secrets", NS, "db-ca").is_some());
    assert!(harness
        .api
        .get("", "secrets", NS, "db-client-root")
        .is_some());
}
