//! The Helm chart, without a helm binary: every template is rendered with
//! a Go-template engine (the chart renderer the fake API server also uses)
//! with the default values and with the example values; every object must
//! parse into its k8s-openapi type without losing a field, the operator's
//! pod must pass PodSecurity "restricted", the ClusterRole grants no
//! wildcard, and the security and Redis values become the ZdbCluster's
//! spec (which the CRD accepts). (That it grants exactly the calls the operator makes is
//! checked by the operator's own tests, which run against it.)

#[path = "../src/testing/chart.rs"]
#[allow(dead_code)]
mod chart;
#[path = "../src/testing/openapi.rs"]
#[allow(dead_code)]
mod openapi;
#[path = "../src/testing/pod_security.rs"]
#[allow(dead_code)]
mod pod_security;

use chart::{default_values, example_values, merge, render, NAMESPACE};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::ServiceAccount;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;
use zdb_operator::crd::ZdbCluster;

/// Parses into `T` and checks that no field was dropped on the way (a
/// misspelt or misplaced field would be).
fn typed<T: DeserializeOwned + Serialize>(object: &Value) -> T {
    let typed: T = serde_json::from_value(object.clone())
        .unwrap_or_else(|e| panic!("{}: {e}", object["kind"]));
    let back = serde_json::to_value(&typed).expect("serializes");
    assert_eq!(&back, object, "fields lost parsing {}", object["kind"]);
    typed
}

#[derive(Default)]
struct Objects {
    deployments: Vec<Deployment>,
    accounts: Vec<ServiceAccount>,
    roles: Vec<ClusterRole>,
    bindings: Vec<ClusterRoleBinding>,
    clusters: Vec<ZdbCluster>,
    notes: String,
}

fn objects(values: &Value) -> Objects {
    let mut objects = Objects {
        notes: render(values)
            .into_iter()
            .find(|(name, _)| name == "NOTES.txt")
            .map(|(_, notes)| notes)
            .unwrap_or_default(),
        ..Objects::default()
    };
    for (name, object) in chart::documents(values) {
        match object["kind"].as_str() {
            Some("Deployment") => objects.deployments.push(typed(&object)),
            Some("ServiceAccount") => objects.accounts.push(typed(&object)),
            Some("ClusterRole") => objects.roles.push(typed(&object)),
            Some("ClusterRoleBinding") => objects.bindings.push(typed(&object)),
            Some("ZdbCluster") => objects
                .clusters
                .push(serde_json::from_value(object.clone()).expect("a ZdbCluster")),
            other => panic!("{name} renders an unexpected kind {other:?}"),
        }
    }
    objects
}

fn check_wiring(objects: &Objects) {
    assert_eq!(objects.deployments.len(), 1);
    assert_eq!(objects.accounts.len(), 1);
    assert_eq!(objects.roles.len(), 1);
    assert_eq!(objects.bindings.len(), 1);
    let account = objects.accounts[0].metadata.name.clone().expect("named");
    let pod = objects.deployments[0]
        .spec
        .as_ref()
        .and_then(|s| s.template.spec.as_ref())
        .expect("pod spec");
    assert_eq!(pod.service_account_name.as_deref(), Some(account.as_str()));
    let binding = &objects.bindings[0];
    assert_eq!(binding.role_ref.kind, "ClusterRole");
    assert_eq!(
        Some(&binding.role_ref.name),
        objects.roles[0].metadata.name.as_ref()
    );
    let subject = &binding.subjects.as_ref().expect("subjects")[0];
    assert_eq!(
        (subject.name.as_str(), subject.namespace.as_deref()),
        (account.as_str(), Some(NAMESPACE))
    );
    let container = &pod.containers[0];
    let env: Vec<&str> = container
        .env
        .iter()
        .flatten()
        .map(|e| e.name.as_str())
        .collect();
    for needed in ["POD_NAME", "POD_NAMESPACE", "WATCH_NAMESPACES"] {
        assert!(env.contains(&needed), "operator env lacks {needed}");
    }
}

#[test]
fn chart_renders_with_default_values() {
    let objects = objects(&default_values());
    check_wiring(&objects);
    assert!(objects.clusters.is_empty(), "no cluster unless asked for");
    let deployment = &objects.deployments[0];
    assert_eq!(deployment.spec.as_ref().and_then(|s| s.replicas), Some(2));
    assert!(objects.notes.contains("every namespace"));
}

