//! Test doubles: an in-memory Kubernetes API behind a tower-test mock
//! service (the client under test sends real HTTP requests to it), an
//! in-memory model of a zdb cluster's admin API, and a placement recorder.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use futures::future::BoxFuture;
use http::{Request, Response, StatusCode};
use kube::client::Body;
use serde_json::{json, Value};

use crate::admin::{AdminError, ClusterAdmin, ClusterView, NodeState};
use crate::placement::{ClusterKey, Placement, PlacementConfig};

/// One request the fake API server received.
#[derive(Debug, Clone, PartialEq)]
pub struct Recorded {
    pub verb: String,
    pub group: String,
    /// Resource, with `/status` for the status subresource.
    pub resource: String,
    pub name: Option<String>,
    pub body: Option<Value>,
}

#[derive(Default)]
struct ApiState {
    /// Last resourceVersion handed out by a create or an update.
    version: u64,
    /// (group, resource, namespace, name) -> object.
    objects: BTreeMap<(String, String, String, String), Value>,
    requests: Vec<Recorded>,
}

/// An in-memory Kubernetes API server: stores what is applied, serves
/// gets and lists from the store, and records every request.
#[derive(Clone, Default)]
pub struct FakeApi {
    state: Arc<Mutex<ApiState>>,
}

fn not_found(name: &str) -> (StatusCode, Value) {
    (
        StatusCode::NOT_FOUND,
        json!({"apiVersion": "v1", "kind": "Status", "status": "Failure",
               "reason": "NotFound", "code": 404, "message": format!("{name} not found")}),
    )
}

struct ApiPath {
    group: String,
    resource: String,
    namespace: String,
    name: Option<String>,
    subresource: Option<String>,
}

fn conflict(name: &str) -> (StatusCode, Value) {
    (
        StatusCode::CONFLICT,
        json!({"apiVersion": "v1", "kind": "Status", "status": "Failure",
               "reason": "Conflict", "code": 409, "message": format!("{name} changed")}),
    )
}

/// `/api/v1/namespaces/NS/RES[/NAME[/SUB]]` or
/// `/apis/GROUP/VERSION/namespaces/NS/RES[/NAME[/SUB]]`.
fn parse_path(path: &str) -> Option<ApiPath> {
    let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let (group, rest) = match *parts.first()? {
        "api" => (String::new(), parts.get(2..)?),
        "apis" => ((*parts.get(1)?).to_owned(), parts.get(3..)?),
        _ => return None,
    };
    if *rest.first()? != "namespaces" {
        return None;
    }
    Some(ApiPath {
        group,
        resource: (*rest.get(2)?).to_owned(),
        namespace: (*rest.get(1)?).to_owned(),
        name: rest.get(3).map(|s| (*s).to_owned()),
        subresource: rest.get(4).map(|s| (*s).to_owned()),
    })
}

impl FakeApi {
    /// A kube client talking to a new fake API server.
    pub fn start() -> (kube::Client, FakeApi) {
        let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        let api = FakeApi::default();
        let server = api.clone();
        tokio::spawn(async move {
            while let Some((request, respond)) = handle.next_request().await {
                let (parts, body) = request.into_parts();
                let bytes = body.collect_bytes().await.unwrap_or_default();
                let body: Option<Value> = serde_json::from_slice(&bytes).ok();
                let (status, reply) = server.handle(parts.method.as_str(), parts.uri.path(), body);
                let response = Response::builder()
                    .status(status)
                    .body(Body::from(serde_json::to_vec(&reply).unwrap_or_default()))
                    .expect("a valid response");
                respond.send_response(response);
            }
        });
        (kube::Client::new(service, "default"), api)
    }

