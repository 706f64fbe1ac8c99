//! An in-memory Kubernetes API server, as strict as a real one where the
//! operator's behaviour depends on it. The clients under test send real
//! HTTP requests to it (through a tower-test mock service).
//!
//! - Every request is recorded with the verb the real authorizer checks
//!   (`get`, `list`, `watch`, `create`, `update`, `patch`, `delete`; a
//!   server-side apply that creates its object is authorized as `patch`
//!   and `create`), and the operator's requests are authorized against the
//!   chart's rendered ClusterRole: a missing grant is a 403, as on a
//!   cluster.
//! - It serves the built-in resources the operator and its tests use, the
//!   ZdbCluster CRD, and the CRDs a test installs ([`FakeApi::install_crd`],
//!   cert-manager's through [`cert_manager`](super::cert_manager)); any
//!   other resource is a 404, as on a cluster without it.
//! - Writes go through [`admission`](super::admission): names, labels,
//!   quantities, defaults, immutable fields, volume expansion, PodSecurity,
//!   Secrets, the ZdbCluster CRD's schema and CEL rules, other CRDs'
//!   schemas and webhooks; the status subresource only changes `status`,
//!   the main resource never does.
//! - Server-side apply merges into the stored object and drops what the
//!   same field manager applied before and no longer applies; a no-op
//!   apply changes nothing (no new resourceVersion, no watch event).
//! - Merge and JSON patches, resourceVersion preconditions on updates,
//!   generation bumps on spec changes, label and field selectors, watches
//!   (replayed from a resourceVersion), finalizers and deletion
//!   timestamps, garbage collection by owner reference (Orphan
//!   propagation included), and the ZdbCluster scale subresource as the
//!   CRD declares it.
//!
//! Not modelled: the events.k8s.io/v1 and core/v1 views of one Event store
//! (each group keeps its own), strategic merge (treated as a merge patch),
//! set-based label selectors, graceful pod termination (pods go at once),
//! and CRD validation ratcheting (an update is checked whole, where a real
//! server lets unchanged invalid fields stay: stricter, never laxer).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use axum::body::{Body as ResponseBody, Bytes};
use http::{Request, Response, StatusCode};
use kube::client::Body;
use serde_json::{json, Value};
use tokio::sync::mpsc;

use super::admission::{self, name_of, ApiError, Key, World};
use super::rbac::{self, Grants};

/// Who sends the requests: the operator (authorized by the chart's
/// ClusterRole) or a cluster administrator (a test acting as the user).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Identity {
    Operator,
    Admin,
}

/// One request the fake API server served.
#[derive(Debug, Clone, PartialEq)]
pub struct Recorded {
    pub identity: Identity,
    /// The request's verb, as the authorizer names it.
    pub verb: String,
    pub group: String,
    /// Resource, with `/status` (or `/scale`) for a subresource.
    pub resource: String,
    pub namespace: String,
    pub name: Option<String>,
    pub body: Option<Value>,
    /// `apply`, `merge`, `json` or `strategic` for a PATCH.
    pub patch_type: Option<&'static str>,
    /// Every verb the authorizer checked: `patch` and `create` for an apply
    /// that created its object.
    pub authorized: Vec<String>,
    /// The HTTP status answered.
    pub code: u16,
    /// Refused by RBAC (a 403 from admission, PodSecurity say, is not).
    pub denied: bool,
}

struct Watcher {
    group: String,
    resource: String,
    namespace: String,
    labels: Selector,
    sender: mpsc::UnboundedSender<Value>,
}

#[derive(Default)]
struct ApiState {
    version: u64,
    uids: u64,
    cluster_ips: u32,
    objects: BTreeMap<Key, Value>,
    /// What each field manager last applied: (object, status subresource, manager).
    applied: BTreeMap<(Key, bool, String), Value>,
    history: Vec<(u64, Key, &'static str, Value)>,
    watchers: Vec<Watcher>,
    requests: Vec<Recorded>,
    grants: Grants,
    crd: Value,
    /// Schemas of the other CRDs installed, by (group, resource).
    custom_schemas: BTreeMap<(String, String), Value>,
    gc_paused: bool,
}

/// The in-memory API server; clones share it.
#[derive(Clone)]
pub struct FakeApi {
    state: Arc<Mutex<ApiState>>,
}

/// Resources with a status subresource: writes to the main resource keep
/// the stored status, writes to `/status` change nothing else.
const WITH_STATUS: &[&str] = &[
    "zdbclusters",
    "statefulsets",
    "deployments",
    "pods",
    "persistentvolumeclaims",
    "services",
    "poddisruptionbudgets",
    "namespaces",
    "certificates",
];

/// The built-in resources this API server serves (with the ZdbCluster
/// CRD); other CRDs once installed. Anything else is a 404, as on a
/// cluster without it.
const BUILT_IN: &[(&str, &str)] = &[
    ("", "namespaces"),
    ("", "pods"),
    ("", "services"),
    ("", "configmaps"),
    ("", "secrets"),
    ("", "persistentvolumeclaims"),
    ("", "nodes"),
    ("", "events"),
    ("apps", "statefulsets"),
    ("apps", "deployments"),
    ("policy", "poddisruptionbudgets"),
    ("events.k8s.io", "events"),
    ("coordination.k8s.io", "leases"),
    ("storage.k8s.io", "storageclasses"),
    ("zdb.io", "zdbclusters"),
];

fn qualified(group: &str, resource: &str) -> String {
    if group.is_empty() {
        resource.to_owned()
    } else {
        format!("{resource}.{group}")
    }
}

/// An equality-based label selector (`a=b,c!=d,e,!f`).
#[derive(Debug, Clone, Default)]
struct Selector(Vec<(String, Option<String>, bool)>);

impl Selector {
    fn parse(text: &str) -> Selector {
        Selector(
            text.split(',')
                .map(str::trim)
                .filter(|term| !term.is_empty())
                .map(|term| {
                    if let Some((key, value)) = term.split_once("!=") {
                        (key.to_owned(), Some(value.to_owned()), false)
                    } else if let Some((key, value)) =
                        term.split_once("==").or_else(|| term.split_once('='))
                    {
                        (key.to_owned(), Some(value.to_owned()), true)
                    } else if let Some(key) = term.strip_prefix('!') {
                        (key.to_owned(), None, false)
                    } else {
                        (term.to_owned(), None, true)
                    }
                })
                .collect(),
        )
    }

