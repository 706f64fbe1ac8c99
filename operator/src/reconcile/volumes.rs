//! Growing volumes. A StatefulSet's volume claim templates are immutable,
//! so a larger `storage.size` is applied to each existing claim (the
//! StorageClass must allow expansion); the schema refuses shrinking.

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::PersistentVolumeClaim;
use kube::api::{ListParams, Patch, PatchParams};
use kube::{Api, ResourceExt};
use serde_json::json;

use crate::error::Result;
use crate::names::{ClusterNames, FIELD_MANAGER};

fn requested_storage(claim: &PersistentVolumeClaim) -> Option<&str> {
    claim
        .spec
        .as_ref()?
        .resources
        .as_ref()?
        .requests
        .as_ref()?
        .get("storage")
        .map(|quantity| quantity.0.as_str())
}

/// The size the StatefulSet's claim template asks for.
pub fn template_size(sts: &StatefulSet) -> Option<&str> {
    sts.spec
        .as_ref()?
        .volume_claim_templates
        .as_ref()?
        .first()
        .and_then(requested_storage)
}

/// Applies `size` to every claim of the cluster that asks for another
/// size; returns the claims changed.
pub async fn expand(
    claims: &Api<PersistentVolumeClaim>,
    names: &ClusterNames,
    size: &str,
) -> Result<Vec<String>> {
    let existing = claims
        .list(&ListParams::default().labels(&names.label_selector()))
        .await?;
    let mut expanded = Vec::new();
    for claim in existing.items {
        let name = claim.name_any();
        let ours = names
            .ordinal_of_pod(
                name.strip_prefix(&format!("{}-", crate::names::DATA_VOLUME))
                    .unwrap_or(""),
            )
            .is_some();
        if !ours || requested_storage(&claim) == Some(size) {
            continue;
        }
        let body = json!({
            "apiVersion": "v1",
            "kind": "PersistentVolumeClaim",
            "metadata": {"name": name},
            "spec": {"resources": {"requests": {"storage": size}}},
        });
        claims
            .patch(
                &name,
                &PatchParams::apply(FIELD_MANAGER).force(),
                &Patch::Apply(&body),
            )
            .await?;
        expanded.push(name);
    }
    Ok(expanded)
}