    fn handle(&self, method: &str, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        let mut state = self.state.lock().expect("fake api lock");
        let Some(ApiPath {
            group,
            resource,
            namespace,
            name,
            subresource: sub,
        }) = parse_path(path)
        else {
            return (
                StatusCode::BAD_REQUEST,
                json!({"message": format!("unknown path {path}")}),
            );
        };
        let verb = match (method, &name) {
            ("GET", Some(_)) => "get",
            ("GET", None) => "list",
            ("PATCH", _) => "patch",
            ("POST", _) => "create",
            ("PUT", _) => "update",
            ("DELETE", _) => "delete",
            _ => "unknown",
        };
        state.requests.push(Recorded {
            verb: verb.into(),
            group: group.clone(),
            resource: match &sub {
                Some(sub) => format!("{resource}/{sub}"),
                None => resource.clone(),
            },
            name: name.clone(),
            body: body.clone(),
        });
        let key = |name: &str| {
            (
                group.clone(),
                resource.clone(),
                namespace.clone(),
                name.to_owned(),
            )
        };
        match (verb, name.as_deref()) {
            ("get", Some(name)) => match state.objects.get(&key(name)) {
                Some(object) => (StatusCode::OK, object.clone()),
                None => not_found(name),
            },
            ("list", None) => {
                let items: Vec<Value> = state
                    .objects
                    .iter()
                    .filter(|((g, r, ns, _), _)| *g == group && *r == resource && *ns == namespace)
                    .map(|(_, object)| object.clone())
                    .collect();
                (
                    StatusCode::OK,
                    json!({"apiVersion": "v1", "kind": "List", "metadata": {}, "items": items}),
                )
            }
            ("patch", Some(name)) => {
                let body = body.unwrap_or(Value::Null);
                let object = match sub.as_deref() {
                    Some("status") => {
                        let Some(object) = state.objects.get_mut(&key(name)) else {
                            return not_found(name);
                        };
                        object["status"] = body["status"].clone();
                        object.clone()
                    }
                    _ => {
                        let previous = state.objects.get(&key(name)).cloned();
                        let mut object = body.clone();
                        let generation = previous.as_ref().map_or(1, |p| {
                            let before = p["metadata"]["generation"].as_i64().unwrap_or(1);
                            if p["spec"] == body["spec"] {
                                before
                            } else {
                                before + 1
                            }
                        });
                        object["metadata"]["generation"] = json!(generation);
                        if let Some(status) = previous.as_ref().map(|p| p["status"].clone()) {
                            if !status.is_null() {
                                object["status"] = status;
                            }
                        }
                        if object["metadata"]["namespace"].is_null() {
                            object["metadata"]["namespace"] = json!(namespace);
                        }
                        state.objects.insert(key(name), object.clone());
                        object
                    }
                };
                (StatusCode::OK, object)
            }
            ("create", None) => {
                let mut body = body.unwrap_or(Value::Null);
                let name = body["metadata"]["name"]
                    .as_str()
                    .unwrap_or("unnamed")
                    .to_owned();
                if state.objects.contains_key(&key(&name)) {
                    return conflict(&name);
                }
                state.version += 1;
                body["metadata"]["resourceVersion"] = json!(state.version.to_string());
                state.objects.insert(key(&name), body.clone());
                (StatusCode::CREATED, body)
            }
            ("update", Some(name)) => {
                let mut body = body.unwrap_or(Value::Null);
                let stored = state
                    .objects
                    .get(&key(name))
                    .map(|o| o["metadata"]["resourceVersion"].clone());
                // Optimistic concurrency: the update must carry the stored version.
                if stored != Some(body["metadata"]["resourceVersion"].clone()) {
                    return conflict(name);
                }
                state.version += 1;
                body["metadata"]["resourceVersion"] = json!(state.version.to_string());
                state.objects.insert(key(name), body.clone());
                (StatusCode::OK, body)
            }
            ("delete", Some(name)) => match state.objects.remove(&key(name)) {
                Some(object) => (StatusCode::OK, object),
                None => not_found(name),
            },
            _ => (
                StatusCode::METHOD_NOT_ALLOWED,
                json!({"message": format!("{method} {path} not supported by the fake")}),
            ),
        }
    }

    pub fn put(&self, group: &str, resource: &str, namespace: &str, object: Value) {
        let name = object["metadata"]["name"]
            .as_str()
            .unwrap_or("unnamed")
            .to_owned();
        self.state.lock().expect("fake api lock").objects.insert(
            (group.into(), resource.into(), namespace.into(), name),
            object,
        );
    }