    fn matches(&self, labels: &Value) -> bool {
        self.0.iter().all(|(key, value, equal)| {
            let actual = labels[key.as_str()].as_str();
            match value {
                Some(value) => (actual == Some(value.as_str())) == *equal,
                None => actual.is_some() == *equal,
            }
        })
    }
}

const EVENT_FIELDS: &[&str] = &[
    "involvedObject.kind",
    "involvedObject.namespace",
    "involvedObject.name",
    "involvedObject.uid",
    "involvedObject.apiVersion",
    "involvedObject.resourceVersion",
    "involvedObject.fieldPath",
    "reason",
    "reportingComponent",
    "source",
    "type",
];

/// A field selector, with the fields the API server supports for the resource.
fn field_selector(
    group: &str,
    resource: &str,
    text: &str,
) -> Result<Vec<(String, String, bool)>, ApiError> {
    let mut terms = Vec::new();
    for term in text.split(',').map(str::trim).filter(|t| !t.is_empty()) {
        let (field, value, equal) = if let Some((f, v)) = term.split_once("!=") {
            (f, v, false)
        } else if let Some((f, v)) = term.split_once("==").or_else(|| term.split_once('=')) {
            (f, v, true)
        } else {
            return Err(ApiError::new(
                400,
                "BadRequest",
                format!("invalid field selector {term:?}"),
            ));
        };
        let supported = matches!(field, "metadata.name" | "metadata.namespace")
            || (group.is_empty() && resource == "events" && EVENT_FIELDS.contains(&field));
        if !supported {
            return Err(ApiError::new(
                400,
                "BadRequest",
                format!("field label not supported: {field}"),
            ));
        }
        terms.push((field.to_owned(), value.to_owned(), equal));
    }
    Ok(terms)
}

fn field_value<'a>(object: &'a Value, field: &str) -> &'a str {
    let field = if field == "source" {
        "source.component"
    } else {
        field
    };
    field
        .split('.')
        .fold(object, |value, part| &value[part])
        .as_str()
        .unwrap_or("")
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
                match u8::from_str_radix(hex, 16) {
                    Ok(byte) => {
                        out.push(byte);
                        i += 3;
                        continue;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            b'+' => out.push(b' '),
            byte => out.push(byte),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn query(uri: &http::Uri) -> BTreeMap<String, String> {
    uri.query()
        .unwrap_or("")
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| match pair.split_once('=') {
            Some((key, value)) => (percent_decode(key), percent_decode(value)),
            None => (percent_decode(pair), String::new()),
        })
        .collect()
}

/// A parsed request path.
struct Target {
    group: String,
    resource: String,
    /// Empty for cluster-scoped objects and for lists across namespaces.
    namespace: String,
    name: Option<String>,
    subresource: Option<String>,
}

/// `/api/v1/...` or `/apis/GROUP/VERSION/...`, then
/// `namespaces/NS/RESOURCE[/NAME[/SUB]]` or `RESOURCE[/NAME[/SUB]]`.
fn parse_path(path: &str) -> Option<Target> {
    let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let (group, rest) = match *parts.first()? {
        "api" => (String::new(), parts.get(2..)?),
        "apis" => ((*parts.get(1)?).to_owned(), parts.get(3..)?),
        _ => return None,
    };
    let (namespace, rest) = match rest {
        ["namespaces", namespace, resource, rest @ ..] => {
            ((*namespace).to_owned(), [&[*resource][..], rest].concat())
        }
        rest => (String::new(), rest.to_vec()),
    };
    Some(Target {
        group,
        resource: (*rest.first()?).to_owned(),
        namespace,
        name: rest.get(1).map(|s| (*s).to_owned()),
        subresource: rest.get(2).map(|s| (*s).to_owned()),
    })
}

/// Server-side apply of `config` over `stored`: fields the same manager
/// applied before (`previous`) and no longer applies are removed, then the
/// config is merged in (objects field by field, lists and scalars whole).
fn server_side_apply(stored: &Value, previous: Option<&Value>, config: &Value) -> Value {
    fn remove_dropped(target: &mut Value, previous: &Value, config: &Value) {
        let (Some(target), Some(previous)) = (target.as_object_mut(), previous.as_object()) else {
            return;
        };
        for (key, before) in previous {
            match config.get(key) {
                None => {
                    target.remove(key);
                }
                Some(now) => {
                    if let Some(child) = target.get_mut(key) {
                        remove_dropped(child, before, now);
                    }
                }
            }
        }
    }
    fn merge(target: &mut Value, config: &Value) {
        match (target.as_object_mut(), config.as_object()) {
            (Some(target), Some(config)) => {
                for (key, value) in config {
                    match target.get_mut(key) {
                        Some(existing) if existing.is_object() && value.is_object() => {
                            merge(existing, value)
                        }
                        _ => {
                            target.insert(key.clone(), value.clone());
                        }
                    }
                }
            }
            _ => *target = config.clone(),
        }
    }
    let mut result = stored.clone();
    if let Some(previous) = previous {
        remove_dropped(&mut result, previous, config);
    }
    merge(&mut result, config);
    result
}

/// RFC 7386.
fn merge_patch(target: &mut Value, patch: &Value) {
    let Some(patch) = patch.as_object() else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = json!({});
    }
    for (key, value) in patch {
        if value.is_null() {
            if let Some(map) = target.as_object_mut() {
                map.remove(key);
            }
        } else {
            merge_patch(&mut target[key.as_str()], value);
        }
    }
}

