//! What the API server does with a custom resource's body before storing
//! it, from the CRD's structural schema: prune the fields the schema does
//! not declare, apply the schema's defaults, check types, enums, bounds,
//! lengths, patterns and required fields, then evaluate the CEL rules
//! (`x-kubernetes-validations`, with `oldSelf` on an update).
//!
//! Shared by the fake API server and the CRD tests through a `#[path]`
//! include; patterns and rules are evaluated with kube's CEL interpreter
//! (its `matches` is RE2 syntax, as the API server's).

use kube::core::cel::Validator;
use serde_json::{json, Map, Value};

/// One reason the API server refuses an object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// The CEL rule that failed, or None for a schema check.
    pub rule: Option<String>,
    /// Where, as the API server names it (`spec.storage.size`).
    pub path: String,
    pub message: String,
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.path.is_empty() {
            write!(f, "{}", self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

fn child(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

fn preserves_unknown(schema: &Value) -> bool {
    schema["x-kubernetes-preserve-unknown-fields"] == json!(true)
}

/// Drops what the schema does not declare, and nulls in fields that are
/// not nullable (the API server prunes both). At the root, `apiVersion`,
/// `kind` and `metadata` always stay.
pub fn prune(schema: &Value, value: &mut Value, root: bool) {
    match value {
        Value::Object(map) => {
            if preserves_unknown(schema) && schema.get("properties").is_none() {
                return;
            }
            let properties = schema.get("properties").and_then(Value::as_object);
            let additional = schema.get("additionalProperties");
            map.retain(|key, child_value| {
                if root && matches!(key.as_str(), "apiVersion" | "kind" | "metadata") {
                    return true;
                }
                let child_schema = properties
                    .and_then(|p| p.get(key))
                    .or(additional.filter(|a| a.is_object()));
                match child_schema {
                    Some(child_schema) => {
                        !(child_value.is_null() && child_schema["nullable"] != json!(true))
                    }
                    None => additional == Some(&json!(true)) || preserves_unknown(schema),
                }
            });
            for (key, child_value) in map.iter_mut() {
                if root && matches!(key.as_str(), "apiVersion" | "kind" | "metadata") {
                    continue;
                }
                if let Some(child_schema) = properties
                    .and_then(|p| p.get(key))
                    .or(additional.filter(|a| a.is_object()))
                {
                    prune(child_schema, child_value, false);
                }
            }
        }
        Value::Array(items) => {
            if let Some(item_schema) = schema.get("items") {
                for item in items {
                    prune(item_schema, item, false);
                }
            }
        }
        _ => {}
    }
}

/// Fills in the schema's `default`s of absent fields, recursively.
pub fn apply_defaults(schema: &Value, value: &mut Value) {
    match value {
        Value::Object(map) => {
            if let Some(properties) = schema.get("properties").and_then(Value::as_object) {
                for (key, child_schema) in properties {
                    if !map.contains_key(key) {
                        if let Some(default) = child_schema.get("default") {
                            map.insert(key.clone(), default.clone());
                        }
                    }
                    if let Some(child_value) = map.get_mut(key) {
                        apply_defaults(child_schema, child_value);
                    }
                }
            }
            if let Some(additional) = schema.get("additionalProperties").filter(|a| a.is_object()) {
                for child_value in map.values_mut() {
                    apply_defaults(additional, child_value);
                }
            }
        }
        Value::Array(items) => {
            if let Some(item_schema) = schema.get("items") {
                for item in items {
                    apply_defaults(item_schema, item);
                }
            }
        }
        _ => {}
    }
}

fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn has_type(value: &Value, wanted: &str) -> bool {
    let actual = type_name(value);
    actual == wanted || (wanted == "number" && actual == "integer")
}

fn shown(value: &Value) -> String {
    match value {
        Value::String(s) => format!("{s:?}"),
        other => other.to_string(),
    }
}

/// Whether `text` matches the RE2 `pattern`, evaluated by the CEL
/// interpreter's `matches` (the API server's regular expressions are RE2).
fn matches_pattern(text: &str, pattern: &str) -> bool {
    let quoted = pattern.replace('\\', "\\\\").replace('\'', "\\'");
    let schema = json!({
        "type": "string",
        "x-kubernetes-validations": [{"rule": format!("self.matches('{quoted}')")}],
    });
    Validator::new()
        .validate(&schema, &json!(text), None)
        .is_ok()
}

/// The schema checks `value` fails (not the CEL rules), with the API
/// server's wording.
pub fn schema_violations(schema: &Value, value: &Value, path: &str, out: &mut Vec<Refusal>) {
    let mut refuse = |message: String| {
        out.push(Refusal {
            rule: None,
            path: path.to_owned(),
            message,
        })
    };
    if value.is_null() {
        if schema["nullable"] != json!(true) && schema.get("type").is_some() {
            refuse(format!(
                "Invalid value: \"null\": {path} in body must be of type {}: \"null\"",
                schema["type"].as_str().unwrap_or("object")
            ));
        }
        return;
    }
    let int_or_string = schema["x-kubernetes-int-or-string"] == json!(true);
    if int_or_string {
        if !matches!(value, Value::String(_)) && type_name(value) != "integer" {
            refuse(format!(
                "Invalid value: {}: {path} in body must be of type integer-or-string",
                shown(value)
            ));
            return;
        }
    } else if let Some(wanted) = schema.get("type").and_then(Value::as_str) {
        if !has_type(value, wanted) {
            refuse(format!(
                "Invalid value: \"{}\": {path} in body must be of type {wanted}: \"{}\"",
                type_name(value),
                type_name(value)
            ));
            return;
        }
    }
    if let Some(allowed) = schema.get("enum").and_then(Value::as_array) {
        if !allowed.contains(value) {
            let supported: Vec<String> =
                allowed.iter().filter(|v| !v.is_null()).map(shown).collect();
            refuse(format!(
                "Unsupported value: {}: supported values: {}",
                shown(value),
                supported.join(", ")
            ));
        }
    }
    if let Some(number) = value.as_f64() {
        if let Some(minimum) = schema.get("minimum").and_then(Value::as_f64) {
            if number < minimum {
                refuse(format!(
                    "Invalid value: {value}: {path} in body should be greater than or equal to {minimum}"
                ));
            }
        }
        if let Some(maximum) = schema.get("maximum").and_then(Value::as_f64) {
            if number > maximum {
                refuse(format!(
                    "Invalid value: {value}: {path} in body should be less than or equal to {maximum}"
                ));
            }
        }
    }
    if let Value::String(text) = value {
        let length = text.chars().count() as u64;
        if let Some(min) = schema.get("minLength").and_then(Value::as_u64) {
            if length < min {
                refuse(format!(
                    "Invalid value: {text:?}: {path} in body should be at least {min} chars long"
                ));
            }
        }
        if let Some(max) = schema.get("maxLength").and_then(Value::as_u64) {
            if length > max {
                refuse(format!("Too long: may not be more than {max} bytes"));
            }
        }
        if let Some(pattern) = schema.get("pattern").and_then(Value::as_str) {
            if !matches_pattern(text, pattern) {
                refuse(format!(
                    "Invalid value: {text:?}: {path} in body should match '{pattern}'"
                ));
            }
        }
    }
    match value {
        Value::Object(map) => object_violations(schema, map, path, out),
        Value::Array(items) => {
            if let Some(item_schema) = schema.get("items") {
                for (i, item) in items.iter().enumerate() {
                    schema_violations(item_schema, item, &format!("{path}[{i}]"), out);
                }
            }
        }
        _ => {}
    }
}

fn object_violations(schema: &Value, map: &Map<String, Value>, path: &str, out: &mut Vec<Refusal>) {
    if let Some(max) = schema.get("maxProperties").and_then(Value::as_u64) {
        if map.len() as u64 > max {
            out.push(Refusal {
                rule: None,
                path: path.to_owned(),
                message: format!("Too many: {}: must have at most {max} items", map.len()),
            });
        }
    }
    for required in schema
        .get("required")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
    {
        if !map.contains_key(required) {
            out.push(Refusal {
                rule: None,
                path: child(path, required),
                message: "Required value".into(),
            });
        }
    }
    let properties = schema.get("properties").and_then(Value::as_object);
    let additional = schema.get("additionalProperties").filter(|a| a.is_object());
    for (key, child_value) in map {
        if path.is_empty() && matches!(key.as_str(), "apiVersion" | "kind" | "metadata") {
            continue;
        }
        if let Some(child_schema) = properties.and_then(|p| p.get(key)).or(additional) {
            schema_violations(child_schema, child_value, &child(path, key), out);
        }
    }
}

/// Everything the API server refuses in `new` (an update of `old` when
/// given), after pruning and defaulting both as it would. CEL rules are
/// evaluated only on a body that passes the schema checks.
pub fn refusals(schema: &Value, new: &Value, old: Option<&Value>) -> Vec<Refusal> {
    let prepare = |value: &Value| {
        let mut value = value.clone();
        prune(schema, &mut value, true);
        apply_defaults(schema, &mut value);
        value
    };
    let new = prepare(new);
    let old = old.map(prepare);
    let mut out = Vec::new();
    schema_violations(schema, &new, "", &mut out);
    if !out.is_empty() {
        return out;
    }
    if let Err(errors) = Validator::new().validate(schema, &new, old.as_ref()) {
        out.extend(errors.into_vec().into_iter().map(|error| Refusal {
            rule: Some(error.rule.clone()),
            path: error.field_path.clone(),
            message: error.message.clone(),
        }));
    }
    out
}
