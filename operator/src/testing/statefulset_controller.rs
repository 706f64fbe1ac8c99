//! The StatefulSet controller the fake API server lacks, one pass at a time
//! ([`sync`]): it creates each missing pod's claims and then the pod
//! through the API server's admission, as `kube-controller-manager` does
//! (`OrderedReady`: one pod at a time, each waiting for the previous one
//! to be Ready; `Parallel`: all at once), records a `FailedCreate` Warning
//! Event on the StatefulSet when the API server refuses one, adopts
//! matching orphaned pods, removes pods above `replicas` (and their claims
//! when `whenScaled: Delete`), and reports its status. Pods are labelled
//! as the real controller labels them (`controller-revision-hash:
//! <name>-<hash>`, `statefulset.kubernetes.io/pod-name`, ...).
//!
//! The kubelet is the tests' job: [`set_ready`] and [`set_waiting`].

use serde_json::{json, Value};

use super::FakeApi;

/// What `rand.SafeEncodeString` maps digits to.
const SAFE_ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

/// `<name>-<hash>`: the revision name, with a 10-character hash of the
/// template as the real controller makes it (FNV-32a, safe-encoded).
pub fn revision_name(statefulset: &str, template: &Value) -> String {
    let bytes = serde_json::to_vec(template).unwrap_or_default();
    let hash = bytes.iter().fold(0x811c_9dc5_u32, |hash, byte| {
        (hash ^ u32::from(*byte)).wrapping_mul(0x0100_0193)
    });
    let encoded: String = format!("{hash:010}")
        .bytes()
        .map(|b| SAFE_ALPHABET[usize::from(b) % SAFE_ALPHABET.len()] as char)
        .collect();
    format!("{statefulset}-{encoded}")
}

fn now() -> String {
    format!(
        "{}",
        k8s_openapi::jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%SZ")
    )
}

pub fn is_ready(pod: &Value) -> bool {
    pod["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|c| c["type"] == "Ready" && c["status"] == "True")
}

fn owner(sts: &Value) -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "StatefulSet",
        "name": sts["metadata"]["name"], "uid": sts["metadata"]["uid"],
        "controller": true, "blockOwnerDeletion": true,
    })
}

fn selected(selector: &Value, labels: &Value) -> bool {
    selector
        .as_object()
        .into_iter()
        .flatten()
        .all(|(key, value)| &labels[key] == value)
}

/// A Warning Event on the StatefulSet, counted up when it repeats (as the
/// controller's event recorder aggregates).
fn failed_create(api: &FakeApi, sts: &Value, message: String) {
    let namespace = sts["metadata"]["namespace"].as_str().unwrap_or("");
    let uid = sts["metadata"]["uid"].clone();
    let existing = api.list("", "events", namespace).into_iter().find(|e| {
        e["involvedObject"]["uid"] == uid
            && e["reason"] == "FailedCreate"
            && e["message"] == message.as_str()
    });
    if let Some(event) = existing {
        let name = event["metadata"]["name"].as_str().unwrap_or("").to_owned();
        api.edit("", "events", namespace, &name, |event| {
            event["count"] = json!(event["count"].as_i64().unwrap_or(1) + 1);
            event["lastTimestamp"] = json!(now());
        });
        return;
    }
    let name = format!(
        "{}.{:x}",
        sts["metadata"]["name"].as_str().unwrap_or("sts"),
        k8s_openapi::jiff::Timestamp::now().as_nanosecond()
    );
    let _ = api.create(
        "",
        "events",
        namespace,
        json!({
            "apiVersion": "v1", "kind": "Event",
            "metadata": {"name": name, "namespace": namespace},
            "involvedObject": {"apiVersion": "apps/v1", "kind": "StatefulSet",
                               "name": sts["metadata"]["name"], "namespace": namespace, "uid": uid},
            "reason": "FailedCreate", "message": message, "type": "Warning",
            "source": {"component": "statefulset-controller"},
            "reportingComponent": "statefulset-controller",
            "count": 1, "firstTimestamp": now(), "lastTimestamp": now(),
        }),
    );
}