fn pointer_parts(pointer: &str) -> Vec<String> {
    pointer
        .split('/')
        .skip(1)
        .map(|p| p.replace("~1", "/").replace("~0", "~"))
        .collect()
}

/// RFC 6902 (test, add, remove, replace), all or nothing.
fn json_patch(target: &Value, operations: &Value) -> Result<Value, String> {
    let mut result = target.clone();
    for operation in operations.as_array().ok_or("a JSON patch is a list")? {
        let op = operation["op"].as_str().unwrap_or("");
        let path = operation["path"].as_str().unwrap_or("");
        let parts = pointer_parts(path);
        let (last, parents) = parts.split_last().ok_or("the root cannot be patched")?;
        let mut parent = &mut result;
        for part in parents {
            parent = match parent {
                Value::Object(map) => map.get_mut(part).ok_or(format!("{path}: no such field"))?,
                Value::Array(items) => part
                    .parse::<usize>()
                    .ok()
                    .and_then(|i| items.get_mut(i))
                    .ok_or(format!("{path}: no such item"))?,
                _ => return Err(format!("{path}: not a container")),
            };
        }
        let current = match &*parent {
            Value::Object(map) => map.get(last).cloned(),
            Value::Array(items) => last
                .parse::<usize>()
                .ok()
                .and_then(|i| items.get(i))
                .cloned(),
            _ => None,
        };
        match op {
            "test" => {
                let expected = &operation["value"];
                let actual = current.unwrap_or(Value::Null);
                if &actual != expected {
                    return Err(format!("testing value {path} failed"));
                }
            }
            "remove" => {
                current.ok_or(format!("{path}: nothing to remove"))?;
                match parent {
                    Value::Object(map) => {
                        map.remove(last);
                    }
                    Value::Array(items) => {
                        items.remove(last.parse::<usize>().map_err(|e| e.to_string())?);
                    }
                    _ => {}
                }
            }
            "add" | "replace" => {
                let value = operation["value"].clone();
                if op == "replace" && current.is_none() {
                    return Err(format!("{path}: nothing to replace"));
                }
                match parent {
                    Value::Object(map) => {
                        map.insert(last.clone(), value);
                    }
                    Value::Array(items) if last == "-" => items.push(value),
                    Value::Array(items) => {
                        let i = last.parse::<usize>().map_err(|e| e.to_string())?;
                        if op == "replace" {
                            items[i] = value;
                        } else if i <= items.len() {
                            items.insert(i, value);
                        } else {
                            return Err(format!("{path}: index out of range"));
                        }
                    }
                    _ => return Err(format!("{path}: not a container")),
                }
            }
            other => return Err(format!("unsupported JSON patch operation {other:?}")),
        }
    }
    Ok(result)
}

/// Everything but metadata and status: a change bumps the generation.
fn spec_part(object: &Value) -> Value {
    let mut object = object.clone();
    if let Some(map) = object.as_object_mut() {
        map.remove("metadata");
        map.remove("status");
    }
    object
}

fn finalizers(object: &Value) -> Vec<String> {
    object["metadata"]["finalizers"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|f| f.as_str().map(str::to_owned))
        .collect()
}

enum Reply {
    Json(u16, Value),
    Watch(mpsc::UnboundedReceiver<Value>),
}

impl From<ApiError> for Reply {
    fn from(error: ApiError) -> Self {
        Reply::Json(error.code, error.status())
    }
}

impl Reply {
    fn code(&self) -> u16 {
        match self {
            Reply::Json(code, _) => *code,
            Reply::Watch(_) => 200,
        }
    }

    fn into_response(self) -> Response<ResponseBody> {
        let (code, body) = match self {
            Reply::Json(code, value) => (
                code,
                ResponseBody::from(serde_json::to_vec(&value).unwrap_or_default()),
            ),
            Reply::Watch(events) => {
                let stream = futures::stream::unfold(events, |mut events| async move {
                    let event = events.recv().await?;
                    let mut line = serde_json::to_vec(&event).unwrap_or_default();
                    line.push(b'\n');
                    Some((Ok::<_, std::io::Error>(Bytes::from(line)), events))
                });
                (200, ResponseBody::from_stream(stream))
            }
        };
        Response::builder()
            .status(StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR))
            .header("content-type", "application/json")
            .body(body)
            .unwrap_or_default()
    }
}

fn now() -> String {
    let now = k8s_openapi::jiff::Timestamp::now();
    format!("{}", now.strftime("%Y-%m-%dT%H:%M:%SZ"))
}