#[test]
fn chart_renders_with_example_values() {
    let objects = objects(&example_values());
    check_wiring(&objects);
    let [cluster] = objects.clusters.as_slice() else {
        panic!("one ZdbCluster from the values");
    };
    assert_eq!(cluster.spec.replicas, 5);
    assert_eq!(
        cluster.spec.storage.storage_class_name.as_deref(),
        Some("fast-ssd")
    );
    assert!(cluster.spec.resources.is_some());
    let container = &objects.deployments[0]
        .spec
        .as_ref()
        .and_then(|s| s.template.spec.clone())
        .expect("pod")
        .containers[0];
    let watch = container
        .env
        .iter()
        .flatten()
        .find(|e| e.name == "WATCH_NAMESPACES")
        .and_then(|e| e.value.clone());
    assert_eq!(watch.as_deref(), Some("databases,staging"));
    assert!(!container.args.iter().flatten().any(|a| a == "--log-json"));
    assert!(objects
        .notes
        .contains("kubectl -n zdb-system get zdbclusters orders"));
}

#[test]
fn cluster_role_grants_no_wildcards() {
    let objects = objects(&default_values());
    for rule in objects.roles[0].rules.iter().flatten() {
        assert!(rule.resource_names.is_none() && rule.non_resource_urls.is_none());
        for verb in &rule.verbs {
            assert_ne!(verb, "*", "no wildcard verbs");
        }
        for resource in rule.resources.iter().flatten() {
            assert_ne!(resource, "*", "no wildcard resources");
        }
    }
}

#[test]
fn operator_pod_passes_pod_security_restricted() {
    for values in [default_values(), example_values()] {
        let objects = objects(&values);
        let pod = objects.deployments[0]
            .spec
            .as_ref()
            .and_then(|s| s.template.spec.clone())
            .expect("a pod spec");
        assert_eq!(
            pod_security::violations(&pod, pod_security::Level::Restricted),
            Vec::<String>::new()
        );
    }
}

#[test]
fn the_pod_security_check_can_fail() {
    // The Deployment as it was: no seccomp profile, capabilities kept.
    let pod: k8s_openapi::api::core::v1::PodSpec = serde_json::from_value(serde_json::json!({
        "securityContext": {"runAsNonRoot": true, "runAsUser": 65532},
        "containers": [{"name": "operator", "image": "x",
                        "securityContext": {"allowPrivilegeEscalation": false}}],
    }))
    .expect("a pod spec");
    let violations = pod_security::violations(&pod, pod_security::Level::Restricted);
    assert_eq!(violations.len(), 2, "{violations:#?}");
    assert!(violations[0].starts_with("unrestricted capabilities"));
    assert!(violations[1].starts_with("seccompProfile"));
}

#[test]
fn chart_crd_is_the_generated_one() {
    let in_chart = chart::chart_dir().join("crds/zdbcluster.yaml");
    let text = std::fs::read_to_string(in_chart).expect("the chart holds the CRD");
    assert_eq!(text, zdb_operator::crd_yaml().expect("renders"));
}

#[test]
fn deployment_renders_as_helm_would() {
    // Whitespace control and the helpers behave as in Helm: exact lines.
    let rendered = render(&default_values());
    let (_, deployment) = rendered
        .iter()
        .find(|(name, _)| name == "deployment.yaml")
        .expect("deployment.yaml");
    assert!(deployment.contains(
        "          args:\n            - --lease-name=zdb-zdb-operator\n            - --log-json\n          env:\n"
    ), "{deployment}");
    assert!(deployment.contains(
        "          resources:\n            limits:\n              memory: 256Mi\n            requests:\n"
    ), "{deployment}");
}

/// The cluster the values render, checked against the committed CRD.
fn rendered_cluster(values: &Value) -> (Value, ZdbCluster) {
    let object = chart::documents(values)
        .into_iter()
        .map(|(_, object)| object)
        .find(|object| object["kind"] == "ZdbCluster")
        .expect("a ZdbCluster");
    let crd_path = chart::chart_dir().join("crds/zdbcluster.yaml");
    let schema =
        chart::read_yaml(&crd_path)["spec"]["versions"][0]["schema"]["openAPIV3Schema"].clone();
    let refusals = openapi::refusals(&schema, &object, None);
    assert!(refusals.is_empty(), "the CRD refuses it: {refusals:?}");
    let cluster: ZdbCluster = serde_json::from_value(object.clone()).expect("a ZdbCluster");
    (object, cluster)
}