/// Creates the claims and then the pod of `ordinal`; the API server's
/// refusal, worded as the controller's Event, if any.
fn create_pod(api: &FakeApi, sts: &Value, ordinal: i64, revision: &str) -> Result<(), String> {
    let namespace = sts["metadata"]["namespace"].as_str().unwrap_or("");
    let name = sts["metadata"]["name"].as_str().unwrap_or("");
    let spec = &sts["spec"];
    let pod_name = format!("{name}-{ordinal}");
    let mut volumes: Vec<Value> = spec["template"]["spec"]["volumes"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    for template in spec["volumeClaimTemplates"]
        .as_array()
        .into_iter()
        .flatten()
    {
        let template_name = template["metadata"]["name"].as_str().unwrap_or("");
        let claim_name = format!("{template_name}-{name}-{ordinal}");
        volumes.push(
            json!({"name": template_name, "persistentVolumeClaim": {"claimName": claim_name}}),
        );
        if api
            .get("", "persistentvolumeclaims", namespace, &claim_name)
            .is_some()
        {
            continue;
        }
        let mut labels = template["metadata"]["labels"].clone();
        if !labels.is_object() {
            labels = json!({});
        }
        for (key, value) in spec["selector"]["matchLabels"]
            .as_object()
            .into_iter()
            .flatten()
        {
            labels[key] = value.clone();
        }
        let claim = json!({
            "apiVersion": "v1", "kind": "PersistentVolumeClaim",
            "metadata": {"name": claim_name, "namespace": namespace, "labels": labels},
            "spec": template["spec"],
            "status": {"phase": "Bound", "capacity": template["spec"]["resources"]["requests"]},
        });
        api.create("", "persistentvolumeclaims", namespace, claim).map_err(|error| {
            format!("create Claim {claim_name} for Pod {pod_name} in StatefulSet {name} failed error: {}", error.message)
        })?;
    }
    let mut labels = spec["template"]["metadata"]["labels"].clone();
    if !labels.is_object() {
        labels = json!({});
    }
    labels["controller-revision-hash"] = json!(revision);
    labels["statefulset.kubernetes.io/pod-name"] = json!(pod_name);
    labels["apps.kubernetes.io/pod-index"] = json!(ordinal.to_string());
    let mut pod_spec = spec["template"]["spec"].clone();
    pod_spec["hostname"] = json!(pod_name);
    pod_spec["subdomain"] = spec["serviceName"].clone();
    pod_spec["volumes"] = json!(volumes);
    let pod = json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": pod_name, "namespace": namespace, "labels": labels,
                     "annotations": spec["template"]["metadata"]["annotations"],
                     "ownerReferences": [owner(sts)]},
        "spec": pod_spec,
        "status": {"phase": "Pending"},
    });
    api.create("", "pods", namespace, pod)
        .map(|_| ())
        .map_err(|error| {
            format!(
                "create Pod {pod_name} in StatefulSet {name} failed error: {}",
                error.message
            )
        })
}

fn ordinal_of(statefulset: &str, pod: &Value) -> Option<i64> {
    pod["metadata"]["name"]
        .as_str()?
        .strip_prefix(statefulset)?
        .strip_prefix('-')?
        .parse()
        .ok()
}

