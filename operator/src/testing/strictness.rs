//! The fake API server refuses what a real one refuses: each class of
//! refusal the operator ran into on a real cluster, checked on its own.

use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::{json, Value};

use super::pod_security::{self, Level, ENFORCE_LABEL};
use super::statefulset_controller;
use super::{FakeApi, Identity};

fn claim(name: &str, storage: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
           "metadata": {"name": name},
           "spec": {"accessModes": ["ReadWriteOnce"],
                    "resources": {"requests": {"storage": storage}}}})
}

fn statefulset(name: &str, policy: &str) -> Value {
    let labels = json!({"app": name});
    json!({"apiVersion": "apps/v1", "kind": "StatefulSet",
           "metadata": {"name": name},
           "spec": {"replicas": 1, "serviceName": name, "podManagementPolicy": policy,
                    "selector": {"matchLabels": labels},
                    "template": {"metadata": {"labels": labels},
                                 "spec": {"containers": [{"name": "c", "image": "x"}]}}}})
}

#[tokio::test]
async fn the_operator_gets_only_what_the_chart_grants() {
    let (client, api) = FakeApi::start();
    api.namespace("prod", json!({}));
    let secrets: Api<k8s_openapi::api::core::v1::Secret> = Api::namespaced(client.clone(), "prod");
    let error = secrets
        .list(&Default::default())
        .await
        .expect_err("no grant");
    assert!(
        error.to_string().contains(
            "cannot list resource \"secrets\" in API group \"\" in the namespace \"prod\""
        ),
        "{error}"
    );
    // Claims may be patched (grown), not created: an apply that would
    // create one is refused as a create.
    let claims: Api<k8s_openapi::api::core::v1::PersistentVolumeClaim> =
        Api::namespaced(client, "prod");
    let error = claims
        .patch(
            "data",
            &PatchParams::apply("zdb-operator"),
            &Patch::Apply(claim("data", "1Gi")),
        )
        .await
        .expect_err("no create grant");
    assert!(
        error
            .to_string()
            .contains("cannot create resource \"persistentvolumeclaims\""),
        "{error}"
    );
    let recorded = api.take_requests();
    assert_eq!(
        recorded.last().map(|r| r.authorized.clone()),
        Some(vec!["patch".into(), "create".into()])
    );
}

#[tokio::test]
async fn quantities_are_parsed_as_the_api_server_parses_them() {
    let (_, api) = FakeApi::start();
    api.namespace("prod", json!({}));
    let bad = api
        .create("", "persistentvolumeclaims", "prod", claim("a", "lots"))
        .expect_err("not a quantity");
    assert_eq!(bad.code, 400);
    assert!(
        bad.message
            .contains("quantities must match the regular expression"),
        "{}",
        bad.message
    );
    let zero = api
        .create("", "persistentvolumeclaims", "prod", claim("b", "0"))
        .expect_err("zero");
    assert_eq!(zero.code, 422);
    assert!(
        zero.message.contains("must be greater than zero"),
        "{}",
        zero.message
    );
    let mut negative = statefulset("c", "Parallel");
    negative["spec"]["template"]["spec"]["containers"][0]["resources"] =
        json!({"requests": {"cpu": "-1"}});
    let refused = api
        .create("apps", "statefulsets", "prod", negative)
        .expect_err("negative");
    assert!(
        refused
            .message
            .contains("must be greater than or equal to 0"),
        "{}",
        refused.message
    );
}

#[tokio::test]
async fn claim_specs_and_most_statefulset_fields_are_immutable() {
    let (_, api) = FakeApi::start();
    api.namespace("prod", json!({}));
    let admin = api.client(Identity::Admin);
    api.create(
        "apps",
        "statefulsets",
        "prod",
        statefulset("db", "OrderedReady"),
    )
    .expect("created");
    let statefulsets: Api<k8s_openapi::api::apps::v1::StatefulSet> =
        Api::namespaced(admin.clone(), "prod");
    let error = statefulsets
        .patch(
            "db",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"podManagementPolicy": "Parallel"}})),
        )
        .await
        .expect_err("immutable");
    assert!(
        error
            .to_string()
            .contains("updates to statefulset spec for fields other than"),
        "{error}"
    );
    statefulsets
        .patch(
            "db",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": 3}})),
        )
        .await
        .expect("replicas may change");

    api.create("", "persistentvolumeclaims", "prod", claim("data", "1Gi"))
        .expect("created");
    let claims: Api<k8s_openapi::api::core::v1::PersistentVolumeClaim> =
        Api::namespaced(admin, "prod");
    let error = claims
        .patch(
            "data",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"accessModes": ["ReadWriteMany"]}})),
        )
        .await
        .expect_err("immutable");
    assert!(
        error
            .to_string()
            .contains("spec is immutable after creation"),
        "{error}"
    );
    let error = claims
        .patch(
            "data",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"resources": {"requests": {"storage": "2Gi"}}}})),
        )
        .await
        .expect_err("no StorageClass allows expansion");
    assert!(
        error
            .to_string()
            .contains("only dynamically provisioned pvc can be resized"),
        "{error}"
    );
}