impl ApiState {
    fn world(&self) -> World<'_> {
        World {
            objects: &self.objects,
            crd_schema: &self.crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"],
            custom_schemas: &self.custom_schemas,
        }
    }

    fn served(&self, group: &str, resource: &str) -> bool {
        BUILT_IN.contains(&(group, resource))
            || self
                .custom_schemas
                .contains_key(&(group.to_owned(), resource.to_owned()))
    }

    fn admit(
        &self,
        key: &Key,
        new: &mut Value,
        old: Option<&Value>,
        status_only: bool,
    ) -> Result<(), ApiError> {
        admission::admit(&self.world(), key, new, old, status_only)
    }

    /// Stores `object` under a new resourceVersion and tells the watchers.
    fn commit(&mut self, key: &Key, mut object: Value, kind: &'static str) -> Value {
        self.version += 1;
        object["metadata"]["resourceVersion"] = json!(self.version.to_string());
        self.objects.insert(key.clone(), object.clone());
        self.notify(key, kind, &object);
        object
    }

    fn notify(&mut self, key: &Key, kind: &'static str, object: &Value) {
        self.history
            .push((self.version, key.clone(), kind, object.clone()));
        let event = json!({"type": kind, "object": object});
        self.watchers.retain(|watcher| {
            let matches = watcher.group == key.0
                && watcher.resource == key.1
                && (watcher.namespace.is_empty() || watcher.namespace == key.2)
                && watcher.labels.matches(&object["metadata"]["labels"]);
            !matches || watcher.sender.send(event.clone()).is_ok()
        });
    }

    fn stamp_new(&mut self, key: &Key, object: &mut Value) {
        self.uids += 1;
        let meta = &mut object["metadata"];
        meta["name"] = json!(key.3);
        if !key.2.is_empty() {
            meta["namespace"] = json!(key.2);
        }
        if meta["uid"].is_null() {
            meta["uid"] = json!(format!("uid-{}", self.uids));
        }
        if meta["creationTimestamp"].is_null() {
            meta["creationTimestamp"] = json!(now());
        }
        meta["generation"] = json!(1);
        if key.1 == "services" && object["spec"]["clusterIP"].is_null() {
            self.cluster_ips += 1;
            object["spec"]["clusterIP"] = json!(format!("10.96.0.{}", self.cluster_ips));
        }
    }

    fn create(&mut self, key: &Key, mut object: Value) -> Result<Value, ApiError> {
        if !key.2.is_empty() {
            let namespace = self.objects.get(&(
                String::new(),
                "namespaces".into(),
                String::new(),
                key.2.clone(),
            ));
            match namespace {
                None => return Err(ApiError::not_found("namespaces", &key.2)),
                Some(ns) if !ns["metadata"]["deletionTimestamp"].is_null() => {
                    return Err(ApiError::new(403, "Forbidden", format!(
                        "{} {:?} is forbidden: unable to create new content in namespace {} because it is being terminated",
                        qualified(&key.0, &key.1), key.3, key.2)));
                }
                Some(_) => {}
            }
        }
        if self.objects.contains_key(key) {
            return Err(ApiError::new(
                409,
                "AlreadyExists",
                format!("{} {:?} already exists", qualified(&key.0, &key.1), key.3),
            ));
        }
        self.stamp_new(key, &mut object);
        self.admit(key, &mut object, None, false)?;
        Ok(self.commit(key, object, "ADDED"))
    }

    /// Replaces the stored object with `new` (already merged or patched)
    /// after admission; `status_only` for the status subresource.
    fn update(&mut self, key: &Key, mut new: Value, status_only: bool) -> Result<Value, ApiError> {
        let stored = self
            .objects
            .get(key)
            .cloned()
            .ok_or_else(|| ApiError::not_found(&qualified(&key.0, &key.1), &key.3))?;
        let has_status = WITH_STATUS.contains(&key.1.as_str());
        if status_only {
            let status = new["status"].clone();
            new = stored.clone();
            new["status"] = status;
        } else if has_status {
            new["status"] = stored["status"].clone();
            if new["status"].is_null() {
                if let Some(map) = new.as_object_mut() {
                    map.remove("status");
                }
            }
        }
        // What the client may not change.
        for field in [
            "uid",
            "creationTimestamp",
            "namespace",
            "name",
            "deletionTimestamp",
        ] {
            new["metadata"][field] = stored["metadata"][field].clone();
            if new["metadata"][field].is_null() {
                if let Some(meta) = new["metadata"].as_object_mut() {
                    meta.remove(field);
                }
            }
        }
        new["metadata"]["resourceVersion"] = stored["metadata"]["resourceVersion"].clone();
        // Defaults first: a field the client leaves out and the server fills
        // in is no change.
        self.admit(key, &mut new, Some(&stored), status_only)?;
        let generation = stored["metadata"]["generation"].as_i64().unwrap_or(1);
        new["metadata"]["generation"] = json!(if spec_part(&stored) == spec_part(&new) {
            generation
        } else {
            generation + 1
        });
        if new == stored {
            return Ok(stored);
        }
        if !stored["metadata"]["deletionTimestamp"].is_null() && finalizers(&new).is_empty() {
            self.remove(key);
            return Ok(new);
        }
        Ok(self.commit(key, new, "MODIFIED"))
    }

    /// Removes the object and collects what it owned.
    fn remove(&mut self, key: &Key) {
        let Some(mut object) = self.objects.remove(key) else {
            return;
        };
        self.applied.retain(|(k, _, _), _| k != key);
        self.version += 1;
        object["metadata"]["resourceVersion"] = json!(self.version.to_string());
        self.notify(key, "DELETED", &object);
        if let Some(uid) = object["metadata"]["uid"].as_str() {
            self.collect_dependents(uid);
        }
    }

    fn dependents(&self, uid: &str) -> Vec<Key> {
        self.objects
            .iter()
            .filter(|(_, object)| {
                object["metadata"]["ownerReferences"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|owner| owner["uid"] == uid)
            })
            .map(|(key, _)| key.clone())
            .collect()
    }

    /// The garbage collector: dependents whose owner is gone go too.
    fn collect_dependents(&mut self, uid: &str) {
        for key in self.dependents(uid) {
            let _ = self.delete(&key, "Background");
        }
    }

    /// The garbage collector on an object deleted with Orphan propagation:
    /// its dependents lose their owner reference, then it goes.
    fn orphan_dependents(&mut self, key: &Key) {
        let Some(object) = self.objects.get(key).cloned() else {
            return;
        };
        let uid = object["metadata"]["uid"].as_str().unwrap_or("").to_owned();
        for dependent in self.dependents(&uid) {
            if let Some(mut child) = self.objects.get(&dependent).cloned() {
                if let Some(owners) = child["metadata"]["ownerReferences"].as_array_mut() {
                    owners.retain(|owner| owner["uid"] != uid.as_str());
                }
                self.commit(&dependent, child, "MODIFIED");
            }
        }
        let mut object = object;
        if let Some(list) = object["metadata"]["finalizers"].as_array_mut() {
            list.retain(|f| f != "orphan");
        }
        if finalizers(&object).is_empty() {
            self.remove(key);
        } else {
            self.commit(key, object, "MODIFIED");
        }
    }

    fn delete(&mut self, key: &Key, propagation: &str) -> Result<Value, ApiError> {
        let mut object = self
            .objects
            .get(key)
            .cloned()
            .ok_or_else(|| ApiError::not_found(&qualified(&key.0, &key.1), &key.3))?;
        let orphan = propagation == "Orphan";
        if finalizers(&object).is_empty() && !orphan {
            self.remove(key);
            return Ok(object);
        }
        if object["metadata"]["deletionTimestamp"].is_null() {
            object["metadata"]["deletionTimestamp"] = json!(now());
            object["metadata"]["deletionGracePeriodSeconds"] = json!(0);
        }
        if orphan && !finalizers(&object).iter().any(|f| f == "orphan") {
            let mut list = finalizers(&object);
            list.push("orphan".into());
            object["metadata"]["finalizers"] = json!(list);
        }
        let object = self.commit(key, object, "MODIFIED");
        if orphan && !self.gc_paused {
            self.orphan_dependents(key);
        }
        Ok(object)
    }

    fn list(&self, target: &Target, params: &BTreeMap<String, String>) -> Result<Value, ApiError> {
        let labels = Selector::parse(params.get("labelSelector").map_or("", String::as_str));
        let fields = field_selector(
            &target.group,
            &target.resource,
            params.get("fieldSelector").map_or("", String::as_str),
        )?;
        let items: Vec<Value> = self
            .objects
            .iter()
            .filter(|((g, r, ns, _), _)| {
                *g == target.group
                    && *r == target.resource
                    && (target.namespace.is_empty() || *ns == target.namespace)
            })
            .map(|(_, object)| object)
            .filter(|object| labels.matches(&object["metadata"]["labels"]))
            .filter(|object| {
                fields
                    .iter()
                    .all(|(field, value, equal)| (field_value(object, field) == value) == *equal)
            })
            .cloned()
            .collect();
        Ok(json!({
            "apiVersion": "v1", "kind": "List",
            "metadata": {"resourceVersion": self.version.to_string()},
            "items": items,
        }))
    }

    fn watch(&mut self, target: &Target, params: &BTreeMap<String, String>) -> Reply {
        let (sender, receiver) = mpsc::unbounded_channel();
        let labels = Selector::parse(params.get("labelSelector").map_or("", String::as_str));
        let watcher = Watcher {
            group: target.group.clone(),
            resource: target.resource.clone(),
            namespace: target.namespace.clone(),
            labels,
            sender,
        };
        let matches = |key: &Key, object: &Value| {
            key.0 == watcher.group
                && key.1 == watcher.resource
                && (watcher.namespace.is_empty() || watcher.namespace == key.2)
                && watcher.labels.matches(&object["metadata"]["labels"])
        };
        let since: u64 = params
            .get("resourceVersion")
            .and_then(|rv| rv.parse().ok())
            .unwrap_or(0);
        if since == 0 {
            for (key, object) in &self.objects {
                if matches(key, object) {
                    let _ = watcher
                        .sender
                        .send(json!({"type": "ADDED", "object": object}));
                }
            }
        } else {
            for (version, key, kind, object) in &self.history {
                if *version > since && matches(key, object) {
                    let _ = watcher.sender.send(json!({"type": kind, "object": object}));
                }
            }
        }
        self.watchers.push(watcher);
        Reply::Watch(receiver)
    }

    /// The `/scale` subresource, from the CRD's declaration of it.
    fn scale(&self, key: &Key) -> Result<Value, ApiError> {
        let declared = &self.crd["spec"]["versions"][0]["subresources"]["scale"];
        if key.1 != "zdbclusters" || declared.is_null() {
            return Err(ApiError::new(
                404,
                "NotFound",
                "the server could not find the requested resource",
            ));
        }
        let object = self
            .objects
            .get(key)
            .ok_or_else(|| ApiError::not_found(&qualified(&key.0, &key.1), &key.3))?;
        let at = |path: &Value| {
            let path = path.as_str().unwrap_or("");
            path.trim_start_matches('.')
                .split('.')
                .fold(object, |value, part| &value[part])
                .clone()
        };
        Ok(json!({
            "apiVersion": "autoscaling/v1", "kind": "Scale",
            "metadata": {"name": key.3, "namespace": key.2,
                         "resourceVersion": object["metadata"]["resourceVersion"],
                         "uid": object["metadata"]["uid"]},
            "spec": {"replicas": at(&declared["specReplicasPath"])},
            "status": {"replicas": at(&declared["statusReplicasPath"]).as_i64().unwrap_or(0),
                       "selector": at(&declared["labelSelectorPath"])},
        }))
    }

    fn set_scale(&mut self, key: &Key, scale: &Value) -> Result<Value, ApiError> {
        self.scale(key)?;
        let mut object = self.objects.get(key).cloned().unwrap_or_default();
        object["spec"]["replicas"] = scale["spec"]["replicas"].clone();
        self.update(key, object, false)?;
        self.scale(key)
    }
}

