//! The cluster's pods as the reconciler sees them: what the rollout needs
//! of each ([`pod_info`]), and what is wrong with them ([`problems`]): a
//! container that cannot start or keeps dying (with the kubelet's reason,
//! its message and the last exit's, which is the node's last log lines), a
//! pod no Kubernetes node can take, a pod that failed, and a pod the
//! StatefulSet controller cannot create (PodSecurity, an invalid claim, a
//! label too long), from its `FailedCreate` Events.

use k8s_openapi::api::core::v1::{Event as CoreEvent, Pod};
use kube::ResourceExt;

use super::status::{Problem, POD_FAILING, POD_NOT_CREATED, POD_UNSCHEDULABLE};
use super::upgrade::PodInfo;
use crate::names::ClusterNames;

/// Container waiting reasons after which a pod will not become ready
/// without a change of its spec (or of what it depends on).
pub const STUCK_REASONS: &[&str] = &[
    "CrashLoopBackOff",
    "ImagePullBackOff",
    "ErrImagePull",
    "InvalidImageName",
    "CreateContainerConfigError",
    "CreateContainerError",
    "RunContainerError",
];

/// The longest text quoted from the kubelet or an Event.
const MAX_QUOTE: usize = 400;

fn quote(text: &str) -> String {
    let text = text.trim();
    if text.len() <= MAX_QUOTE {
        return text.to_owned();
    }
    // The end of a log is where the fatal error is.
    let mut start = text.len() - MAX_QUOTE;
    while !text.is_char_boundary(start) {
        start += 1;
    }
    format!("...{}", &text[start..])
}

pub fn pod_info(pod: &Pod, names: &ClusterNames) -> Option<PodInfo> {
    let name = pod.metadata.name.clone()?;
    let ordinal = names.ordinal_of_pod(&name)?;
    let status = pod.status.as_ref();
    let ready = status
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|conditions| {
            conditions
                .iter()
                .any(|c| c.type_ == "Ready" && c.status == "True")
        });
    let stuck = status
        .and_then(|s| s.container_statuses.as_ref())
        .into_iter()
        .flatten()
        .filter_map(|c| c.state.as_ref()?.waiting.as_ref()?.reason.clone())
        .find(|reason| STUCK_REASONS.contains(&reason.as_str()));
    Some(PodInfo {
        ordinal,
        revision: pod.labels().get("controller-revision-hash").cloned(),
        ready,
        stuck,
        terminating: pod.metadata.deletion_timestamp.is_some(),
        name,
    })
}

/// What is wrong with one existing pod, if anything.
fn pod_problem(pod: &Pod) -> Option<Problem> {
    let name = pod.name_any();
    let status = pod.status.as_ref()?;
    if status.phase.as_deref() == Some("Failed") {
        return Some(Problem::new(
            POD_FAILING,
            format!(
                "pod {name} failed: {}: {}",
                status.reason.as_deref().unwrap_or("Failed"),
                quote(status.message.as_deref().unwrap_or(""))
            ),
        ));
    }
    for container in status
        .init_container_statuses
        .iter()
        .flatten()
        .chain(status.container_statuses.iter().flatten())
    {
        let Some(waiting) = container.state.as_ref().and_then(|s| s.waiting.as_ref()) else {
            continue;
        };
        let reason = waiting.reason.as_deref().unwrap_or("");
        if !STUCK_REASONS.contains(&reason) {
            continue;
        }
        let mut message = format!("pod {name}: {reason}");
        if let Some(text) = waiting.message.as_deref().filter(|m| !m.is_empty()) {
            message.push_str(&format!(": {}", quote(text)));
        }
        if let Some(exit) = container
            .last_state
            .as_ref()
            .and_then(|s| s.terminated.as_ref())
        {
            message.push_str(&format!("; last exit code {}", exit.exit_code));
            if let Some(text) = exit.message.as_deref().filter(|m| !m.is_empty()) {
                message.push_str(&format!(": {}", quote(text)));
            }
        }
        return Some(Problem::new(POD_FAILING, message));
    }
    let unschedulable = status.conditions.iter().flatten().find(|c| {
        c.type_ == "PodScheduled"
            && c.status == "False"
            && c.reason.as_deref() == Some("Unschedulable")
    })?;
    Some(Problem::new(
        POD_UNSCHEDULABLE,
        format!(
            "pod {name} cannot be scheduled: {}",
            quote(unschedulable.message.as_deref().unwrap_or(""))
        ),
    ))
}

