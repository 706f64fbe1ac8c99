//! The CRD as the API server gets it: the committed YAML is what the Rust
//! types generate, its schema is structural, and every schema check and
//! CEL rule in it refuses what it should and accepts what it should
//! (pruning, defaults, schema checks and CEL evaluated as the API server
//! does, by the code the fake API server uses, on the committed schema),
//! each with a message that says what to do.

#[path = "../src/testing/openapi.rs"]
mod openapi;

use std::path::PathBuf;

use serde_json::{json, Value};
use zdb_operator::crd::{self, ZdbCluster};

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn committed_crd() -> Value {
    let text = std::fs::read_to_string(repo_root().join(zdb_operator::CRD_PATH))
        .expect("the committed CRD exists (cargo run -p zdb-operator --bin crdgen -- --write)");
    serde_yaml::from_str(&text).expect("the committed CRD is YAML")
}

fn schema() -> Value {
    committed_crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"].clone()
}

#[test]
fn committed_crd_matches_the_rust_types() {
    let committed = std::fs::read_to_string(repo_root().join(zdb_operator::CRD_PATH))
        .expect("the committed CRD exists");
    let generated = zdb_operator::crd_yaml().expect("the CRD renders");
    assert!(
        committed == generated,
        "{} is stale: run `cargo run -p zdb-operator --bin crdgen -- --write`",
        zdb_operator::CRD_PATH
    );
    // `crds/` at the repository root is a link to the chart's, not a copy.
    let at_root = std::fs::read_to_string(repo_root().join("crds/zdbcluster.yaml"))
        .expect("crds/ links to charts/zdb/crds/");
    assert_eq!(at_root, committed);
}

#[test]
fn crd_has_status_and_scale_subresources_and_printer_columns() {
    let crd = committed_crd();
    let version = &crd["spec"]["versions"][0];
    assert_eq!(crd["spec"]["group"], "zdb.io");
    assert_eq!(version["name"], "v1alpha1");
    assert_eq!(crd["spec"]["scope"], "Namespaced");
    assert!(version["subresources"]["status"].is_object());
    // `kubectl scale zdbcluster` and a HorizontalPodAutoscaler.
    assert_eq!(
        version["subresources"]["scale"],
        json!({"specReplicasPath": ".spec.replicas", "statusReplicasPath": ".status.replicas",
               "labelSelectorPath": ".status.selector"})
    );
    assert_eq!(
        schema()["properties"]["status"]["properties"]["selector"]["type"],
        "string"
    );
    let columns: Vec<&str> = version["additionalPrinterColumns"]
        .as_array()
        .expect("printer columns")
        .iter()
        .filter_map(|c| c["name"].as_str())
        .collect();
    assert_eq!(columns, ["Ready", "Desired", "Ranges", "Phase", "Age"]);
}

/// The rules of a structural schema (what the API server demands of a CRD).
fn structural_violations(node: &Value, path: &str, in_junctor: bool, out: &mut Vec<String>) {
    let Some(map) = node.as_object() else {
        out.push(format!("{path}: not an object"));
        return;
    };
    for forbidden in ["$ref", "definitions", "$schema", "$defs"] {
        if map.contains_key(forbidden) {
            out.push(format!("{path}: has {forbidden}"));
        }
    }
    if in_junctor {
        for key in [
            "type",
            "description",
            "default",
            "additionalProperties",
            "nullable",
        ] {
            if map.contains_key(key) {
                out.push(format!("{path}: {key} inside allOf/anyOf/oneOf/not"));
            }
        }
    } else {
        let escape = map.get("x-kubernetes-int-or-string") == Some(&json!(true))
            || map.get("x-kubernetes-preserve-unknown-fields") == Some(&json!(true));
        let typed = map
            .get("type")
            .and_then(Value::as_str)
            .is_some_and(|t| !t.is_empty());
        if !escape && !typed {
            out.push(format!("{path}: no type"));
        }
    }
    if map.contains_key("properties") && map.contains_key("additionalProperties") {
        out.push(format!(
            "{path}: properties and additionalProperties together"
        ));
    }
    if let Some(properties) = map.get("properties").and_then(Value::as_object) {
        for (name, child) in properties {
            structural_violations(child, &format!("{path}.{name}"), in_junctor, out);
        }
    }
    if let Some(items) = map.get("items") {
        structural_violations(items, &format!("{path}[]"), in_junctor, out);
    }
    if let Some(additional) = map.get("additionalProperties").filter(|a| a.is_object()) {
        structural_violations(additional, &format!("{path}{{}}"), in_junctor, out);
    }
    for junctor in ["allOf", "anyOf", "oneOf"] {
        for (i, child) in map
            .get(junctor)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .enumerate()
        {
            structural_violations(child, &format!("{path}.{junctor}[{i}]"), true, out);
        }
    }
    if let Some(not) = map.get("not") {
        structural_violations(not, &format!("{path}.not"), true, out);
    }
}