impl FakeApi {
    /// A new API server holding the ZdbCluster CRD (the committed YAML) and
    /// the `default` namespace, and a client authorized as the operator.
    pub fn start() -> (kube::Client, FakeApi) {
        let crd_path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("..")
            .join(crate::CRD_PATH);
        let crd = super::chart::read_yaml(&crd_path);
        let api = FakeApi {
            state: Arc::new(Mutex::new(ApiState {
                grants: Grants::of_operator_chart(),
                crd,
                ..ApiState::default()
            })),
        };
        api.namespace("default", json!({}));
        (api.client(Identity::Operator), api)
    }

    /// Installs a CustomResourceDefinition: from now on the resource is
    /// served, and admitted against `schema` (its openAPIV3Schema).
    pub fn install_crd(&self, group: &str, resource: &str, schema: Value) {
        self.lock()
            .custom_schemas
            .insert((group.to_owned(), resource.to_owned()), schema);
    }

    /// Another client of this server.
    pub fn client(&self, identity: Identity) -> kube::Client {
        let (service, mut handle) =
            tower_test::mock::pair::<Request<Body>, Response<ResponseBody>>();
        let server = self.clone();
        tokio::spawn(async move {
            while let Some((request, respond)) = handle.next_request().await {
                let (parts, body) = request.into_parts();
                let bytes = body.collect_bytes().await.unwrap_or_default();
                let body: Option<Value> = serde_json::from_slice(&bytes).ok();
                let content_type = parts
                    .headers
                    .get("content-type")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("")
                    .to_owned();
                let reply = server.handle(
                    identity,
                    parts.method.as_str(),
                    &parts.uri,
                    &content_type,
                    body,
                );
                respond.send_response(reply.into_response());
            }
        });
        kube::Client::new(service, "default")
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ApiState> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn handle(
        &self,
        identity: Identity,
        method: &str,
        uri: &http::Uri,
        content_type: &str,
        body: Option<Value>,
    ) -> Reply {
        let Some(target) = parse_path(uri.path()) else {
            return Reply::Json(
                404,
                ApiError::new(404, "NotFound", format!("unknown path {}", uri.path())).status(),
            );
        };
        let params = query(uri);
        let patch_type = match content_type {
            "application/apply-patch+yaml" => Some("apply"),
            "application/merge-patch+json" => Some("merge"),
            "application/json-patch+json" => Some("json"),
            "application/strategic-merge-patch+json" => Some("strategic"),
            _ => None,
        };
        let verb = match (method, &target.name) {
            ("GET", Some(_)) => "get",
            ("GET", None) if params.get("watch").is_some_and(|w| w == "true" || w == "1") => {
                "watch"
            }
            ("GET", None) => "list",
            ("POST", _) => "create",
            ("PUT", _) => "update",
            ("PATCH", _) => "patch",
            ("DELETE", Some(_)) => "delete",
            ("DELETE", None) => "deletecollection",
            _ => "unknown",
        };
        let resource = match &target.subresource {
            Some(sub) => format!("{}/{sub}", target.resource),
            None => target.resource.clone(),
        };
        let mut state = self.lock();
        let name = target.name.clone().or_else(|| {
            (verb == "create")
                .then(|| {
                    body.as_ref()
                        .and_then(|b| b["metadata"]["name"].as_str().map(str::to_owned))
                })
                .flatten()
        });
        let key: Key = (
            target.group.clone(),
            target.resource.clone(),
            target.namespace.clone(),
            name.clone().unwrap_or_default(),
        );
        // An apply that creates its object is also authorized as a create.
        let mut authorized = vec![verb.to_owned()];
        if patch_type == Some("apply")
            && target.subresource.is_none()
            && !state.objects.contains_key(&key)
        {
            authorized.push("create".into());
        }
        let denied = (identity == Identity::Operator)
            .then(|| {
                authorized
                    .iter()
                    .find(|v| !state.grants.allows(&target.group, &resource, v))
                    .cloned()
            })
            .flatten();
        let reply = match &denied {
            Some(verb) => Reply::from(ApiError::new(
                403,
                "Forbidden",
                rbac::forbidden(
                    verb,
                    &target.group,
                    &resource,
                    target.name.as_deref(),
                    &target.namespace,
                ),
            )),
            None => state.serve(&target, &key, verb, patch_type, &params, body.clone()),
        };
        state.requests.push(Recorded {
            identity,
            verb: verb.into(),
            group: target.group.clone(),
            resource,
            namespace: target.namespace.clone(),
            name: target.name.clone(),
            body,
            patch_type,
            authorized,
            code: reply.code(),
            denied: denied.is_some(),
        });
        reply
    }
}

impl ApiState {
    fn serve(
        &mut self,
        target: &Target,
        key: &Key,
        verb: &str,
        patch_type: Option<&'static str>,
        params: &BTreeMap<String, String>,
        body: Option<Value>,
    ) -> Reply {
        if !self.served(&target.group, &target.resource) {
            return ApiError::new(
                404,
                "NotFound",
                "the server could not find the requested resource",
            )
            .into();
        }
        let result = match (verb, target.subresource.as_deref()) {
            ("get", Some("scale")) => self.scale(key).map(|v| (200, v)),
            ("get", _) => self
                .objects
                .get(key)
                .cloned()
                .map(|v| (200, v))
                .ok_or_else(|| ApiError::not_found(&qualified(&key.0, &key.1), &key.3)),
            ("list", _) => self.list(target, params).map(|v| (200, v)),
            ("watch", _) => return self.watch(target, params),
            ("create", None) => match body {
                Some(object) if !name_of(&object).is_empty() => {
                    self.create(key, object).map(|v| (201, v))
                }
                _ => Err(ApiError::new(
                    422,
                    "Invalid",
                    "metadata.name: Required value: name or generateName is required",
                )),
            },
            ("update", Some("scale")) => {
                let scale = body.unwrap_or_default();
                self.set_scale(key, &scale).map(|v| (200, v))
            }
            ("update", sub) => {
                let object = body.unwrap_or_default();
                let stored_version = self
                    .objects
                    .get(key)
                    .map(|o| o["metadata"]["resourceVersion"].clone());
                match stored_version {
                    None => Err(ApiError::not_found(&qualified(&key.0, &key.1), &key.3)),
                    Some(version) if !object["metadata"]["resourceVersion"].is_null() && object["metadata"]["resourceVersion"] != version => {
                        Err(ApiError::new(409, "Conflict", format!(
                            "Operation cannot be fulfilled on {} {:?}: the object has been modified; please apply your changes to the latest version and try again",
                            qualified(&key.0, &key.1), key.3)))
                    }
                    Some(_) => self.update(key, object, sub == Some("status")).map(|v| (200, v)),
                }
            }
            ("patch", sub) => self.patch(key, sub, patch_type, params, body.unwrap_or_default()),
            ("delete", None) => {
                let options = body.unwrap_or_default();
                let propagation = options["propagationPolicy"]
                    .as_str()
                    .unwrap_or("Background")
                    .to_owned();
                let stored_uid = self.objects.get(key).map(|o| o["metadata"]["uid"].clone());
                match (&options["preconditions"]["uid"], stored_uid) {
                    (Value::String(wanted), Some(Value::String(uid))) if *wanted != uid => {
                        Err(ApiError::new(409, "Conflict", format!(
                            "Precondition failed: UID in precondition: {wanted}, UID in object meta: {uid}")))
                    }
                    _ => self.delete(key, &propagation).map(|v| (200, v)),
                }
            }
            _ => Err(ApiError::new(
                405,
                "MethodNotAllowed",
                format!("{verb} is not supported here"),
            )),
        };
        match result {
            Ok((code, value)) => Reply::Json(code, value),
            Err(error) => error.into(),
        }
    }