    pub fn get(&self, group: &str, resource: &str, namespace: &str, name: &str) -> Option<Value> {
        self.state
            .lock()
            .expect("fake api lock")
            .objects
            .get(&(group.into(), resource.into(), namespace.into(), name.into()))
            .cloned()
    }

    /// Changes a stored object in place (the StatefulSet controller, the kubelet).
    pub fn edit(
        &self,
        group: &str,
        resource: &str,
        namespace: &str,
        name: &str,
        change: impl FnOnce(&mut Value),
    ) {
        let mut state = self.state.lock().expect("fake api lock");
        if let Some(object) =
            state
                .objects
                .get_mut(&(group.into(), resource.into(), namespace.into(), name.into()))
        {
            change(object);
        }
    }

    /// The requests received so far, and forgets them.
    pub fn take_requests(&self) -> Vec<Recorded> {
        std::mem::take(&mut self.state.lock().expect("fake api lock").requests)
    }
}

/// An in-memory zdb cluster: node states, replica and leader counts,
/// ranges. `None` view: no node answers.
#[derive(Default)]
pub struct FakeZdb {
    pub view: Mutex<Option<ClusterView>>,
    pub calls: Mutex<Vec<String>>,
}

impl FakeZdb {
    pub fn set_view(&self, view: Option<ClusterView>) {
        *self.view.lock().expect("fake zdb lock") = view;
    }

    pub fn edit(&self, change: impl FnOnce(&mut ClusterView)) {
        if let Some(view) = self.view.lock().expect("fake zdb lock").as_mut() {
            change(view);
        }
    }

    pub fn take_calls(&self) -> Vec<String> {
        std::mem::take(&mut self.calls.lock().expect("fake zdb lock"))
    }

    fn record(&self, call: String) {
        self.calls.lock().expect("fake zdb lock").push(call);
    }
}

impl ClusterAdmin for FakeZdb {
    fn observe<'a>(
        &'a self,
        _endpoints: &'a [String],
    ) -> BoxFuture<'a, Result<ClusterView, AdminError>> {
        let view = self.view.lock().expect("fake zdb lock").clone();
        Box::pin(async move { view.ok_or_else(|| AdminError("no node answers".into())) })
    }

    fn set_node_state<'a>(
        &'a self,
        _endpoints: &'a [String],
        node_id: u64,
        state: NodeState,
    ) -> BoxFuture<'a, Result<(), AdminError>> {
        self.record(format!("set_node_state({node_id}, {state:?})"));
        self.edit(|view| {
            if let Some(node) = view.nodes.iter_mut().find(|n| n.node_id == node_id) {
                node.state = state;
            }
        });
        Box::pin(async { Ok(()) })
    }

    fn transfer_leader<'a>(
        &'a self,
        _endpoints: &'a [String],
        range_id: u64,
        to: u64,
    ) -> BoxFuture<'a, Result<(), AdminError>> {
        self.record(format!("transfer_leader({range_id}, {to})"));
        self.edit(|view| {
            let Some(range) = view.ranges.iter_mut().find(|r| r.range_id == range_id) else {
                return;
            };
            let from = std::mem::replace(&mut range.leader, to);
            for node in &mut view.nodes {
                if node.node_id == from {
                    node.leaders = node.leaders.saturating_sub(1);
                }
                if node.node_id == to {
                    node.leaders += 1;
                }
            }
        });
        Box::pin(async { Ok(()) })
    }
}

/// Records which clusters have a placement driver.
#[derive(Default)]
pub struct FakePlacement {
    pub running: Mutex<BTreeMap<ClusterKey, PlacementConfig>>,
    pub stopped: Mutex<BTreeSet<ClusterKey>>,
}

impl Placement for FakePlacement {
    fn ensure(&self, cluster: &ClusterKey, config: PlacementConfig) {
        self.running
            .lock()
            .expect("lock")
            .insert(cluster.clone(), config);
    }

    fn stop(&self, cluster: &ClusterKey) {
        self.running.lock().expect("lock").remove(cluster);
        self.stopped.lock().expect("lock").insert(cluster.clone());
    }

    fn running(&self) -> Vec<ClusterKey> {
        self.running.lock().expect("lock").keys().cloned().collect()
    }
}