#[test]
fn schema_is_structural() {
    let mut violations = Vec::new();
    structural_violations(&schema(), "", false, &mut violations);
    assert!(violations.is_empty(), "not structural: {violations:#?}");
}

#[test]
fn structural_check_catches_violations() {
    // The check itself must be able to fail.
    let bad = json!({"type": "object", "properties": {
        "a": {"description": "no type"},
        "b": {"type": "string", "anyOf": [{"type": "integer"}]},
        "c": {"$ref": "#/definitions/x"},
    }});
    let mut violations = Vec::new();
    structural_violations(&bad, "", false, &mut violations);
    assert_eq!(violations.len(), 4, "{violations:#?}");
}

fn rules_in(node: &Value, out: &mut Vec<String>) {
    match node {
        Value::Object(map) => {
            if let Some(rules) = map
                .get("x-kubernetes-validations")
                .and_then(Value::as_array)
            {
                out.extend(
                    rules
                        .iter()
                        .filter_map(|r| r["rule"].as_str().map(str::to_owned)),
                );
            }
            map.values().for_each(|child| rules_in(child, out));
        }
        Value::Array(items) => items.iter().for_each(|child| rules_in(child, out)),
        _ => {}
    }
}

#[test]
fn crd_carries_exactly_the_tested_rules() {
    let mut rules = Vec::new();
    rules_in(&schema(), &mut rules);
    rules.sort();
    let mut tested = vec![
        crd::RULE_NAME_LENGTH,
        crd::RULE_NAME_DNS_LABEL,
        crd::RULE_REPLICAS_COVER_FACTOR,
        crd::RULE_FACTOR_ODD,
        crd::RULE_FACTOR_IMMUTABLE,
        crd::RULE_SIZE_POSITIVE_QUANTITY,
        crd::RULE_SIZE_NOT_SHRINKING,
        crd::RULE_STORAGE_CLASS_IMMUTABLE,
        crd::RULE_STORAGE_CLASS_KEPT,
        crd::RULE_ELECTION_AFTER_HEARTBEAT,
        crd::RULE_REQUESTS_WITHIN_LIMITS,
        crd::RULE_AUTH_NEEDS_TLS,
        crd::RULE_TLS_KEPT,
        crd::RULE_TLS_ONE_SOURCE,
        crd::RULE_CLIENT_SECRET_NEEDS_SECRET,
        crd::RULE_AT_LEAST_AN_HOUR,
        crd::RULE_AT_LEAST_AN_HOUR,
        crd::RULE_CERT_MANAGER_KIND,
        crd::RULE_REDIS_PORT_FREE,
    ];
    tested.sort();
    assert_eq!(rules, tested);
}

fn named(name: &str, spec: Value) -> Value {
    json!({"apiVersion": "zdb.io/v1alpha1", "kind": "ZdbCluster",
           "metadata": {"name": name, "namespace": "prod"}, "spec": spec})
}

fn object(spec: Value) -> Value {
    named("db", spec)
}

fn valid_spec() -> Value {
    json!({"replicas": 3, "replicationFactor": 3, "image": "zdb:1", "storage": {"size": "10Gi"}})
}

fn with(change: impl FnOnce(&mut Value)) -> Value {
    let mut spec = valid_spec();
    change(&mut spec);
    object(spec)
}

/// What refuses `new` (as an update of `old` when given): the CEL rules
/// that fail, and `schema: <path>` for each schema check that fails.
fn refused_by(new: &Value, old: Option<&Value>) -> Vec<String> {
    let mut refused: Vec<String> = openapi::refusals(&schema(), new, old)
        .into_iter()
        .map(|refusal| {
            refusal
                .rule
                .unwrap_or_else(|| format!("schema: {}", refusal.path))
        })
        .collect();
    refused.sort();
    refused.dedup();
    refused
}

