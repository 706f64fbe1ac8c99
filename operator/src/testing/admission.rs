//! What the API server checks and fills in on a write, for the kinds the
//! operator touches: object names, labels, quantities, defaults, immutable
//! fields (StatefulSet spec, claim specs), volume expansion only where the
//! StorageClass allows it, PodSecurity on pods, Secrets ([`secrets`](super::secrets)),
//! the CRD's schema and CEL rules on `ZdbCluster`s, and the schema and
//! webhook of any other CRD installed (cert-manager's
//! [`Certificate`](super::cert_manager)). Refusals carry the API server's
//! code, reason and (close to) its text.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::PodSpec;
use serde_json::{json, Value};

use super::{cert_manager, openapi, pod_security, quantity, secrets};

/// (API group, resource, namespace, name); cluster-scoped objects have an
/// empty namespace.
pub type Key = (String, String, String, String);

/// A refusal, as the API server's `Status`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub code: u16,
    pub reason: &'static str,
    pub message: String,
}

impl ApiError {
    pub fn new(code: u16, reason: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            code,
            reason,
            message: message.into(),
        }
    }

    pub fn not_found(resource: &str, name: &str) -> Self {
        ApiError::new(404, "NotFound", format!("{resource} {name:?} not found"))
    }

    /// 422 with the field errors, as `Kind.group "name" is invalid: ...`.
    pub fn invalid(object: &Value, causes: &[String]) -> Self {
        let causes = match causes {
            [one] => one.clone(),
            many => format!("[{}]", many.join(", ")),
        };
        ApiError::new(
            422,
            "Invalid",
            format!(
                "{} {:?} is invalid: {causes}",
                qualified_kind(object),
                name_of(object)
            ),
        )
    }

    pub fn status(&self) -> Value {
        json!({
            "apiVersion": "v1", "kind": "Status", "metadata": {}, "status": "Failure",
            "message": self.message, "reason": self.reason, "code": self.code,
        })
    }
}

pub fn name_of(object: &Value) -> &str {
    object["metadata"]["name"].as_str().unwrap_or("")
}

/// `StatefulSet.apps`, `Pod`, `ZdbCluster.zdb.io`: how errors name a kind.
fn qualified_kind(object: &Value) -> String {
    let kind = object["kind"].as_str().unwrap_or("Object");
    match object["apiVersion"]
        .as_str()
        .and_then(|v| v.split_once('/'))
    {
        Some((group, _)) => format!("{kind}.{group}"),
        None => kind.to_owned(),
    }
}

/// What admission can look at besides the object: other stored objects
/// (namespaces, StorageClasses), the ZdbCluster CRD's schema and those of
/// the other CRDs installed, by (group, resource).
pub struct World<'a> {
    pub objects: &'a BTreeMap<Key, Value>,
    pub crd_schema: &'a Value,
    pub custom_schemas: &'a BTreeMap<(String, String), Value>,
}

impl World<'_> {
    fn get(&self, group: &str, resource: &str, namespace: &str, name: &str) -> Option<&Value> {
        self.objects.get(&(
            group.to_owned(),
            resource.to_owned(),
            namespace.to_owned(),
            name.to_owned(),
        ))
    }
}

fn is_dns_label(name: &str, first_may_be_digit: bool) -> bool {
    let bytes = name.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 63
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
        && (bytes[0].is_ascii_lowercase() || (first_may_be_digit && bytes[0].is_ascii_digit()))
        && bytes[bytes.len() - 1] != b'-'
}

fn is_dns_subdomain(name: &str) -> bool {
    name.len() <= 253 && name.split('.').all(|part| is_dns_label(part, true))
}

fn name_error(resource: &str, name: &str) -> Option<String> {
    let ok = match resource {
        "services" => is_dns_label(name, false),
        "namespaces" => is_dns_label(name, true),
        _ => is_dns_subdomain(name),
    };
    (!ok).then(|| {
        let what = match resource {
            "services" => "a DNS-1035 label (at most 63 lowercase letters, digits and '-', starting with a letter)",
            "namespaces" => "a DNS-1123 label (at most 63 lowercase letters, digits and '-')",
            _ => "a lowercase RFC 1123 subdomain (at most 253 characters)",
        };
        format!("metadata.name: Invalid value: {name:?}: must be {what}")
    })
}