/// The newest `FailedCreate` Event that names `pod` (as `Pod <name> ` or
/// `for Pod <name> `, the StatefulSet controller's wording).
fn create_failure<'a>(pod: &str, failures: &'a [CoreEvent]) -> Option<&'a CoreEvent> {
    let mention = format!("Pod {pod} ");
    failures
        .iter()
        .filter(|event| {
            event
                .message
                .as_deref()
                .is_some_and(|m| m.contains(&mention))
        })
        .max_by_key(|event| {
            event
                .last_timestamp
                .as_ref()
                .map(|t| t.0)
                .or_else(|| event.event_time.as_ref().map(|t| t.0))
        })
}

/// Every problem of the cluster's pods `0..replicas`: existing pods that do
/// not run, and missing pods the StatefulSet controller failed to create
/// (`create_failures`: its FailedCreate Events on the StatefulSet).
pub fn problems(
    pods: &[Pod],
    names: &ClusterNames,
    replicas: i32,
    create_failures: &[CoreEvent],
) -> Vec<Problem> {
    let mut out = Vec::new();
    for ordinal in 0..replicas {
        let name = names.pod(ordinal);
        match pods
            .iter()
            .find(|pod| pod.metadata.name.as_deref() == Some(name.as_str()))
        {
            Some(pod) => out.extend(pod_problem(pod)),
            None => {
                if let Some(event) = create_failure(&name, create_failures) {
                    out.push(Problem::new(
                        POD_NOT_CREATED,
                        format!(
                            "pod {name} cannot be created: {}",
                            quote(event.message.as_deref().unwrap_or(""))
                        ),
                    ));
                }
            }
        }
    }
    out
}

/// Whether any pod of `0..replicas` is missing (then the StatefulSet's
/// Events are worth reading).
pub fn any_missing(pods: &[Pod], names: &ClusterNames, replicas: i32) -> bool {
    (0..replicas).any(|ordinal| {
        let name = names.pod(ordinal);
        !pods
            .iter()
            .any(|pod| pod.metadata.name.as_deref() == Some(name.as_str()))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(value: serde_json::Value) -> Pod {
        serde_json::from_value(value).expect("a pod")
    }

    #[test]
    fn names_the_pod_and_the_kubelets_reason() {
        let names = ClusterNames::new("db", "prod");
        let pods = [
            pod(
                json!({"metadata": {"name": "db-0"}, "status": {"phase": "Pending",
                "containerStatuses": [{"name": "zdb-node", "image": "", "imageID": "", "ready": false,
                    "restartCount": 0, "state": {"waiting": {"reason": "ImagePullBackOff",
                        "message": "Back-off pulling image \"zdb:tpyo\""}}}]}}),
            ),
            pod(
                json!({"metadata": {"name": "db-1"}, "status": {"phase": "Running",
                "containerStatuses": [{"name": "zdb-node", "image": "", "imageID": "", "ready": false,
                    "restartCount": 4, "state": {"waiting": {"reason": "CrashLoopBackOff"}},
                    "lastState": {"terminated": {"exitCode": 1,
                        "message": "refusing /var/lib/zdb/data: it belongs to cluster prod-db-old"}}}]}}),
            ),
            pod(
                json!({"metadata": {"name": "db-2"}, "status": {"phase": "Pending",
                "conditions": [{"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                    "message": "0/3 nodes are available: 3 Insufficient memory."}]}}),
            ),
        ];
        let found = problems(&pods, &names, 4, &[]);
        let messages: Vec<&str> = found.iter().map(|p| p.message.as_str()).collect();
        assert_eq!(
            messages,
            [
                "pod db-0: ImagePullBackOff: Back-off pulling image \"zdb:tpyo\"",
                "pod db-1: CrashLoopBackOff; last exit code 1: refusing /var/lib/zdb/data: it belongs to cluster prod-db-old",
                "pod db-2 cannot be scheduled: 0/3 nodes are available: 3 Insufficient memory.",
            ]
        );
        assert_eq!(found[2].reason, POD_UNSCHEDULABLE);
    }

    #[test]
    fn a_pod_the_statefulset_cannot_create_is_named_with_the_refusal() {
        let names = ClusterNames::new("db", "prod");
        let event: CoreEvent = serde_json::from_value(json!({
            "metadata": {"name": "db.1"}, "involvedObject": {"kind": "StatefulSet", "name": "db"},
            "reason": "FailedCreate", "type": "Warning",
            "message": "create Pod db-1 in StatefulSet db failed error: pods \"db-1\" is forbidden: violates PodSecurity \"restricted:latest\": seccompProfile",
        }))
        .expect("an event");
        let pods = [pod(
            json!({"metadata": {"name": "db-0"}, "status": {"phase": "Running"}}),
        )];
        assert!(any_missing(&pods, &names, 2));
        let found = problems(&pods, &names, 2, &[event]);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].reason, POD_NOT_CREATED);
        assert!(
            found[0]
                .message
                .starts_with("pod db-1 cannot be created: create Pod db-1"),
            "{}",
            found[0].message
        );
    }
}