/// The messages the API server would answer `new` with.
fn messages(new: &Value, old: Option<&Value>) -> Vec<String> {
    openapi::refusals(&schema(), new, old)
        .iter()
        .map(ToString::to_string)
        .collect()
}

#[test]
fn replicas_must_cover_the_replication_factor() {
    assert!(refused_by(&with(|s| s["replicas"] = json!(5)), None).is_empty());
    assert_eq!(
        refused_by(&with(|s| s["replicas"] = json!(2)), None),
        [crd::RULE_REPLICAS_COVER_FACTOR]
    );
    // The default factor (3) counts too.
    let defaulted = object(json!({"replicas": 1, "image": "zdb:1", "storage": {"size": "1Gi"}}));
    assert_eq!(
        refused_by(&defaulted, None),
        [crd::RULE_REPLICAS_COVER_FACTOR]
    );
}

#[test]
fn replication_factor_must_be_odd() {
    assert!(refused_by(&with(|s| s["replicationFactor"] = json!(1)), None).is_empty());
    assert_eq!(
        refused_by(
            &with(|s| {
                s["replicationFactor"] = json!(4);
                s["replicas"] = json!(4);
            }),
            None
        ),
        [crd::RULE_FACTOR_ODD]
    );
}

#[test]
fn replication_factor_is_immutable() {
    let old = with(|s| s["replicas"] = json!(5));
    let same = with(|s| s["replicas"] = json!(4));
    assert!(refused_by(&same, Some(&old)).is_empty());
    let changed = with(|s| {
        s["replicas"] = json!(5);
        s["replicationFactor"] = json!(5);
    });
    assert_eq!(
        refused_by(&changed, Some(&old)),
        [crd::RULE_FACTOR_IMMUTABLE]
    );
}

#[test]
fn storage_size_is_a_positive_quantity_that_never_shrinks() {
    for size in ["lots", "-1Gi", "0", "0Gi", ""] {
        assert_eq!(
            refused_by(&with(|s| s["storage"]["size"] = json!(size)), None),
            [crd::RULE_SIZE_POSITIVE_QUANTITY],
            "{size:?}"
        );
    }
    let old = with(|s| s["storage"]["size"] = json!("10Gi"));
    let grown = with(|s| s["storage"]["size"] = json!("20Gi"));
    let same_in_other_units = with(|s| s["storage"]["size"] = json!("10240Mi"));
    let shrunk = with(|s| s["storage"]["size"] = json!("9Gi"));
    assert!(refused_by(&grown, Some(&old)).is_empty());
    assert!(refused_by(&same_in_other_units, Some(&old)).is_empty());
    assert_eq!(
        refused_by(&shrunk, Some(&old)),
        [crd::RULE_SIZE_NOT_SHRINKING]
    );
    // A size that is not a quantity gets one message, not a second one
    // from the shrink rule.
    let typo = with(|s| s["storage"]["size"] = json!("20 Gi"));
    assert_eq!(
        messages(&typo, Some(&old)),
        ["spec.storage.size: storage.size must be a positive quantity such as 10Gi"]
    );
}

#[test]
fn storage_class_can_be_neither_changed_nor_added_nor_removed() {
    let with_class = with(|s| s["storage"]["storageClassName"] = json!("ssd"));
    let without_class = object(valid_spec());
    assert!(refused_by(&with_class.clone(), Some(&with_class)).is_empty());
    assert!(refused_by(&without_class.clone(), Some(&without_class)).is_empty());
    let changed = with(|s| s["storage"]["storageClassName"] = json!("hdd"));
    assert_eq!(
        refused_by(&changed, Some(&with_class)),
        [crd::RULE_STORAGE_CLASS_IMMUTABLE]
    );
    assert_eq!(
        refused_by(&without_class, Some(&with_class)),
        [crd::RULE_STORAGE_CLASS_KEPT]
    );
    assert_eq!(
        refused_by(&with_class, Some(&without_class)),
        [crd::RULE_STORAGE_CLASS_KEPT]
    );
    assert!(messages(&with_class, Some(&without_class))[0].contains("cannot be added or removed"));
}