#[test]
fn security_values_render_to_the_spec() {
    let mut values = default_values();
    merge(
        &mut values,
        &serde_json::json!({"cluster": {
            "enabled": true,
            "tls": {"enabled": true, "issuerRef": {"name": "cluster-ca", "kind": "ClusterIssuer"},
                    "validFor": "720h"},
            "auth": {"rootPasswordSecret": {"name": "db-root", "key": "pw"}},
            "encryption": {"masterKeySecret": {"name": "key-2"},
                           "previousMasterKeySecret": {"name": "key-1"}},
        }}),
    );
    let (object, cluster) = rendered_cluster(&values);
    assert_eq!(
        object["spec"]["tls"],
        serde_json::json!({"enabled": true, "validFor": "720h",
            "issuerRef": {"name": "cluster-ca", "kind": "ClusterIssuer", "group": "cert-manager.io"}})
    );
    let tls = cluster.spec.tls.as_ref().expect("tls");
    assert!(tls.secret_name.is_none() && tls.ca_valid_for.is_none());
    let auth = cluster.spec.auth.as_ref().expect("auth");
    assert_eq!(
        (
            auth.root_password_secret.name.as_str(),
            auth.root_password_secret.key.as_str()
        ),
        ("db-root", "pw")
    );
    let encryption = cluster.spec.encryption.as_ref().expect("encryption");
    assert_eq!(encryption.master_key_secret.key, "master.key");
    assert_eq!(
        encryption
            .previous_master_key_secret
            .as_ref()
            .map(|k| k.name.as_str()),
        Some("key-1")
    );

    // A Secret of one's own.
    let mut values = default_values();
    merge(
        &mut values,
        &serde_json::json!({"cluster": {"enabled": true,
            "tls": {"enabled": true, "secretName": "db-certs", "clientSecretName": "db-operator"}}}),
    );
    let (object, _) = rendered_cluster(&values);
    assert_eq!(
        object["spec"]["tls"],
        serde_json::json!({"enabled": true, "secretName": "db-certs", "clientSecretName": "db-operator"})
    );
    assert!(object["spec"].get("auth").is_none() && object["spec"].get("encryption").is_none());

    // The defaults: nothing of it, and the example: all three.
    let mut values = default_values();
    merge(
        &mut values,
        &serde_json::json!({"cluster": {"enabled": true}}),
    );
    let (object, _) = rendered_cluster(&values);
    for field in ["tls", "auth", "encryption"] {
        assert!(object["spec"].get(field).is_none(), "{field}");
    }
    let (_, example) = rendered_cluster(&example_values());
    assert_eq!(
        example.spec.tls.as_ref().and_then(|t| t.source()),
        Some(zdb_operator::crd::TlsSource::Managed)
    );
    assert!(example.spec.auth.is_some() && example.spec.encryption.is_some());
    let notes = render(&example_values())
        .into_iter()
        .find(|(name, _)| name == "NOTES.txt")
        .map(|(_, notes)| notes)
        .unwrap_or_default();
    assert!(
        notes.contains("get secret orders-node-tls -o jsonpath='{.data.ca\\.crt}'"),
        "{notes}"
    );
}

#[test]
fn redis_values_render_to_the_spec() {
    let notes = |values: &Value| {
        render(values)
            .into_iter()
            .find(|(name, _)| name == "NOTES.txt")
            .map(|(_, notes)| notes)
            .unwrap_or_default()
    };
    // Off by default: no spec.redis at all (the CRD's default is off too).
    let mut values = default_values();
    merge(
        &mut values,
        &serde_json::json!({"cluster": {"enabled": true}}),
    );
    let (object, cluster) = rendered_cluster(&values);
    assert!(object["spec"].get("redis").is_none());
    assert_eq!(cluster.redis_port(), None);
    assert!(!notes(&values).contains("redis-cli"));

    // On, on the default port.
    merge(
        &mut values,
        &serde_json::json!({"cluster": {"redis": {"enabled": true}}}),
    );
    let (object, cluster) = rendered_cluster(&values);
    assert_eq!(
        object["spec"]["redis"],
        serde_json::json!({"enabled": true, "port": 6379})
    );
    assert_eq!(cluster.redis_port(), Some(6379));
    let text = notes(&values);
    assert!(
        text.contains("redis-cli -h zdb.zdb-system.svc -p 6379\n"),
        "{text}"
    );

    // On another port, with TLS: the notes say how to trust the CA.
    merge(
        &mut values,
        &serde_json::json!({"cluster": {"redis": {"port": 16379}, "tls": {"enabled": true}}}),
    );
    let (object, _) = rendered_cluster(&values);
    assert_eq!(object["spec"]["redis"]["port"], 16379);
    let text = notes(&values);
    assert!(
        text.contains("redis-cli -h zdb.zdb-system.svc -p 16379 --tls --cacert ca.crt"),
        "{text}"
    );
}