    fn patch(
        &mut self,
        key: &Key,
        sub: Option<&str>,
        patch_type: Option<&'static str>,
        params: &BTreeMap<String, String>,
        patch: Value,
    ) -> Result<(u16, Value), ApiError> {
        let status_only = sub == Some("status");
        if sub == Some("scale") {
            let mut scale = self.scale(key)?;
            merge_patch(&mut scale, &patch);
            return self.set_scale(key, &scale).map(|v| (200, v));
        }
        let stored = self.objects.get(key).cloned();
        match patch_type {
            Some("apply") => {
                let manager = params.get("fieldManager").cloned().unwrap_or_default();
                let applied_key = (key.clone(), status_only, manager);
                let mut config = patch;
                if !status_only && WITH_STATUS.contains(&key.1.as_str()) {
                    if let Some(map) = config.as_object_mut() {
                        map.remove("status");
                    }
                }
                let Some(stored) = stored else {
                    if status_only {
                        return Err(ApiError::not_found(&qualified(&key.0, &key.1), &key.3));
                    }
                    let created = self.create(key, config.clone())?;
                    self.applied.insert(applied_key, config);
                    return Ok((201, created));
                };
                let previous = self.applied.get(&applied_key).cloned();
                let merged = if status_only {
                    let mut merged = stored.clone();
                    merged["status"] = server_side_apply(
                        &stored["status"],
                        previous.as_ref().map(|p| &p["status"]),
                        &config["status"],
                    );
                    merged
                } else {
                    server_side_apply(&stored, previous.as_ref(), &config)
                };
                let updated = self.update(key, merged, status_only)?;
                self.applied.insert(applied_key, config);
                Ok((200, updated))
            }
            Some("json") => {
                let stored = stored
                    .ok_or_else(|| ApiError::not_found(&qualified(&key.0, &key.1), &key.3))?;
                let patched = json_patch(&stored, &patch)
                    .map_err(|error| ApiError::new(422, "Invalid", error))?;
                self.update(key, patched, status_only).map(|v| (200, v))
            }
            _ => {
                let mut patched = stored
                    .ok_or_else(|| ApiError::not_found(&qualified(&key.0, &key.1), &key.3))?;
                merge_patch(&mut patched, &patch);
                self.update(key, patched, status_only).map(|v| (200, v))
            }
        }
    }
}

/// Test-side access: seeding, inspecting and acting as the controllers and
/// kubelets that are not there.
impl FakeApi {
    /// Creates a namespace with `labels` (for PodSecurity, for instance).
    pub fn namespace(&self, name: &str, labels: Value) {
        let key: Key = (
            String::new(),
            "namespaces".into(),
            String::new(),
            name.into(),
        );
        let object = json!({"apiVersion": "v1", "kind": "Namespace",
                            "metadata": {"name": name, "labels": labels}});
        let mut state = self.lock();
        let _ = state.create(&key, object);
    }