#[test]
fn resources_must_be_quantities_within_their_limits() {
    let good = with(
        |s| s["resources"] = json!({"requests": {"cpu": "500m", "memory": "1Gi"}, "limits": {"cpu": 2, "memory": "1Gi"}}),
    );
    assert!(
        refused_by(&good, None).is_empty(),
        "{:?}",
        refused_by(&good, None)
    );
    for bad in ["lots", "-1", "1 Gi", "1gi"] {
        let refused = refused_by(
            &with(|s| s["resources"] = json!({"requests": {"cpu": bad}})),
            None,
        );
        assert_eq!(refused, ["schema: spec.resources.requests.cpu"], "{bad:?}");
    }
    let above = with(|s| {
        s["resources"] = json!({"requests": {"memory": "2Gi"}, "limits": {"memory": "1Gi"}})
    });
    assert_eq!(refused_by(&above, None), [crd::RULE_REQUESTS_WITHIN_LIMITS]);
}

#[test]
fn image_pull_policy_is_one_kubernetes_knows() {
    for policy in ["Always", "IfNotPresent", "Never"] {
        assert!(refused_by(&with(|s| s["imagePullPolicy"] = json!(policy)), None).is_empty());
    }
    let sometimes = with(|s| s["imagePullPolicy"] = json!("Sometimes"));
    assert_eq!(
        messages(&sometimes, None),
        ["spec.imagePullPolicy: Unsupported value: \"Sometimes\": supported values: \"Always\", \"IfNotPresent\", \"Never\""]
    );
}

#[test]
fn names_must_leave_room_for_pod_labels_and_name_services() {
    let longest = "a".repeat(crd::MAX_NAME_LENGTH);
    assert!(refused_by(&named(&longest, valid_spec()), None).is_empty());
    let too_long = "a".repeat(crd::MAX_NAME_LENGTH + 1);
    assert_eq!(
        refused_by(&named(&too_long, valid_spec()), None),
        [crd::RULE_NAME_LENGTH]
    );
    assert_eq!(
        refused_by(&named("1db", valid_spec()), None),
        [crd::RULE_NAME_DNS_LABEL]
    );
    assert_eq!(
        refused_by(&named("db.prod", valid_spec()), None),
        [crd::RULE_NAME_DNS_LABEL]
    );
}

#[test]
fn raft_elections_come_after_several_heartbeats() {
    let raft = |value: Value| with(|s| s["raft"] = value);
    assert!(refused_by(
        &raft(json!({"electionTicks": 10, "heartbeatTicks": 2})),
        None
    )
    .is_empty());
    assert!(refused_by(&raft(json!({"tickMs": 50})), None).is_empty());
    for refused in [
        json!({"electionTicks": 2, "heartbeatTicks": 2}),
        json!({"electionTicks": 2, "heartbeatTicks": 5}),
        // Against the node's default heartbeat (2 ticks)...
        json!({"electionTicks": 2}),
        // ...and its default election timeout (10 ticks).
        json!({"heartbeatTicks": 10}),
    ] {
        assert_eq!(
            refused_by(&raft(refused.clone()), None),
            [crd::RULE_ELECTION_AFTER_HEARTBEAT],
            "{refused}"
        );
    }
}

#[test]
fn authentication_needs_tls() {
    let auth = json!({"rootPasswordSecret": {"name": "db-root"}});
    assert_eq!(
        refused_by(&with(|s| s["auth"] = auth.clone()), None),
        [crd::RULE_AUTH_NEEDS_TLS]
    );
    let off = with(|s| {
        s["auth"] = auth.clone();
        s["tls"] = json!({"enabled": false});
    });
    assert_eq!(refused_by(&off, None), [crd::RULE_AUTH_NEEDS_TLS]);
    let on = with(|s| {
        s["auth"] = auth.clone();
        s["tls"] = json!({"enabled": true});
    });
    assert!(
        refused_by(&on, None).is_empty(),
        "{:?}",
        refused_by(&on, None)
    );
    // The key defaults to "password".
    let mut defaulted = on.clone();
    openapi::apply_defaults(&schema(), &mut defaulted);
    assert_eq!(
        defaulted["spec"]["auth"]["rootPasswordSecret"]["key"],
        "password"
    );
}

