//! The Helm chart rendered without a helm binary: every template through a
//! Go-template engine (gtmpl, plus the two Helm functions the chart uses),
//! with the chart's default values or the example values merged over them.
//!
//! Shared by the chart tests and the fake API server (which authorizes the
//! operator with the rendered ClusterRole) through a `#[path]` include.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use gtmpl::{Context, FuncError, Template, Value as Tv};
use serde_json::{json, Value};

pub const RELEASE: &str = "zdb";
pub const NAMESPACE: &str = "zdb-system";

pub fn chart_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../charts/zdb")
}

pub fn read_yaml(path: &Path) -> Value {
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
#[allow(dead_code)] // tests/chart.rs
pub fn merge(base: &mut Value, over: &Value) {
    match (base, over) {
        (Value::Object(base), Value::Object(over)) => {
            for (key, value) in over {
                merge(base.entry(key.clone()).or_insert(Value::Null), value);
            }
        }
        (base, over) => *base = over.clone(),
    }
}

/// Every template's output, by file name.
pub fn render(values: &Value) -> Vec<(String, String)> {
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

pub fn default_values() -> Value {
    read_yaml(&chart_dir().join("values.yaml"))
}

#[allow(dead_code)] // tests/chart.rs
pub fn example_values() -> Value {
    let mut values = default_values();
    merge(
        &mut values,
        &read_yaml(&chart_dir().join("values-example.yaml")),
    );
    values
}

/// The Kubernetes objects the chart renders (NOTES.txt left out).
pub fn documents(values: &Value) -> Vec<(String, Value)> {
    let mut documents = Vec::new();
    for (name, output) in render(values) {
        if name == "NOTES.txt" {
            continue;
        }
        for document in output.split("\n---") {
            let object: Value = serde_yaml::from_str(document)
                .unwrap_or_else(|e| panic!("{name} renders invalid YAML: {e}\n{document}"));
            if !object.is_null() {
                documents.push((name.clone(), object));
            }
        }
    }
    documents
}

/// The rules of the operator's ClusterRole with the default values.
pub fn operator_cluster_role_rules() -> Vec<Value> {
    documents(&default_values())
        .into_iter()
        .find(|(_, object)| object["kind"] == "ClusterRole")
        .and_then(|(_, role)| role["rules"].as_array().cloned())
        .expect("the chart renders a ClusterRole with rules")
}
