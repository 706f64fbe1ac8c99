//! The Helm chart, without a helm binary: every template is rendered with
//! a Go-template engine (gtmpl, plus the two Helm functions the chart uses)
//! with the default values and with the example values; every object must
//! parse into its k8s-openapi type without losing a field, and the
//! ClusterRole must grant exactly the API calls the operator makes.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use gtmpl::{Context, FuncError, Template, Value as Tv};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::ServiceAccount;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{json, Value};
use zdb_operator::crd::ZdbCluster;

const RELEASE: &str = "zdb";
const NAMESPACE: &str = "zdb-system";

fn chart_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../charts/zdb")
}

fn read_yaml(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_yaml::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn to_template_value(value: &Value) -> Tv {
    match value {
        Value::Null => Tv::Nil,
        Value::Bool(b) => Tv::Bool(*b),
        Value::Number(n) => match n.as_i64() {
            Some(i) => Tv::from(i),
            None => Tv::from(n.as_f64().unwrap_or_default()),
        },
        Value::String(s) => Tv::String(s.clone()),
        Value::Array(items) => Tv::Array(items.iter().map(to_template_value).collect()),
        Value::Object(map) => Tv::Object(
            map.iter()
                .map(|(k, v)| (k.clone(), to_template_value(v)))
                .collect::<HashMap<_, _>>(),
        ),
    }
}

fn from_template_value(value: &Tv) -> Value {
    match value {
        Tv::Nil | Tv::NoValue => Value::Null,
        Tv::Bool(b) => json!(b),
        Tv::Number(n) => match (n.as_i64(), n.as_f64()) {
            (Some(i), _) => json!(i),
            (None, Some(f)) => json!(f),
            _ => Value::Null,
        },
        Tv::String(s) => json!(s),
        Tv::Array(items) => Value::Array(items.iter().map(from_template_value).collect()),
        Tv::Object(map) | Tv::Map(map) => Value::Object(
            map.iter()
                .map(|(k, v)| (k.clone(), from_template_value(v)))
                .collect(),
        ),
        Tv::Function(_) => Value::Null,
    }
}

/// Helm's `toYaml`.
fn to_yaml(args: &[Tv]) -> Result<Tv, FuncError> {
    let [value] = args else {
        return Err(FuncError::ExactlyXArgs("toYaml".into(), 1));
    };
    let yaml = serde_yaml::to_string(&from_template_value(value))
        .map_err(|e| FuncError::Generic(e.to_string()))?;
    Ok(Tv::String(yaml.trim_end().to_owned()))
}

/// Helm's `indent N TEXT`.
fn indent(args: &[Tv]) -> Result<Tv, FuncError> {
    let [Tv::Number(n), Tv::String(text)] = args else {
        return Err(FuncError::Generic(
            "indent takes a number and a string".into(),
        ));
    };
    let pad = " ".repeat(n.as_u64().unwrap_or(0) as usize);
    Ok(Tv::String(
        text.lines()
            .map(|line| format!("{pad}{line}"))
            .collect::<Vec<_>>()
            .join("\n"),
    ))
}

/// Helm's values merge: the given values over the chart's defaults.
fn merge(base: &mut Value, over: &Value) {
    match (base, over) {
        (Value::Object(base), Value::Object(over)) => {
            for (key, value) in over {
                merge(base.entry(key.clone()).or_insert(Value::Null), value);
            }
        }
        (base, over) => *base = over.clone(),
    }
}

fn render(values: &Value) -> Vec<(String, String)> {
    let chart = read_yaml(&chart_dir().join("Chart.yaml"));
    let context = json!({
        "Values": values,
        "Release": {"Name": RELEASE, "Namespace": NAMESPACE, "Service": "Helm"},
        "Chart": {"Name": chart["name"], "Version": chart["version"], "AppVersion": chart["appVersion"]},
    });
    let mut rendered = Vec::new();
    let mut entries: Vec<PathBuf> = std::fs::read_dir(chart_dir().join("templates"))
        .expect("templates/")
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .collect();
    entries.sort();
    for path in entries {
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_owned();
        let text = std::fs::read_to_string(&path).expect("a template");
        let mut template = Template::default();
        template.add_func("toYaml", to_yaml);
        template.add_func("indent", indent);
        template
            .parse(&text)
            .unwrap_or_else(|e| panic!("{name} does not parse: {e}"));
        let output = template
            .render(&Context::from(to_template_value(&context)))
            .unwrap_or_else(|e| panic!("{name} does not render: {e}"));
        rendered.push((name, output));
    }
    rendered
}

fn default_values() -> Value {
    read_yaml(&chart_dir().join("values.yaml"))
}

fn example_values() -> Value {
    let mut values = default_values();
    merge(
        &mut values,
        &read_yaml(&chart_dir().join("values-example.yaml")),
    );
    values
}

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
    let mut objects = Objects::default();
    for (name, output) in render(values) {
        if name == "NOTES.txt" {
            objects.notes = output;
            continue;
        }
        for document in output.split("\n---") {
            let object: Value = serde_yaml::from_str(document)
                .unwrap_or_else(|e| panic!("{name} renders invalid YAML: {e}\n{document}"));
            if object.is_null() {
                continue;
            }
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
fn cluster_role_grants_exactly_what_the_operator_calls() {
    let objects = objects(&default_values());
    let mut granted = BTreeSet::new();
    for rule in objects.roles[0].rules.iter().flatten() {
        assert!(rule.resource_names.is_none() && rule.non_resource_urls.is_none());
        for group in rule.api_groups.iter().flatten() {
            for resource in rule.resources.iter().flatten() {
                for verb in &rule.verbs {
                    assert_ne!(verb, "*", "no wildcard verbs");
                    granted.insert((group.clone(), resource.clone(), verb.clone()));
                }
            }
        }
    }
    let used: BTreeSet<(String, String, String)> = zdb_operator::rbac::API_CALLS
        .iter()
        .map(|(g, r, v)| ((*g).to_owned(), (*r).to_owned(), (*v).to_owned()))
        .collect();
    let missing: Vec<_> = used.difference(&granted).collect();
    let extra: Vec<_> = granted.difference(&used).collect();
    assert!(missing.is_empty(), "the ClusterRole lacks {missing:?}");
    assert!(
        extra.is_empty(),
        "the ClusterRole grants more than used: {extra:?}"
    );
}

#[test]
fn chart_crd_is_the_generated_one() {
    let in_chart = chart_dir().join("crds/zdbcluster.yaml");
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