#[test]
fn tls_cannot_be_switched_on_or_off_once_the_cluster_exists() {
    let plain = object(valid_spec());
    let on = with(|s| s["tls"] = json!({"enabled": true}));
    let off = with(|s| s["tls"] = json!({"enabled": false}));
    assert!(refused_by(&on, Some(&on)).is_empty());
    assert!(refused_by(&off, Some(&plain)).is_empty(), "off either way");
    assert_eq!(refused_by(&on, Some(&plain)), [crd::RULE_TLS_KEPT]);
    assert_eq!(refused_by(&plain, Some(&on)), [crd::RULE_TLS_KEPT]);
    // The source may change (the CA with it: see the docs).
    let issued = with(|s| s["tls"] = json!({"enabled": true, "issuerRef": {"name": "ca"}}));
    assert!(refused_by(&issued, Some(&on)).is_empty());
}

#[test]
fn one_tls_source_at_a_time() {
    let both = with(|s| {
        s["tls"] = json!({"enabled": true, "secretName": "certs", "issuerRef": {"name": "ca"}})
    });
    assert_eq!(refused_by(&both, None), [crd::RULE_TLS_ONE_SOURCE]);
    let client_alone = with(|s| s["tls"] = json!({"enabled": true, "clientSecretName": "op"}));
    assert_eq!(
        refused_by(&client_alone, None),
        [crd::RULE_CLIENT_SECRET_NEEDS_SECRET]
    );
    let provided = with(|s| {
        s["tls"] = json!({"enabled": true, "secretName": "certs", "clientSecretName": "op"})
    });
    assert!(refused_by(&provided, None).is_empty());
    let bad_name = with(|s| s["tls"] = json!({"enabled": true, "secretName": "Certs_1"}));
    assert_eq!(refused_by(&bad_name, None), ["schema: spec.tls.secretName"]);
}

#[test]
fn certificate_validities_are_durations_of_at_least_an_hour() {
    let tls =
        |field: &str, value: &str| with(|s| s["tls"] = json!({"enabled": true, field: value}));
    for good in ["8760h", "1h", "1h30m", "3600s", "90m"] {
        assert!(
            refused_by(&tls("validFor", good), None).is_empty(),
            "{good}"
        );
        assert!(
            refused_by(&tls("caValidFor", good), None).is_empty(),
            "{good}"
        );
    }
    for short in ["30m", "59m59s", "0h"] {
        assert_eq!(
            refused_by(&tls("validFor", short), None),
            [crd::RULE_AT_LEAST_AN_HOUR],
            "{short}"
        );
    }
    for bad in ["1y", "365d", "1.5h", "h", "1h "] {
        assert_eq!(
            refused_by(&tls("validFor", bad), None),
            ["schema: spec.tls.validFor"],
            "{bad}"
        );
    }
    assert_eq!(
        messages(&tls("caValidFor", "10m"), None),
        ["spec.tls.caValidFor: tls.caValidFor must be at least 1h, as a duration such as 87600h"]
    );
}

#[test]
fn cert_manager_issuers_are_of_its_kinds_unless_external() {
    let issuer = |issuer: Value| with(|s| s["tls"] = json!({"enabled": true, "issuerRef": issuer}));
    for good in [
        json!({"name": "ca"}),
        json!({"name": "ca", "kind": "ClusterIssuer"}),
        json!({"name": "pca", "kind": "AWSPCAClusterIssuer", "group": "awspca.cert-manager.io"}),
    ] {
        assert!(refused_by(&issuer(good.clone()), None).is_empty(), "{good}");
    }
    assert_eq!(
        refused_by(&issuer(json!({"name": "ca", "kind": "Issuers"})), None),
        [crd::RULE_CERT_MANAGER_KIND]
    );
    assert_eq!(
        refused_by(&issuer(json!({"kind": "Issuer"})), None),
        ["schema: spec.tls.issuerRef.name"]
    );
}

#[test]
fn encryption_names_its_master_keys() {
    let encryption = |value: Value| with(|s| s["encryption"] = value);
    let good = encryption(json!({"masterKeySecret": {"name": "key-2"},
                                 "previousMasterKeySecret": {"name": "key-1", "key": "old.key"}}));
    assert!(refused_by(&good, None).is_empty());
    let mut defaulted = good.clone();
    openapi::apply_defaults(&schema(), &mut defaulted);
    assert_eq!(
        defaulted["spec"]["encryption"]["masterKeySecret"]["key"],
        "master.key"
    );
    assert_eq!(
        refused_by(
            &encryption(json!({"masterKeySecret": {"name": "k", "key": "a/b"}})),
            None
        ),
        ["schema: spec.encryption.masterKeySecret.key"]
    );
    assert_eq!(
        refused_by(&encryption(json!({})), None),
        ["schema: spec.encryption.masterKeySecret"]
    );
}

