//! Reconcile scenarios against the fake Kubernetes API server (which
//! authorizes the operator with the chart's ClusterRole and admits objects
//! as a real one does) and an in-memory zdb cluster.
//!
//! - [`lifecycle`]: bootstrap, scale, upgrade, pause, volumes.
//! - [`problems`]: failing steps, failing pods, a bad image before bootstrap.
//! - [`kubernetes`]: what a real cluster imposes: RBAC, the scale
//!   subresource, PodSecurity, immutable StatefulSet fields, finalizers.
//! - [`security`]: TLS (operator-managed, cert-manager, provided),
//!   authentication and encryption Secrets.
//! - [`redis`]: the Redis port (`spec.redis`) on the pods and Services.
//! - [`controller`]: the running controller (watches, placement triggers).

mod controller;
mod kubernetes;
mod lifecycle;
mod problems;
mod redis;
mod security;

use std::sync::{Arc, Mutex};

use k8s_openapi::jiff::Timestamp;
use kube::api::{Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::events::Reporter;
use kube::Api;
use serde_json::{json, Value};

use super::*;
use crate::admin::{ClusterView, NodeState, NodeView, RangeView};
use crate::crd::ZdbCluster;
use crate::names::ClusterNames;
use crate::testing::{FakeApi, FakePlacement, FakeZdb, Identity, Recorded};

pub const NS: &str = "prod";
pub const NAME: &str = "db";

pub fn fixed_now() -> Timestamp {
    Timestamp::from_second(1_700_000_000).expect("a valid timestamp")
}

pub fn cluster(replicas: i32, image: &str) -> Value {
    json!({
        "apiVersion": "zdb.io/v1alpha1",
        "kind": "ZdbCluster",
        "metadata": {"name": NAME, "namespace": NS, "uid": "uid-1"},
        "spec": {"replicas": replicas, "replicationFactor": 3, "image": image,
                 "storage": {"size": "10Gi"}},
    })
}

pub struct Harness {
    pub api: FakeApi,
    pub zdb: Arc<FakeZdb>,
    pub placement: Arc<FakePlacement>,
    pub ctx: Arc<Context>,
    pub names: ClusterNames,
    /// A cluster administrator's client (a user's `kubectl`).
    pub admin: kube::Client,
    /// Every request taken so far.
    pub seen: Mutex<Vec<Recorded>>,
}

impl Harness {
    /// The cluster is created as a user would create it (through the CRD's
    /// validation) in namespace `prod` labelled `namespace_labels`, and a
    /// first reconcile adds the finalizer.
    pub async fn with_namespace(cluster: Value, namespace_labels: Value) -> Self {
        let (client, api) = FakeApi::start();
        api.namespace(NS, namespace_labels);
        api.create("zdb.io", "zdbclusters", NS, cluster)
            .expect("the API server accepts the cluster");
        Harness::around(client, api, NAME).with_finalizer().await
    }

    /// The first reconcile adds the finalizer, and does nothing else.
    pub async fn with_finalizer(self) -> Self {
        let harness = self;
        let action = reconcile(Arc::new(harness.stored_cluster()), harness.ctx.clone())
            .await
            .expect("the finalizer is added");
        assert_eq!(action, Action::await_change());
        let requests = harness.take();
        assert_eq!(requests.len(), 1, "{requests:?}");
        assert_eq!(
            (requests[0].resource.as_str(), requests[0].code),
            ("zdbclusters", 200)
        );
        assert_eq!(
            harness.stored_cluster().metadata.finalizers,
            Some(vec![FINALIZER.to_owned()])
        );
        harness
    }

    pub async fn new(cluster: Value) -> Self {
        Harness::with_namespace(cluster, json!({})).await
    }

    /// A harness around an API server seeded by the caller.
    pub fn around(client: kube::Client, api: FakeApi, name: &str) -> Self {
        let zdb = Arc::new(FakeZdb::default());
        let placement = Arc::new(FakePlacement::default());
        let ctx = Arc::new(Context {
            client,
            admin: zdb.clone(),
            placement: placement.clone(),
            reporter: Reporter {
                controller: "zdb-operator".into(),
                instance: Some("test".into()),
            },
            metrics: Arc::new(Metrics::new().expect("fresh registry")),
            clock: fixed_now,
        });
        Harness {
            admin: api.client(Identity::Admin),
            api,
            zdb,
            placement,
            ctx,
            names: ClusterNames::new(name, NS),
            seen: Mutex::new(Vec::new()),
        }
    }

    /// The requests since the last call; none of them refused by RBAC.
    pub fn take(&self) -> Vec<Recorded> {
        let requests = self.api.take_requests();
        for request in &requests {
            assert!(
                !request.denied,
                "the chart's ClusterRole does not grant {:?} on {}/{}: {request:?}",
                request.authorized, request.group, request.resource
            );
        }
        self.seen
            .lock()
            .expect("lock")
            .extend(requests.iter().cloned());
        requests
    }

    pub fn stored_cluster(&self) -> ZdbCluster {
        let object = self
            .api
            .get("zdb.io", "zdbclusters", NS, &self.names.name)
            .expect("cluster stored");
        serde_json::from_value(object).expect("a valid ZdbCluster")
    }

    pub fn clusters(&self) -> Api<ZdbCluster> {
        Api::namespaced(self.admin.clone(), NS)
    }

    /// A user's change of the spec, through the CRD's validation.
    pub async fn edit_spec(&self, change: impl FnOnce(&mut Value)) {
        let mut spec = serde_json::to_value(&self.stored_cluster().spec).expect("a spec");
        change(&mut spec);
        self.clusters()
            .patch(
                &self.names.name,
                &PatchParams::default(),
                &Patch::Merge(json!({"spec": spec})),
            )
            .await
            .expect("the API server accepts the change");
        self.api.take_requests();
    }

    /// A change the CRD of today refuses (as if made before its rules).
    pub fn edit_spec_unchecked(&self, change: impl FnOnce(&mut Value)) {
        self.api
            .edit("zdb.io", "zdbclusters", NS, &self.names.name, |cluster| {
                change(&mut cluster["spec"]);
                let generation = cluster["metadata"]["generation"].as_i64().unwrap_or(1);
                cluster["metadata"]["generation"] = json!(generation + 1);
            });
    }

    /// One reconcile pass; the requests it sent and the admin calls it made.
    pub async fn reconcile(&self) -> (Action, Vec<Recorded>, Vec<String>) {
        let action = reconcile(Arc::new(self.stored_cluster()), self.ctx.clone())
            .await
            .expect("reconcile succeeds");
        (action, self.take(), self.zdb.take_calls())
    }

    pub fn statefulset(&self) -> Value {
        self.api
            .get("apps", "statefulsets", NS, &self.names.name)
            .expect("StatefulSet applied")
    }

    pub fn partition(&self) -> i64 {
        self.statefulset()["spec"]["updateStrategy"]["rollingUpdate"]["partition"]
            .as_i64()
            .expect("a partition")
    }

    pub fn sts_replicas(&self) -> i64 {
        self.statefulset()["spec"]["replicas"]
            .as_i64()
            .expect("replicas")
    }

    /// The StatefulSet controller caught up: every pod ready on `current`
    /// (update revision `update`).
    pub fn settle_statefulset(&self, current: &str, update: &str) {
        let replicas = self.sts_replicas();
        self.api
            .edit("apps", "statefulsets", NS, &self.names.name, |sts| {
                let generation = sts["metadata"]["generation"].clone();
                sts["status"] = json!({
                    "replicas": replicas, "readyReplicas": replicas,
                    "currentRevision": current, "updateRevision": update,
                    "observedGeneration": generation,
                });
            });
    }

    /// A pod as the StatefulSet controller labels it, as the kubelet reports it.
    pub fn put_pod(&self, ordinal: i32, revision: &str, ready: bool, waiting: Option<&str>) {
        let mut labels = json!(self.names.labels());
        labels["controller-revision-hash"] = json!(revision);
        let mut pod = json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": self.names.pod(ordinal), "namespace": NS, "labels": labels},
            "status": {"conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}]},
        });
        if let Some(reason) = waiting {
            pod["status"]["containerStatuses"] = json!([{
                "name": "zdb-node", "image": "x", "imageID": "", "ready": false, "restartCount": 5,
                "state": {"waiting": {"reason": reason}},
            }]);
        }
        self.api.put("", "pods", NS, pod);
    }

    /// A running cluster of `nodes` nodes (node i+1 in pod i), one range
    /// per node, three voters each, led by its first voter.
    pub fn running_cluster(&self, nodes: i32) {
        let view = ClusterView {
            cluster_id: Some(format!("{NS}-{}-uid-1", self.names.name)),
            nodes: (0..nodes)
                .map(|ordinal| NodeView {
                    node_id: ordinal as u64 + 1,
                    address: self.names.node_address(ordinal),
                    state: NodeState::Active,
                    reachable: true,
                    replicas: 3,
                    leaders: 1,
                    zone: String::new(),
                })
                .collect(),
            ranges: (0..nodes as u64)
                .map(|i| RangeView {
                    range_id: i + 1,
                    voters: (0..3).map(|k| (i + k) % nodes as u64 + 1).collect(),
                    leader: i + 1,
                })
                .collect(),
        };
        self.zdb.set_view(Some(view));
    }
}

