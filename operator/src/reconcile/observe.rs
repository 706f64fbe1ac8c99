//! What a pass reads before it decides: the StatefulSet, the cluster's
//! pods, the StatefulSet's `FailedCreate` Events, and the zdb cluster's own
//! view through its admin API.

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{Event as CoreEvent, Pod};
use kube::api::ListParams;
use kube::Api;

use super::upgrade::PodInfo;
use super::upgrade::StatefulSetInfo;
use crate::names::{ClusterNames, TEMPLATE_HASH_ANNOTATION};

pub fn statefulset_info(sts: &StatefulSet) -> StatefulSetInfo {
    let spec = sts.spec.as_ref();
    let status = sts.status.as_ref();
    StatefulSetInfo {
        replicas: spec.and_then(|s| s.replicas).unwrap_or(1),
        partition: spec
            .and_then(|s| s.update_strategy.as_ref())
            .and_then(|u| u.rolling_update.as_ref())
            .and_then(|r| r.partition)
            .unwrap_or(0),
        template_hash: sts
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(TEMPLATE_HASH_ANNOTATION))
            .cloned(),
        update_revision: status.and_then(|s| s.update_revision.clone()),
        current_revision: status.and_then(|s| s.current_revision.clone()),
        status_current: status.and_then(|s| s.observed_generation) >= sts.metadata.generation,
    }
}

/// The cluster's pods when their StatefulSet is gone (deleted with its
/// pods orphaned, to be re-created): as many pods as are there, none to be
/// restarted until the new StatefulSet's rollout moves its partition.
pub fn orphaned_pods_info(pods: &[PodInfo]) -> Option<StatefulSetInfo> {
    let highest = pods
        .iter()
        .filter(|pod| !pod.terminating)
        .map(|pod| pod.ordinal)
        .max()?;
    Some(StatefulSetInfo {
        replicas: highest + 1,
        partition: highest + 1,
        template_hash: None,
        update_revision: None,
        current_revision: None,
        status_current: false,
    })
}

pub async fn pods(api: &Api<Pod>, names: &ClusterNames) -> Result<Vec<Pod>, kube::Error> {
    Ok(api
        .list(&ListParams::default().labels(&names.label_selector()))
        .await?
        .items)
}

/// The StatefulSet controller's `FailedCreate` Events on `sts` (it records
/// them as core/v1 Events).
pub async fn create_failures(
    api: &Api<CoreEvent>,
    sts: &StatefulSet,
) -> Result<Vec<CoreEvent>, kube::Error> {
    let (Some(name), Some(uid)) = (sts.metadata.name.as_deref(), sts.metadata.uid.as_deref())
    else {
        return Ok(Vec::new());
    };
    let selector = format!(
        "involvedObject.kind=StatefulSet,involvedObject.name={name},involvedObject.uid={uid},reason=FailedCreate"
    );
    Ok(api
        .list(&ListParams::default().fields(&selector))
        .await?
        .items)
}