#[test]
fn redis_is_off_by_default_and_its_port_is_a_free_port() {
    let redis = |value: Value| with(|s| s["redis"] = value);
    for good in [
        json!({}),
        json!({"enabled": true}),
        json!({"enabled": true, "port": 1}),
        json!({"enabled": true, "port": 65535}),
        json!({"enabled": false, "port": 6380}),
    ] {
        assert!(refused_by(&redis(good.clone()), None).is_empty(), "{good}");
    }
    let mut defaulted = redis(json!({"enabled": true}));
    openapi::apply_defaults(&schema(), &mut defaulted);
    assert_eq!(
        defaulted["spec"]["redis"],
        json!({"enabled": true, "port": crd::DEFAULT_REDIS_PORT})
    );
    let mut off = redis(json!({}));
    openapi::apply_defaults(&schema(), &mut off);
    assert_eq!(off["spec"]["redis"]["enabled"], false);
    for bad in [0, -1, 65536, 70000] {
        assert_eq!(
            refused_by(&redis(json!({"enabled": true, "port": bad})), None),
            ["schema: spec.redis.port"],
            "{bad}"
        );
    }
    assert_eq!(
        messages(&redis(json!({"enabled": true, "port": 70000})), None),
        ["spec.redis.port: Invalid value: 70000: spec.redis.port in body should be less than or equal to 65535"]
    );
    for taken in [7700, 7701] {
        assert_eq!(
            refused_by(&redis(json!({"enabled": true, "port": taken})), None),
            [crd::RULE_REDIS_PORT_FREE],
            "{taken}"
        );
    }
    assert!(
        messages(&redis(json!({"port": 7700})), None)[0]
            .starts_with("spec.redis.port: redis.port must not be 7700 (gRPC)"),
        "{:?}",
        messages(&redis(json!({"port": 7700})), None)
    );
    assert_eq!(
        refused_by(&redis(json!({"enabled": "yes"})), None),
        ["schema: spec.redis.enabled"]
    );
}

#[test]
fn every_rule_message_says_what_to_do() {
    let mut messages = Vec::new();
    fn collect(node: &Value, out: &mut Vec<String>) {
        match node {
            Value::Object(map) => {
                for rule in map
                    .get("x-kubernetes-validations")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    out.push(rule["message"].as_str().unwrap_or("").to_owned());
                }
                map.values().for_each(|child| collect(child, out));
            }
            Value::Array(items) => items.iter().for_each(|child| collect(child, out)),
            _ => {}
        }
    }
    collect(&schema(), &mut messages);
    for message in messages {
        let advises = [":", "such as", "must", "may"]
            .iter()
            .any(|w| message.contains(w));
        assert!(
            advises && message.len() > 30,
            "{message:?} does not say what to do"
        );
    }
}

#[test]
fn unknown_fields_are_pruned_as_the_api_server_prunes_them() {
    let mut cluster = with(|s| s["replicsa"] = json!(5));
    openapi::prune(&schema(), &mut cluster, true);
    assert!(cluster["spec"].get("replicsa").is_none());
    assert_eq!(cluster["metadata"]["name"], "db");
}

#[test]
fn examples_parse_and_pass_every_rule() {
    for example in ["zdbcluster-minimal.yaml", "zdbcluster-production.yaml"] {
        let path = repo_root().join("examples").join(example);
        let text = std::fs::read_to_string(&path).expect("the example exists");
        let value: Value = serde_yaml::from_str(&text).expect("YAML");
        let cluster: ZdbCluster = serde_json::from_value(value.clone())
            .unwrap_or_else(|e| panic!("{example} is not a ZdbCluster: {e}"));
        assert!(cluster.spec.replicas >= cluster.spec.replication_factor);
        assert!(
            refused_by(&value, None).is_empty(),
            "{example}: {:?}",
            refused_by(&value, None)
        );
        assert!(refused_by(&value, Some(&value)).is_empty());
        // Nothing in it is a field the API server would drop.
        let mut pruned = value.clone();
        openapi::prune(&schema(), &mut pruned, true);
        assert_eq!(pruned, value, "{example} has fields the CRD does not know");
    }
}
