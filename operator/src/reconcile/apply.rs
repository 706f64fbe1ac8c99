//! Writes to the Kubernetes API: server-side apply under the operator's one
//! field manager, for owned objects and for the ZdbCluster's status.

use kube::api::{Patch, PatchParams};
use kube::{Api, Resource};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::crd::{ZdbCluster, ZdbClusterStatus};
use crate::names::FIELD_MANAGER;

pub async fn apply<K>(api: &Api<K>, name: &str, object: &K) -> Result<K, kube::Error>
where
    K: Resource + Clone + Serialize + DeserializeOwned + std::fmt::Debug,
{
    let params = PatchParams::apply(FIELD_MANAGER).force();
    api.patch(name, &params, &Patch::Apply(object)).await
}

pub async fn apply_status(
    api: &Api<ZdbCluster>,
    name: &str,
    status: &ZdbClusterStatus,
) -> Result<(), kube::Error> {
    let body = serde_json::json!({
        "apiVersion": "zdb.io/v1alpha1",
        "kind": "ZdbCluster",
        "status": status,
    });
    let params = PatchParams::apply(FIELD_MANAGER).force();
    api.patch_status(name, &params, &Patch::Apply(&body))
        .await?;
    Ok(())
}

/// What the API server said, without kube's wrapping: the text a user can
/// act on (`only dynamically provisioned pvc can be resized ...`).
pub fn describe(error: &kube::Error) -> String {
    match error {
        kube::Error::Api(status) => status.message.clone(),
        other => other.to_string(),
    }
}