/// One pass of the StatefulSet controller over `namespace/name`.
pub fn sync(api: &FakeApi, namespace: &str, name: &str) {
    let Some(sts) = api.get("apps", "statefulsets", namespace, name) else {
        return;
    };
    if !sts["metadata"]["deletionTimestamp"].is_null() {
        return;
    }
    let spec = &sts["spec"];
    let replicas = spec["replicas"].as_i64().unwrap_or(1);
    let parallel = spec["podManagementPolicy"] == "Parallel";
    let partition = spec["updateStrategy"]["rollingUpdate"]["partition"]
        .as_i64()
        .unwrap_or(0);
    let update = revision_name(name, &spec["template"]);
    let current = sts["status"]["currentRevision"]
        .as_str()
        .map(str::to_owned)
        .unwrap_or_else(|| update.clone());
    let selector = &spec["selector"]["matchLabels"];

    // Adoption: matching pods without a controller become ours.
    for pod in api.list("", "pods", namespace) {
        let orphan = pod["metadata"]["ownerReferences"]
            .as_array()
            .is_none_or(|owners| !owners.iter().any(|o| o["controller"] == true));
        if orphan
            && selected(selector, &pod["metadata"]["labels"])
            && ordinal_of(name, &pod).is_some()
        {
            let pod_name = pod["metadata"]["name"].as_str().unwrap_or("").to_owned();
            api.edit("", "pods", namespace, &pod_name, |pod| {
                pod["metadata"]["ownerReferences"] = json!([owner(&sts)]);
            });
        }
    }

    for ordinal in 0..replicas {
        match api.get("", "pods", namespace, &format!("{name}-{ordinal}")) {
            Some(pod) => {
                if !parallel && !is_ready(&pod) {
                    break;
                }
            }
            None => {
                let revision = if ordinal >= partition {
                    &update
                } else {
                    &current
                };
                let created = create_pod(api, &sts, ordinal, revision);
                if let Err(message) = created {
                    failed_create(api, &sts, message);
                }
                if !parallel {
                    break;
                }
            }
        }
    }

    let delete_claims = spec["persistentVolumeClaimRetentionPolicy"]["whenScaled"] == "Delete";
    for pod in api.list("", "pods", namespace) {
        let Some(ordinal) = ordinal_of(name, &pod).filter(|o| *o >= replicas) else {
            continue;
        };
        let _ = api.delete(
            "",
            "pods",
            namespace,
            &format!("{name}-{ordinal}"),
            "Background",
        );
        if delete_claims {
            for template in spec["volumeClaimTemplates"]
                .as_array()
                .into_iter()
                .flatten()
            {
                let claim = format!(
                    "{}-{name}-{ordinal}",
                    template["metadata"]["name"].as_str().unwrap_or("")
                );
                let _ = api.delete(
                    "",
                    "persistentvolumeclaims",
                    namespace,
                    &claim,
                    "Background",
                );
            }
        }
    }

    let pods: Vec<Value> = api
        .list("", "pods", namespace)
        .into_iter()
        .filter(|pod| ordinal_of(name, pod).is_some_and(|o| o < replicas))
        .collect();
    let ready = pods.iter().filter(|pod| is_ready(pod)).count();
    let updated = pods
        .iter()
        .filter(|pod| pod["metadata"]["labels"]["controller-revision-hash"] == update.as_str())
        .count();
    let current = if updated as i64 == replicas {
        update.clone()
    } else {
        current
    };
    let generation = sts["metadata"]["generation"].clone();
    api.edit("apps", "statefulsets", namespace, name, |sts| {
        sts["status"] = json!({
            "observedGeneration": generation,
            "replicas": pods.len(), "readyReplicas": ready, "availableReplicas": ready,
            "updatedReplicas": updated, "currentRevision": current, "updateRevision": update,
        });
    });
}

/// The kubelet's report on a pod: Running and Ready (or not).
pub fn set_ready(api: &FakeApi, namespace: &str, pod: &str, ready: bool) {
    api.edit("", "pods", namespace, pod, |pod| {
        let flag = if ready { "True" } else { "False" };
        pod["status"] = json!({
            "phase": "Running",
            "conditions": [{"type": "Ready", "status": flag}, {"type": "PodScheduled", "status": "True"}],
            "containerStatuses": [{"name": "zdb-node", "image": "", "imageID": "", "ready": ready,
                                   "restartCount": 0, "state": {"running": {}}}],
        });
    });
}

/// The kubelet's report on a container that waits: `reason` (such as
/// ImagePullBackOff) with `message`, after `last_exit` if it ran and died.
pub fn set_waiting(
    api: &FakeApi,
    namespace: &str,
    pod: &str,
    reason: &str,
    message: &str,
    last_exit: Option<(i32, &str)>,
) {
    api.edit("", "pods", namespace, pod, |pod| {
        let mut container = json!({
            "name": "zdb-node", "image": "", "imageID": "", "ready": false, "restartCount": 3,
            "state": {"waiting": {"reason": reason, "message": message}},
        });
        if let Some((code, message)) = last_exit {
            container["lastState"] = json!({"terminated": {"exitCode": code, "reason": "Error", "message": message}});
        }
        pod["status"] = json!({
            "phase": "Pending",
            "conditions": [{"type": "Ready", "status": "False"}, {"type": "PodScheduled", "status": "True"}],
            "containerStatuses": [container],
        });
    });
}