    /// Creates an object as an administrator would: through admission.
    pub fn create(
        &self,
        group: &str,
        resource: &str,
        namespace: &str,
        object: Value,
    ) -> Result<Value, ApiError> {
        let key: Key = (
            group.into(),
            resource.into(),
            namespace.into(),
            name_of(&object).to_owned(),
        );
        self.lock().create(&key, object)
    }

    /// Stores an object as is (no admission), as if it had been there.
    pub fn put(&self, group: &str, resource: &str, namespace: &str, mut object: Value) {
        let key: Key = (
            group.into(),
            resource.into(),
            namespace.into(),
            name_of(&object).to_owned(),
        );
        let mut state = self.lock();
        if object["metadata"]["uid"].is_null() {
            state.uids += 1;
            object["metadata"]["uid"] = json!(format!("uid-{}", state.uids));
        }
        if !namespace.is_empty() {
            object["metadata"]["namespace"] = json!(namespace);
        }
        state.commit(&key, object, "MODIFIED");
    }

    pub fn get(&self, group: &str, resource: &str, namespace: &str, name: &str) -> Option<Value> {
        self.lock()
            .objects
            .get(&(group.into(), resource.into(), namespace.into(), name.into()))
            .cloned()
    }

    /// Every object of a resource in a namespace.
    pub fn list(&self, group: &str, resource: &str, namespace: &str) -> Vec<Value> {
        self.lock()
            .objects
            .iter()
            .filter(|((g, r, ns, _), _)| g == group && r == resource && ns == namespace)
            .map(|(_, object)| object.clone())
            .collect()
    }

