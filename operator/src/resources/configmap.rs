//! The ConfigMap every node pod mounts: the entry script that decides how
//! the node starts, the cluster id, and whether the cluster exists yet.
//!
//! Bootstrap happens exactly once, through pod 0: while `bootstrapped` is
//! `false`, pod 0 founds a one-node cluster (`--id 1 --peers ...`). Once the
//! operator has seen that cluster answer with its id, it records the id in
//! the status and flips `bootstrapped` to `true`; from then on every pod
//! with an empty volume joins (`--join` through the client Service), pod 0
//! included, so a lost volume can never found a second cluster. A pod whose
//! volume holds a node identity restarts as that node whatever the flags say
//! (the node keeps its identity in its data directory).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ConfigMap;

use super::owned_metadata;
use crate::crd::ZdbCluster;
use crate::error::Result;
use crate::names::{ClusterNames, DATA_MOUNT};

pub const ENTRYPOINT_KEY: &str = "entrypoint.sh";
pub const BOOTSTRAPPED_KEY: &str = "bootstrapped";
pub const CLUSTER_ID_KEY: &str = "cluster-id";
/// The nodes a new node may join through, comma-separated: every pod's
/// stable address, then the client Service. The node tries them in turn
/// (only a node holding a replica of the meta range can register it).
pub const JOIN_SEEDS_KEY: &str = "join-seeds";

/// The entry script. The environment comes from the pod template
/// (`POD_NAME`, `POD_NAMESPACE`, `HEADLESS_SERVICE`, `GRPC_PORT`,
/// `STATUS_PORT`); the container's args are passed through.
pub fn entrypoint_script() -> String {
    format!(
        r#"#!/bin/sh
# zdb node entry point, written by zdb-operator. See operator/src/resources/configmap.rs.
set -eu
config_dir="$(dirname "$0")"
ordinal="${{POD_NAME##*-}}"
self="$POD_NAME.$HEADLESS_SERVICE.$POD_NAMESPACE.svc:$GRPC_PORT"
bootstrapped="$(cat "$config_dir/{BOOTSTRAPPED_KEY}")"
cluster_id="$(cat "$config_dir/{CLUSTER_ID_KEY}")"
join_seeds="$(cat "$config_dir/{JOIN_SEEDS_KEY}")"
set -- --listen="0.0.0.0:$GRPC_PORT" --advertise="$self" \
  --status-listen="0.0.0.0:$STATUS_PORT" --data="{DATA_MOUNT}/data" "$@"
if [ "$ordinal" = "0" ] && [ "$bootstrapped" = "false" ]; then
  echo "pod 0 of a new cluster: founding cluster $cluster_id"
  exec zdb-node --id=1 --peers="1=$self" --cluster-id="$cluster_id" "$@"
fi
echo "joining through $join_seeds (a node with data restarts as itself)"
exec zdb-node --join="$join_seeds" "$@"
"#
    )
}

/// The cluster id pod 0 bootstraps with: unique per `ZdbCluster` object, so
/// volumes left over from a deleted cluster of the same name are refused.
pub fn cluster_id(cluster: &ZdbCluster, names: &ClusterNames) -> String {
    match cluster.metadata.uid.as_deref() {
        Some(uid) => format!("{}-{}-{uid}", names.namespace, names.name),
        None => format!("{}-{}", names.namespace, names.name),
    }
}

/// `replicas`: the StatefulSet's size, whose pods are the join seeds.
pub fn config_map(
    cluster: &ZdbCluster,
    names: &ClusterNames,
    bootstrapped: bool,
    replicas: i32,
) -> Result<ConfigMap> {
    let mut seeds = names.node_addresses(replicas);
    seeds.push(names.client_address());
    Ok(ConfigMap {
        metadata: owned_metadata(cluster, names, names.config_map())?,
        data: Some(BTreeMap::from([
            (ENTRYPOINT_KEY.to_owned(), entrypoint_script()),
            (BOOTSTRAPPED_KEY.to_owned(), bootstrapped.to_string()),
            (CLUSTER_ID_KEY.to_owned(), cluster_id(cluster, names)),
            (JOIN_SEEDS_KEY.to_owned(), seeds.join(",")),
        ])),
        ..ConfigMap::default()
    })
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;
    use std::process::Command;

    use super::*;
    use crate::names::GRPC_PORT;

    /// Runs the entry script as pod `pod` would, with a stand-in zdb-node
    /// that prints the flags it was started with.
    fn start_flags(pod: &str, bootstrapped: bool) -> String {
        let dir = tempfile::tempdir().expect("a temp dir");
        let config = dir.path().join("config");
        let bin = dir.path().join("bin");
        std::fs::create_dir_all(&config).expect("config dir");
        std::fs::create_dir_all(&bin).expect("bin dir");
        std::fs::write(config.join(ENTRYPOINT_KEY), entrypoint_script()).expect("script");
        std::fs::write(config.join(BOOTSTRAPPED_KEY), bootstrapped.to_string()).expect("flag");
        std::fs::write(config.join(CLUSTER_ID_KEY), "prod-db-uid").expect("id");
        std::fs::write(config.join(JOIN_SEEDS_KEY), "s0:7700,s1:7700").expect("seeds");
        let node = bin.join("zdb-node");
        std::fs::write(&node, "#!/bin/sh\necho \"$@\"\n").expect("stand-in node");
        std::fs::set_permissions(&node, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        let names = ClusterNames::new("db", "prod");
        let output = Command::new("/bin/sh")
            .arg(config.join(ENTRYPOINT_KEY))
            .arg("--log-json")
            .env("PATH", format!("{}:/usr/bin:/bin", bin.display()))
            .env("POD_NAME", pod)
            .env("POD_NAMESPACE", "prod")
            .env("HEADLESS_SERVICE", names.headless_service())
            .env("GRPC_PORT", GRPC_PORT.to_string())
            .env("STATUS_PORT", "7701")
            .output()
            .expect("the script runs");
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let stdout = String::from_utf8_lossy(&output.stdout);
        stdout.lines().last().unwrap_or_default().to_owned()
    }

    #[test]
    fn pod_zero_founds_a_new_cluster() {
        assert_eq!(
            start_flags("db-0", false),
            "--id=1 --peers=1=db-0.db-nodes.prod.svc:7700 --cluster-id=prod-db-uid \
             --listen=0.0.0.0:7700 --advertise=db-0.db-nodes.prod.svc:7700 \
             --status-listen=0.0.0.0:7701 --data=/var/lib/zdb/data --log-json"
        );
    }

    #[test]
    fn every_other_start_joins() {
        let join = |pod: &str| {
            format!(
                "--join=s0:7700,s1:7700 --listen=0.0.0.0:7700 --advertise={pod}.db-nodes.prod.svc:7700 \
                 --status-listen=0.0.0.0:7701 --data=/var/lib/zdb/data --log-json"
            )
        };
        // Once bootstrapped, even pod 0 with an empty volume joins.
        assert_eq!(start_flags("db-0", true), join("db-0"));
        assert_eq!(start_flags("db-2", false), join("db-2"));
        assert_eq!(start_flags("db-10", true), join("db-10"));
    }
}