fn is_label_value(value: &str) -> bool {
    let bytes = value.as_bytes();
    bytes.is_empty()
        || (bytes.len() <= 63
            && bytes[0].is_ascii_alphanumeric()
            && bytes[bytes.len() - 1].is_ascii_alphanumeric()
            && bytes
                .iter()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.')))
}

fn is_label_key(key: &str) -> bool {
    let (prefix, name) = match key.rsplit_once('/') {
        Some((prefix, name)) => (Some(prefix), name),
        None => (None, key),
    };
    prefix.is_none_or(is_dns_subdomain) && !name.is_empty() && is_label_value(name)
}

fn label_errors(labels: &Value, path: &str, causes: &mut Vec<String>) {
    for (key, value) in labels.as_object().into_iter().flatten() {
        let value = value.as_str().unwrap_or("");
        if !is_label_key(key) {
            causes.push(format!("{path}: Invalid value: {key:?}: name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character"));
        }
        if value.len() > 63 {
            causes.push(format!(
                "{path}: Invalid value: {value:?}: must be no more than 63 characters"
            ));
        } else if !is_label_value(value) {
            causes.push(format!("{path}: Invalid value: {value:?}: a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character"));
        }
    }
}

/// A quantity field's value, or the 400 the API server answers when it
/// cannot even decode the object.
fn quantity_of(object: &Value, value: &Value) -> Result<f64, ApiError> {
    match value {
        Value::Number(n) => Ok(n.as_f64().unwrap_or(0.0)),
        Value::String(text) => quantity::parse(text).map_err(|error| {
            ApiError::new(
                400,
                "BadRequest",
                format!(
                    "{} in version \"v1\" cannot be handled as a {}: {error}",
                    object["kind"].as_str().unwrap_or("object"),
                    object["kind"].as_str().unwrap_or("object")
                ),
            )
        }),
        other => Err(ApiError::new(
            400,
            "BadRequest",
            format!("quantity {other} is neither a string nor a number"),
        )),
    }
}

fn shown(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Container resources in a pod spec: quantities, not negative, requests
/// within limits.
fn pod_spec_errors(
    object: &Value,
    spec: &Value,
    path: &str,
    causes: &mut Vec<String>,
) -> Result<(), ApiError> {
    for list in ["initContainers", "containers"] {
        for (i, container) in spec[list].as_array().into_iter().flatten().enumerate() {
            let at = format!("{path}.{list}[{i}].resources");
            let resources = &container["resources"];
            let mut limits = BTreeMap::new();
            for (name, value) in resources["limits"].as_object().into_iter().flatten() {
                let amount = quantity_of(object, value)?;
                if amount < 0.0 {
                    causes.push(format!(
                        "{at}.limits[{name}]: Invalid value: {:?}: must be greater than or equal to 0",
                        shown(value)
                    ));
                }
                limits.insert(name.clone(), (amount, shown(value)));
            }
            for (name, value) in resources["requests"].as_object().into_iter().flatten() {
                let amount = quantity_of(object, value)?;
                if amount < 0.0 {
                    causes.push(format!(
                        "{at}.requests[{name}]: Invalid value: {:?}: must be greater than or equal to 0",
                        shown(value)
                    ));
                }
                if let Some((limit, shown_limit)) = limits.get(name) {
                    if amount > *limit {
                        causes.push(format!(
                            "{at}.requests: Invalid value: {:?}: must be less than or equal to {name} limit of {shown_limit}",
                            shown(value)
                        ));
                    }
                }
            }
        }
    }
    Ok(())
}

/// A claim spec's storage request: present and above zero.
fn claim_spec_errors(
    object: &Value,
    spec: &Value,
    path: &str,
    causes: &mut Vec<String>,
) -> Result<(), ApiError> {
    if spec["accessModes"].as_array().is_none_or(Vec::is_empty) {
        causes.push(format!(
            "{path}.accessModes: Required value: at least 1 access mode is required"
        ));
    }
    match spec["resources"]["requests"].get("storage") {
        None => causes.push(format!("{path}.resources[storage]: Required value")),
        Some(value) => {
            if quantity_of(object, value)? <= 0.0 {
                causes.push(format!(
                    "{path}.resources.requests[storage]: Invalid value: {:?}: must be greater than zero",
                    shown(value)
                ));
            }
        }
    }
    Ok(())
}

fn set_default(object: &mut Value, pointer: &str, default: Value) {
    let (parent, key) = pointer.rsplit_once('/').unwrap_or(("", pointer));
    let mut target = &mut *object;
    for part in parent.split('/').filter(|p| !p.is_empty()) {
        if !target[part].is_object() {
            target[part] = json!({});
        }
        target = &mut target[part];
    }
    if target.get(key).is_none_or(Value::is_null) {
        target[key] = default;
    }
}

fn default_statefulset(sts: &mut Value) {
    set_default(sts, "/spec/replicas", json!(1));
    set_default(sts, "/spec/podManagementPolicy", json!("OrderedReady"));
    set_default(sts, "/spec/revisionHistoryLimit", json!(10));
    set_default(sts, "/spec/updateStrategy/type", json!("RollingUpdate"));
    if sts["spec"]["updateStrategy"]["type"] == "RollingUpdate" {
        set_default(
            sts,
            "/spec/updateStrategy/rollingUpdate/partition",
            json!(0),
        );
    }
    set_default(
        sts,
        "/spec/persistentVolumeClaimRetentionPolicy/whenDeleted",
        json!("Retain"),
    );
    set_default(
        sts,
        "/spec/persistentVolumeClaimRetentionPolicy/whenScaled",
        json!("Retain"),
    );
    if let Some(claims) = sts["spec"]["volumeClaimTemplates"].as_array_mut() {
        for claim in claims {
            set_default(claim, "/spec/volumeMode", json!("Filesystem"));
            set_default(claim, "/status/phase", json!("Pending"));
        }
    }
}

/// The StatefulSet spec fields an update may change.
const STATEFULSET_MUTABLE: &[&str] = &[
    "replicas",
    "ordinals",
    "template",
    "updateStrategy",
    "persistentVolumeClaimRetentionPolicy",
    "minReadySeconds",
];

fn without(spec: &Value, fields: &[&str]) -> Value {
    let mut spec = spec.clone();
    if let Some(map) = spec.as_object_mut() {
        for field in fields {
            map.remove(*field);
        }
    }
    spec
}

fn statefulset_errors(
    new: &Value,
    old: Option<&Value>,
    causes: &mut Vec<String>,
) -> Result<(), ApiError> {
    let spec = &new["spec"];
    let policy = spec["podManagementPolicy"].as_str().unwrap_or("");
    if !matches!(policy, "OrderedReady" | "Parallel") {
        causes.push(format!(
            "spec.podManagementPolicy: Unsupported value: {policy:?}: supported values: \"OrderedReady\", \"Parallel\""
        ));
    }
    let template_labels = &spec["template"]["metadata"]["labels"];
    for (key, value) in spec["selector"]["matchLabels"]
        .as_object()
        .into_iter()
        .flatten()
    {
        if &template_labels[key] != value {
            causes.push("spec.template.metadata.labels: Invalid value: `selector` does not match template `labels`".into());
            break;
        }
    }
    label_errors(template_labels, "spec.template.metadata.labels", causes);
    pod_spec_errors(new, &spec["template"]["spec"], "spec.template.spec", causes)?;
    for (i, claim) in spec["volumeClaimTemplates"]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
    {
        claim_spec_errors(
            new,
            &claim["spec"],
            &format!("spec.volumeClaimTemplates[{i}].spec"),
            causes,
        )?;
    }
    if let Some(old) = old {
        if without(&old["spec"], STATEFULSET_MUTABLE) != without(spec, STATEFULSET_MUTABLE) {
            causes.push("spec: Forbidden: updates to statefulset spec for fields other than 'replicas', 'ordinals', 'template', 'updateStrategy', 'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden".into());
        }
    }
    Ok(())
}

fn default_claim(world: &World<'_>, claim: &mut Value, creating: bool) {
    set_default(claim, "/spec/volumeMode", json!("Filesystem"));
    if creating && claim["spec"]["storageClassName"].is_null() {
        // The DefaultStorageClass admission plugin.
        let default_class = world
            .objects
            .iter()
            .find(|((group, resource, _, _), class)| {
                group == "storage.k8s.io"
                    && resource == "storageclasses"
                    && class["metadata"]["annotations"]
                        ["storageclass.kubernetes.io/is-default-class"]
                        == "true"
            });
        if let Some(((_, _, _, name), _)) = default_class {
            claim["spec"]["storageClassName"] = json!(name);
        }
    }
}

fn claim_errors(
    world: &World<'_>,
    new: &Value,
    old: Option<&Value>,
    causes: &mut Vec<String>,
) -> Result<(), ApiError> {
    claim_spec_errors(new, &new["spec"], "spec", causes)?;
    let Some(old) = old else {
        return Ok(());
    };
    let mutable = |spec: &Value| {
        let mut spec = without(spec, &["volumeAttributesClassName"]);
        if let Some(resources) = spec.get_mut("resources").and_then(Value::as_object_mut) {
            resources.remove("requests");
        }
        spec
    };
    if mutable(&old["spec"]) != mutable(&new["spec"]) {
        causes.push("spec: Forbidden: spec is immutable after creation except resources.requests and volumeAttributesClassName for bound claims".into());
        return Ok(());
    }
    let storage = |claim: &Value| claim["spec"]["resources"]["requests"]["storage"].clone();
    let (before, after) = (storage(old), storage(new));
    if before == after || after.is_null() {
        return Ok(());
    }
    let capacity = old["status"]["capacity"]["storage"].clone();
    let floor = if capacity.is_null() { before } else { capacity };
    if quantity_of(new, &after)? < quantity_of(old, &floor)? {
        causes.push(
            "spec.resources.requests.storage: Forbidden: field can not be less than status.capacity"
                .into(),
        );
        return Ok(());
    }
    let expandable = new["spec"]["storageClassName"]
        .as_str()
        .and_then(|class| world.get("storage.k8s.io", "storageclasses", "", class))
        .is_some_and(|class| class["allowVolumeExpansion"] == json!(true));
    if !expandable {
        return Err(ApiError::new(
            403,
            "Forbidden",
            format!(
                "persistentvolumeclaims {:?} is forbidden: only dynamically provisioned pvc can be resized and the storageclass that provisions the pvc must support resize",
                name_of(new)
            ),
        ));
    }
    Ok(())
}

fn pod_errors(
    world: &World<'_>,
    namespace: &str,
    pod: &Value,
    causes: &mut Vec<String>,
) -> Result<(), ApiError> {
    pod_spec_errors(pod, &pod["spec"], "spec", causes)?;
    if let Some(hostname) = pod["spec"]["hostname"].as_str() {
        if !is_dns_label(hostname, true) {
            causes.push(format!(
                "spec.hostname: Invalid value: {hostname:?}: must be a DNS-1123 label of at most 63 characters"
            ));
        }
    }
    let level = pod_security::Level::from_label(
        world
            .get("", "namespaces", "", namespace)
            .and_then(|ns| ns["metadata"]["labels"][pod_security::ENFORCE_LABEL].as_str()),
    );
    let spec: PodSpec = serde_json::from_value(pod["spec"].clone())
        .map_err(|e| ApiError::new(400, "BadRequest", format!("Pod cannot be decoded: {e}")))?;
    match pod_security::refusal(name_of(pod), &spec, level) {
        Some(refusal) => Err(ApiError::new(403, "Forbidden", refusal)),
        None => Ok(()),
    }
}

/// A custom resource against its CRD's structural schema: pruned,
/// defaulted, checked (CEL rules included).
fn custom_resource_errors(
    schema: &Value,
    new: &mut Value,
    old: Option<&Value>,
    status_only: bool,
) -> Result<(), ApiError> {
    if status_only {
        let status_schema = &schema["properties"]["status"];
        openapi::prune(status_schema, &mut new["status"], false);
        openapi::apply_defaults(status_schema, &mut new["status"]);
        let mut refusals = Vec::new();
        openapi::schema_violations(status_schema, &new["status"], "status", &mut refusals);
        let causes: Vec<String> = refusals.iter().map(ToString::to_string).collect();
        return if causes.is_empty() {
            Ok(())
        } else {
            Err(ApiError::invalid(new, &causes))
        };
    }
    let refusals = openapi::refusals(schema, new, old);
    if !refusals.is_empty() {
        let causes: Vec<String> = refusals.iter().map(ToString::to_string).collect();
        return Err(ApiError::invalid(new, &causes));
    }
    let status = new.get("status").cloned();
    openapi::prune(schema, new, true);
    openapi::apply_defaults(schema, new);
    if let Some(status) = status {
        new["status"] = status;
    }
    Ok(())
}

/// events.k8s.io/v1 Events: the fields a reporter must set, within their
/// limits (a note of at most 1 kB).
fn event_errors(event: &Value, causes: &mut Vec<String>) {
    for field in [
        "reason",
        "action",
        "reportingController",
        "reportingInstance",
        "eventTime",
    ] {
        if event[field].as_str().is_none_or(str::is_empty) {
            causes.push(format!("{field}: Required value"));
        }
    }
    for (field, limit) in [("reason", 128), ("action", 128)] {
        if event[field].as_str().is_some_and(|v| v.len() > limit) {
            causes.push(format!(
                "{field}: Too long: may not be more than {limit} bytes"
            ));
        }
    }
    if event["note"].as_str().is_some_and(|note| note.len() > 1024) {
        causes.push("note: Too long: may not be more than 1024 bytes".into());
    }
}

/// Checks a create (`old` None) or update of the object at `key`, filling
/// in the defaults the API server fills in. `status_only`: a write to the
/// status subresource.
pub fn admit(
    world: &World<'_>,
    key: &Key,
    new: &mut Value,
    old: Option<&Value>,
    status_only: bool,
) -> Result<(), ApiError> {
    let (group, resource, namespace, name) = key;
    let mut causes = Vec::new();
    if old.is_none() {
        if let Some(error) = name_error(resource, name) {
            causes.push(error);
        }
    }
    label_errors(&new["metadata"]["labels"], "metadata.labels", &mut causes);
    match (group.as_str(), resource.as_str()) {
        ("apps", "statefulsets") => {
            default_statefulset(new);
            statefulset_errors(new, old, &mut causes)?;
        }
        ("", "persistentvolumeclaims") => {
            default_claim(world, new, old.is_none());
            claim_errors(world, new, old, &mut causes)?;
        }
        // Pod specs are (nearly all) immutable: checked once, on creation.
        ("", "pods") if old.is_none() => pod_errors(world, namespace, new, &mut causes)?,
        ("", "services") => {
            set_default(new, "/spec/type", json!("ClusterIP"));
        }
        ("zdb.io", "zdbclusters") => {
            custom_resource_errors(world.crd_schema, new, old, status_only)?
        }
        ("", "secrets") => secrets::admit(new, old, &mut causes)?,
        (group, resource)
            if world
                .custom_schemas
                .contains_key(&(group.into(), resource.into())) =>
        {
            let schema = &world.custom_schemas[&(group.to_owned(), resource.to_owned())];
            custom_resource_errors(schema, new, old, status_only)?;
            if (group, resource) == (cert_manager::GROUP, cert_manager::RESOURCE) && !status_only {
                cert_manager::webhook_errors(new, &mut causes)?;
            }
        }
        ("events.k8s.io", "events") => event_errors(new, &mut causes),
        _ => {}
    }
    if causes.is_empty() {
        Ok(())
    } else {
        Err(ApiError::invalid(new, &causes))
    }
}