#[tokio::test]
async fn pods_of_a_statefulset_named_over_52_characters_cannot_be_created() {
    let (_, api) = FakeApi::start();
    api.namespace("prod", json!({}));
    for (length, created) in [(52, true), (53, false)] {
        let name = format!("{}x", "a".repeat(length - 1));
        api.create(
            "apps",
            "statefulsets",
            "prod",
            statefulset(&name, "Parallel"),
        )
        .expect("a StatefulSet name may be long");
        statefulset_controller::sync(&api, "prod", &name);
        assert_eq!(
            api.get("", "pods", "prod", &format!("{name}-0")).is_some(),
            created,
            "{length}"
        );
    }
    let refusals: Vec<String> = api
        .list("", "events", "prod")
        .iter()
        .filter_map(|e| e["message"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(refusals.len(), 1);
    assert!(
        refusals[0].contains("must be no more than 63 characters"),
        "{}",
        refusals[0]
    );
}

#[tokio::test]
async fn pod_security_restricted_refuses_a_pod_without_a_security_context() {
    let (_, api) = FakeApi::start();
    api.namespace("locked", json!({ENFORCE_LABEL: "restricted"}));
    api.create(
        "apps",
        "statefulsets",
        "locked",
        statefulset("db", "Parallel"),
    )
    .expect("the StatefulSet itself is admitted");
    statefulset_controller::sync(&api, "locked", "db");
    assert!(api.get("", "pods", "locked", "db-0").is_none());
    let events = api.list("", "events", "locked");
    let message = events[0]["message"].as_str().unwrap_or("");
    assert!(message.starts_with("create Pod db-0 in StatefulSet db failed error: pods \"db-0\" is forbidden: violates PodSecurity \"restricted:latest\": allowPrivilegeEscalation != false"), "{message}");
    assert_eq!(events[0]["reason"], "FailedCreate");
    // The same pod in a namespace without a level.
    let spec: k8s_openapi::api::core::v1::PodSpec =
        serde_json::from_value(json!({"containers": [{"name": "c", "image": "x"}]}))
            .expect("a spec");
    assert!(pod_security::violations(&spec, Level::Privileged).is_empty());
    assert_eq!(pod_security::violations(&spec, Level::Restricted).len(), 4);
}

#[tokio::test]
async fn zdbclusters_are_checked_against_the_crd() {
    let (client, api) = FakeApi::start();
    api.namespace("prod", json!({}));
    let clusters: Api<crate::crd::ZdbCluster> =
        Api::namespaced(api.client(Identity::Admin), "prod");
    let bad: crate::crd::ZdbCluster = serde_json::from_value(json!({
        "apiVersion": "zdb.io/v1alpha1", "kind": "ZdbCluster", "metadata": {"name": "db"},
        "spec": {"replicas": 3, "image": "zdb:1", "storage": {"size": "-1Gi"}},
    }))
    .expect("a cluster");
    let error = clusters
        .create(&PostParams::default(), &bad)
        .await
        .expect_err("refused");
    assert!(
        error
            .to_string()
            .contains("storage.size must be a positive quantity"),
        "{error}"
    );
    drop(client);
    // Unknown fields are pruned, defaults filled in.
    let stored = api
        .create("zdb.io", "zdbclusters", "prod", json!({
            "apiVersion": "zdb.io/v1alpha1", "kind": "ZdbCluster", "metadata": {"name": "ok"},
            "spec": {"replicas": 3, "image": "zdb:1", "storage": {"size": "1Gi"}, "colour": "blue"},
        }))
        .expect("accepted");
    assert!(stored["spec"].get("colour").is_none());
    assert_eq!(stored["spec"]["replicationFactor"], 3);
}
