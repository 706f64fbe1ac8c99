//! What the API server does with a core/v1 Secret on a write: `stringData`
//! folded into `data` (and dropped), `type` defaulted to Opaque and
//! immutable, values that must be base64, keys that must be config keys,
//! at most 1 MiB of data, the keys a `kubernetes.io/tls` Secret must hold,
//! and nothing changed in a Secret marked `immutable`.

use k8s_openapi::ByteString;
use serde_json::{json, Map, Value};

use super::admission::ApiError;

/// The API server's limit on a Secret's data (`MaxSecretSize`).
const MAX_SECRET_BYTES: usize = 1024 * 1024;

fn is_config_key(key: &str) -> bool {
    !key.is_empty()
        && key.len() <= 253
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        && key != "."
        && key != ".."
}

fn bad_request(message: String) -> ApiError {
    ApiError::new(
        400,
        "BadRequest",
        format!("Secret in version \"v1\" cannot be handled as a Secret: {message}"),
    )
}

/// The bytes of one `data` value, or the 400 a value that is not base64 gets.
fn decoded(value: &Value) -> Result<Vec<u8>, ApiError> {
    serde_json::from_value::<ByteString>(value.clone())
        .map(|bytes| bytes.0)
        .map_err(|error| bad_request(error.to_string()))
}

/// `stringData` into `data`, as the API server converts it.
fn fold_string_data(secret: &mut Value) -> Result<(), ApiError> {
    let Some(strings) = secret
        .as_object_mut()
        .and_then(|map| map.remove("stringData"))
    else {
        return Ok(());
    };
    let Value::Object(strings) = strings else {
        return Err(bad_request("stringData must be an object".into()));
    };
    if !secret["data"].is_object() {
        secret["data"] = json!({});
    }
    for (key, value) in strings {
        let Value::String(text) = value else {
            return Err(bad_request(format!("stringData[{key}] must be a string")));
        };
        let encoded = serde_json::to_value(ByteString(text.into_bytes()))
            .map_err(|error| bad_request(error.to_string()))?;
        secret["data"][key.as_str()] = encoded;
    }
    Ok(())
}

/// Fills in what the API server fills in, then checks; `old` on update.
pub fn admit(
    new: &mut Value,
    old: Option<&Value>,
    causes: &mut Vec<String>,
) -> Result<(), ApiError> {
    fold_string_data(new)?;
    if new["type"].as_str().is_none_or(str::is_empty) {
        new["type"] = json!("Opaque");
    }
    let empty = Map::new();
    let data = new["data"].as_object().unwrap_or(&empty);
    let mut total = 0;
    for (key, value) in data {
        total += key.len() + decoded(value)?.len();
        if !is_config_key(key) {
            causes.push(format!(
                "data[{key}]: Invalid value: {key:?}: a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')"
            ));
        }
    }
    if total > MAX_SECRET_BYTES {
        causes.push(format!(
            "data: Too long: must have at most {MAX_SECRET_BYTES} bytes"
        ));
    }
    let type_ = new["type"].as_str().unwrap_or("Opaque").to_owned();
    if type_ == "kubernetes.io/tls" {
        for key in ["tls.crt", "tls.key"] {
            if !data.contains_key(key) {
                causes.push(format!("data[{key}]: Required value"));
            }
        }
    }
    let Some(old) = old else {
        return Ok(());
    };
    if old["type"].as_str() != Some(type_.as_str()) {
        causes.push(format!(
            "type: Invalid value: {type_:?}: field is immutable"
        ));
    }
    if old["immutable"] == json!(true) {
        if new["data"] != old["data"] {
            causes.push("data: Forbidden: field is immutable when `immutable` is set".into());
        }
        if new["immutable"] != json!(true) {
            causes.push("immutable: Forbidden: field is immutable when `immutable` is set".into());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret(type_: &str, data: Value) -> Value {
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"},
               "type": type_, "data": data})
    }

    #[test]
    fn tls_secrets_need_their_certificate_and_key() {
        let mut causes = Vec::new();
        let mut partial = secret("kubernetes.io/tls", json!({"tls.crt": "YQ=="}));
        admit(&mut partial, None, &mut causes).expect("decodes");
        assert_eq!(causes, ["data[tls.key]: Required value"]);
    }

    #[test]
    fn string_data_is_folded_into_data_and_values_must_be_base64() {
        let mut causes = Vec::new();
        let mut given = json!({"metadata": {"name": "s"}, "stringData": {"password": "hunter2"}});
        admit(&mut given, None, &mut causes).expect("admitted");
        assert!(causes.is_empty(), "{causes:?}");
        assert_eq!(given["type"], "Opaque");
        assert_eq!(given["data"]["password"], "aHVudGVyMg==");
        assert!(given.get("stringData").is_none());
        let mut bad = secret("Opaque", json!({"k": "not base64!"}));
        let error = admit(&mut bad, None, &mut causes).expect_err("400");
        assert_eq!(error.code, 400);
        let mut bad_key = secret("Opaque", json!({"a/b": "YQ=="}));
        admit(&mut bad_key, None, &mut causes).expect("decodes");
        assert!(causes[0].contains("a valid config key"), "{causes:?}");
    }

    #[test]
    fn type_and_immutable_data_cannot_change() {
        let old = secret("Opaque", json!({"k": "YQ=="}));
        let mut causes = Vec::new();
        let mut retyped = secret(
            "kubernetes.io/tls",
            json!({"tls.crt": "YQ==", "tls.key": "YQ=="}),
        );
        admit(&mut retyped, Some(&old), &mut causes).expect("decodes");
        assert_eq!(causes.len(), 1);
        assert!(causes[0].contains("field is immutable"), "{causes:?}");
        let mut frozen = old.clone();
        frozen["immutable"] = json!(true);
        let mut changed = frozen.clone();
        changed["data"]["k"] = json!("Yg==");
        causes.clear();
        admit(&mut changed, Some(&frozen), &mut causes).expect("decodes");
        assert_eq!(
            causes,
            ["data: Forbidden: field is immutable when `immutable` is set"]
        );
    }
}