pub fn applied<'a>(requests: &'a [Recorded], resource: &str) -> Vec<&'a Recorded> {
    requests
        .iter()
        .filter(|r| r.verb == "patch" && r.resource == resource)
        .collect()
}

/// The reasons of the Events the operator wrote.
pub fn events(requests: &[Recorded]) -> Vec<String> {
    requests
        .iter()
        .filter(|r| r.group == "events.k8s.io" && r.resource == "events")
        .filter_map(|r| r.body.as_ref()?["reason"].as_str().map(str::to_owned))
        .collect()
}

/// (reason, note) of the Warning Events the operator wrote.
pub fn warnings(requests: &[Recorded]) -> Vec<(String, String)> {
    requests
        .iter()
        .filter(|r| r.group == "events.k8s.io" && r.resource == "events")
        .filter_map(|r| {
            let body = r.body.as_ref()?;
            (body["type"] == "Warning").then(|| {
                (
                    body["reason"].as_str().unwrap_or("").to_owned(),
                    body["note"].as_str().unwrap_or("").to_owned(),
                )
            })
        })
        .collect()
}

pub fn condition(cluster: &ZdbCluster, type_: &str) -> (String, String) {
    let condition = condition_of(cluster, type_);
    (condition.status.clone(), condition.reason.clone())
}

pub fn condition_message(cluster: &ZdbCluster, type_: &str) -> String {
    condition_of(cluster, type_).message.clone()
}

fn condition_of<'a>(
    cluster: &'a ZdbCluster,
    type_: &str,
) -> &'a k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition {
    cluster
        .status
        .as_ref()
        .expect("a status")
        .conditions
        .iter()
        .find(|c| c.type_ == type_)
        .expect("the condition")
}

/// A 3-node cluster whose first reconcile ran, pod 0 bootstrapped, and
/// everything settled on revision `r1`.
pub async fn bootstrapped(replicas: i32) -> Harness {
    let harness = Harness::new(cluster(replicas, "zdb:v1")).await;
    harness.reconcile().await;
    harness.settle_statefulset("r1", "r1");
    for ordinal in 0..replicas {
        harness.put_pod(ordinal, "r1", true, None);
    }
    harness.running_cluster(replicas);
    harness.reconcile().await;
    harness
}
