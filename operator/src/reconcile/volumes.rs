//! Growing volumes. A StatefulSet's volume claim templates are immutable,
//! so a larger `storage.size` is applied to each existing claim (the
//! StorageClass must allow expansion); the schema refuses shrinking. A
//! claim the API server refuses to grow is reported and the others still
//! grow.

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::PersistentVolumeClaim;
use kube::api::{ListParams, Patch, PatchParams};
use kube::{Api, ResourceExt};
use serde_json::json;

use super::apply::describe;
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

/// What [`expand`] did: the claims asked to grow, and why others could not.
#[derive(Debug, Default)]
pub struct Expansion {
    pub expanded: Vec<String>,
    pub failures: Vec<String>,
}

/// Applies `size` to every claim of the cluster that asks for another size.
pub async fn expand(
    claims: &Api<PersistentVolumeClaim>,
    names: &ClusterNames,
    size: &str,
) -> Expansion {
    let mut expansion = Expansion::default();
    let existing = match claims
        .list(&ListParams::default().labels(&names.label_selector()))
        .await
    {
        Ok(list) => list,
        Err(error) => {
            expansion.failures.push(format!(
                "cannot list the volume claims: {}",
                describe(&error)
            ));
            return expansion;
        }
    };
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
        match claims
            .patch(
                &name,
                &PatchParams::apply(FIELD_MANAGER).force(),
                &Patch::Apply(&body),
            )
            .await
        {
            Ok(_) => expansion.expanded.push(name),
            Err(error) => expansion.failures.push(format!(
                "cannot grow {name} to {size}: {}",
                describe(&error)
            )),
        }
    }
    expansion
}