    /// Changes a stored object in place, as the controller owning it would
    /// (the StatefulSet controller, the kubelet); watchers see it.
    pub fn edit(
        &self,
        group: &str,
        resource: &str,
        namespace: &str,
        name: &str,
        change: impl FnOnce(&mut Value),
    ) {
        let key: Key = (group.into(), resource.into(), namespace.into(), name.into());
        let mut state = self.lock();
        if let Some(mut object) = state.objects.get(&key).cloned() {
            change(&mut object);
            state.commit(&key, object, "MODIFIED");
        }
    }

    /// Deletes as an administrator (`propagation`: Background or Orphan).
    pub fn delete(
        &self,
        group: &str,
        resource: &str,
        namespace: &str,
        name: &str,
        propagation: &str,
    ) -> Result<Value, ApiError> {
        let key: Key = (group.into(), resource.into(), namespace.into(), name.into());
        self.lock().delete(&key, propagation)
    }

    /// Holds Orphan deletions until [`run_garbage_collector`](Self::run_garbage_collector),
    /// as a busy garbage collector would.
    pub fn pause_garbage_collector(&self) {
        self.lock().gc_paused = true;
    }

    pub fn run_garbage_collector(&self) {
        let mut state = self.lock();
        state.gc_paused = false;
        let orphaning: Vec<Key> = state
            .objects
            .iter()
            .filter(|(_, object)| finalizers(object).iter().any(|f| f == "orphan"))
            .map(|(key, _)| key.clone())
            .collect();
        for key in orphaning {
            state.orphan_dependents(&key);
        }
    }

    /// The requests served so far, and forgets them.
    pub fn take_requests(&self) -> Vec<Recorded> {
        std::mem::take(&mut self.lock().requests)
    }

    /// The requests served so far.
    pub fn requests(&self) -> Vec<Recorded> {
        self.lock().requests.clone()
    }

    /// Every (API group, resource, verb) the operator was authorized for.
    pub fn operator_verbs(requests: &[Recorded]) -> BTreeSet<(String, String, String)> {
        requests
            .iter()
            .filter(|r| r.identity == Identity::Operator)
            .flat_map(|r| {
                r.authorized
                    .iter()
                    .map(move |verb| (r.group.clone(), r.resource.clone(), verb.clone()))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_parse_like_the_api_server_routes_them() {
        let t = parse_path("/apis/apps/v1/namespaces/prod/statefulsets/db").expect("parses");
        assert_eq!(
            (t.group.as_str(), t.resource.as_str(), t.namespace.as_str()),
            ("apps", "statefulsets", "prod")
        );
        assert_eq!(t.name.as_deref(), Some("db"));
        let t = parse_path("/apis/zdb.io/v1alpha1/namespaces/prod/zdbclusters/db/status")
            .expect("parses");
        assert_eq!(t.subresource.as_deref(), Some("status"));
        let t = parse_path("/apis/zdb.io/v1alpha1/zdbclusters").expect("parses");
        assert_eq!((t.namespace.as_str(), t.name), ("", None));
        let t = parse_path("/api/v1/namespaces/prod").expect("parses");
        assert_eq!(
            (t.resource.as_str(), t.name.as_deref()),
            ("namespaces", Some("prod"))
        );
    }

    #[test]
    fn apply_drops_what_the_manager_no_longer_applies() {
        let stored =
            json!({"metadata": {"name": "a", "uid": "u"}, "spec": {"x": 1, "y": 2, "other": 3}});
        let previous = json!({"metadata": {"name": "a"}, "spec": {"x": 1, "y": 2}});
        let config = json!({"metadata": {"name": "a"}, "spec": {"x": 5}});
        let result = server_side_apply(&stored, Some(&previous), &config);
        assert_eq!(
            result,
            json!({"metadata": {"name": "a", "uid": "u"}, "spec": {"x": 5, "other": 3}})
        );
    }

    #[test]
    fn json_patch_tests_before_it_changes() {
        let object = json!({"metadata": {"finalizers": ["a"]}});
        let patch = json!([{"op": "test", "path": "/metadata/finalizers/0", "value": "a"},
                           {"op": "remove", "path": "/metadata/finalizers/0"}]);
        assert_eq!(
            json_patch(&object, &patch),
            Ok(json!({"metadata": {"finalizers": []}}))
        );
        let failing = json!([{"op": "test", "path": "/metadata/finalizers/0", "value": "b"}]);
        assert!(json_patch(&object, &failing).is_err());
        let add = json!([{"op": "test", "path": "/metadata/finalizers", "value": null},
                         {"op": "add", "path": "/metadata/finalizers", "value": ["z"]}]);
        assert_eq!(
            json_patch(&json!({"metadata": {}}), &add),
            Ok(json!({"metadata": {"finalizers": ["z"]}}))
        );
    }

    #[test]
    fn selectors_and_query_strings() {
        let selector = Selector::parse("app=zdb,tier!=web,ready,!gone");
        assert!(selector.matches(&json!({"app": "zdb", "ready": "1"})));
        assert!(!selector.matches(&json!({"app": "zdb"})));
        assert!(!selector.matches(&json!({"app": "zdb", "ready": "1", "gone": "x"})));
        assert_eq!(percent_decode("a%3Db%2Cc%2Fd"), "a=b,c/d");
    }
}
