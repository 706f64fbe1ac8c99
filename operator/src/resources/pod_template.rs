//! The pod every storage node runs in: the entry script from the
//! ConfigMap, the node's flags, the security Secrets
//! ([`secret_mounts`](super::secret_mounts)), the Redis port
//! ([`redis`](super::redis)), probes on the node's real
//! health (on the plaintext status port, TLS or not), a
//! security context that passes PodSecurity "restricted", a termination
//! grace period above the node's own shutdown bound, and scheduling from
//! the spec (pods spread over Kubernetes nodes and zones unless the spec
//! says otherwise).

use k8s_openapi::api::core::v1::{
    Capabilities, ConfigMapVolumeSource, Container, ContainerPort, EnvVar, EnvVarSource,
    HTTPGetAction, ObjectFieldSelector, PodSecurityContext, PodSpec, PodTemplateSpec, Probe,
    SeccompProfile, SecurityContext, TopologySpreadConstraint, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::configmap::ENTRYPOINT_KEY;
use super::redis;
use super::secret_mounts::secret_mounts;
use crate::crd::ZdbCluster;
use crate::names::{ClusterNames, CONFIG_MOUNT, DATA_MOUNT, DATA_VOLUME, GRPC_PORT, STATUS_PORT};

/// The user the zdb-node image runs as (docker/node.Dockerfile).
const NODE_USER: i64 = 10001;
/// How long a node takes at most to hand its leaderships to peers and exit
/// after SIGTERM (`zdb-node --shutdown-timeout-secs`).
pub const SHUTDOWN_TIMEOUT_SECS: i64 = 20;
/// The kubelet's SIGKILL comes this long after SIGTERM: well above the
/// node's own bound, so a node always leaves on its own.
pub const TERMINATION_GRACE_SECS: i64 = 60;
pub const HOSTNAME_TOPOLOGY_KEY: &str = "kubernetes.io/hostname";
pub const ZONE_TOPOLOGY_KEY: &str = "topology.kubernetes.io/zone";

/// The container args: node settings that need a restart to change, so
/// they belong to the template (a change rolls the pods one at a time).
fn node_args(cluster: &ZdbCluster) -> Vec<String> {
    let mut args = vec![
        "--log-json".to_owned(),
        format!("--shutdown-timeout-secs={SHUTDOWN_TIMEOUT_SECS}"),
    ];
    if let Some(raft) = &cluster.spec.raft {
        if let Some(tick) = raft.tick_ms {
            args.push(format!("--raft-tick-ms={tick}"));
        }
        if let Some(ticks) = raft.election_ticks {
            args.push(format!("--election-ticks={ticks}"));
        }
        if let Some(ticks) = raft.heartbeat_ticks {
            args.push(format!("--heartbeat-ticks={ticks}"));
        }
    }
    args
}

fn env(names: &ClusterNames) -> Vec<EnvVar> {
    let field = |path: &str| EnvVarSource {
        field_ref: Some(ObjectFieldSelector {
            field_path: path.into(),
            ..ObjectFieldSelector::default()
        }),
        ..EnvVarSource::default()
    };
    let value = |name: &str, value: String| EnvVar {
        name: name.into(),
        value: Some(value),
        ..EnvVar::default()
    };
    vec![
        EnvVar {
            name: "POD_NAME".into(),
            value_from: Some(field("metadata.name")),
            ..EnvVar::default()
        },
        EnvVar {
            name: "POD_NAMESPACE".into(),
            value_from: Some(field("metadata.namespace")),
            ..EnvVar::default()
        },
        value("HEADLESS_SERVICE", names.headless_service()),
        value("GRPC_PORT", GRPC_PORT.to_string()),
        value("STATUS_PORT", STATUS_PORT.to_string()),
    ]
}

fn http_probe(path: &str) -> Probe {
    Probe {
        http_get: Some(HTTPGetAction {
            path: Some(path.into()),
            port: IntOrString::String("status".into()),
            ..HTTPGetAction::default()
        }),
        ..Probe::default()
    }
}

/// Readiness is the node's own verdict (`/readyz`: engine open, joined,
/// replicas caught up; 503 while shutting down), so the client Service
/// and the PodDisruptionBudget count only nodes that serve. Liveness
/// (`/livez`: the process and its event loop answer) is generous, and a
/// startup probe gives a node opening a large store ten minutes before
/// liveness counts.
fn probes() -> (Probe, Probe, Probe) {
    let readiness = Probe {
        period_seconds: Some(5),
        failure_threshold: Some(3),
        timeout_seconds: Some(2),
        ..http_probe("/readyz")
    };
    let liveness = Probe {
        period_seconds: Some(10),
        failure_threshold: Some(6),
        timeout_seconds: Some(5),
        ..http_probe("/livez")
    };
    let startup = Probe {
        period_seconds: Some(10),
        failure_threshold: Some(60),
        timeout_seconds: Some(5),
        ..http_probe("/livez")
    };
    (readiness, liveness, startup)
}

/// What PodSecurity "restricted" asks of every container.
fn container_security() -> SecurityContext {
    SecurityContext {
        allow_privilege_escalation: Some(false),
        capabilities: Some(Capabilities {
            drop: Some(vec!["ALL".into()]),
            ..Capabilities::default()
        }),
        run_as_non_root: Some(true),
        // The node writes only to its data volume.
        read_only_root_filesystem: Some(true),
        ..SecurityContext::default()
    }
}

fn pod_security() -> PodSecurityContext {
    PodSecurityContext {
        run_as_non_root: Some(true),
        run_as_user: Some(NODE_USER),
        run_as_group: Some(NODE_USER),
        // The volume must belong to the node's user.
        fs_group: Some(NODE_USER),
        seccomp_profile: Some(SeccompProfile {
            type_: "RuntimeDefault".into(),
            ..SeccompProfile::default()
        }),
        ..PodSecurityContext::default()
    }
}

/// Spread over Kubernetes nodes and zones, best effort (a one-node test
/// cluster still schedules every pod). `spec.topologySpreadConstraints`
/// replaces this; an empty list there spreads nothing.
pub fn default_topology_spread(names: &ClusterNames) -> Vec<TopologySpreadConstraint> {
    [HOSTNAME_TOPOLOGY_KEY, ZONE_TOPOLOGY_KEY]
        .into_iter()
        .map(|key| TopologySpreadConstraint {
            max_skew: 1,
            topology_key: key.into(),
            when_unsatisfiable: "ScheduleAnyway".into(),
            label_selector: Some(LabelSelector {
                match_labels: Some(names.selector_labels()),
                ..LabelSelector::default()
            }),
            ..TopologySpreadConstraint::default()
        })
        .collect()
}

pub fn pod_template(cluster: &ZdbCluster, names: &ClusterNames) -> PodTemplateSpec {
    let spec = &cluster.spec;
    let (readiness, liveness, startup) = probes();
    let secrets = secret_mounts(cluster, names);
    let mut args = node_args(cluster);
    args.extend(redis::args(cluster));
    args.extend(secrets.args);
    let mut mounts = vec![
        VolumeMount {
            name: DATA_VOLUME.into(),
            mount_path: DATA_MOUNT.into(),
            ..VolumeMount::default()
        },
        VolumeMount {
            name: "config".into(),
            mount_path: CONFIG_MOUNT.into(),
            read_only: Some(true),
            ..VolumeMount::default()
        },
    ];
    mounts.extend(secrets.mounts);
    let mut volumes = vec![Volume {
        name: "config".into(),
        config_map: Some(ConfigMapVolumeSource {
            name: names.config_map(),
            ..ConfigMapVolumeSource::default()
        }),
        ..Volume::default()
    }];
    volumes.extend(secrets.volumes);
    let mut ports = vec![
        ContainerPort {
            name: Some("grpc".into()),
            container_port: GRPC_PORT,
            ..ContainerPort::default()
        },
        ContainerPort {
            name: Some("status".into()),
            container_port: STATUS_PORT,
            ..ContainerPort::default()
        },
    ];
    ports.extend(redis::container_ports(cluster));
    let container = Container {
        name: "zdb-node".into(),
        image: Some(spec.image.clone()),
        image_pull_policy: spec.image_pull_policy.map(|p| p.as_str().to_owned()),
        command: Some(vec![
            "/bin/sh".into(),
            format!("{CONFIG_MOUNT}/{ENTRYPOINT_KEY}"),
        ]),
        args: Some(args),
        env: Some(env(names)),
        ports: Some(ports),
        readiness_probe: Some(readiness),
        liveness_probe: Some(liveness),
        startup_probe: Some(startup),
        resources: spec.resources.clone(),
        security_context: Some(container_security()),
        // A node that exits on a fatal error (a volume of another cluster,
        // say) has its last log lines shown as the termination message, so
        // the status can name the reason.
        termination_message_policy: Some("FallbackToLogsOnError".into()),
        volume_mounts: Some(mounts),
        ..Container::default()
    };
    PodTemplateSpec {
        metadata: Some(ObjectMeta {
            labels: Some(names.labels()),
            ..ObjectMeta::default()
        }),
        spec: Some(PodSpec {
            containers: vec![container],
            volumes: Some(volumes),
            affinity: spec.affinity.clone(),
            tolerations: spec.tolerations.clone(),
            topology_spread_constraints: Some(
                spec.topology_spread_constraints
                    .clone()
                    .unwrap_or_else(|| default_topology_spread(names)),
            )
            .filter(|constraints| !constraints.is_empty()),
            termination_grace_period_seconds: Some(TERMINATION_GRACE_SECS),
            security_context: Some(pod_security()),
            ..PodSpec::default()
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::ZdbClusterSpec;
    use crate::testing::pod_security::{violations, Level};

    fn cluster(spec: serde_json::Value) -> ZdbCluster {
        let spec: ZdbClusterSpec = serde_json::from_value(spec).expect("a valid spec");
        ZdbCluster::new("db", spec)
    }

    fn minimal() -> serde_json::Value {
        serde_json::json!({"replicas": 3, "image": "zdb:1", "storage": {"size": "1Gi"}})
    }

    #[test]
    fn the_pod_passes_pod_security_restricted() {
        let names = ClusterNames::new("db", "prod");
        let template = pod_template(&cluster(minimal()), &names);
        let spec = template.spec.expect("a pod spec");
        assert_eq!(violations(&spec, Level::Restricted), Vec::<String>::new());
    }

    #[test]
    fn probes_ask_the_node_and_shutdown_fits_in_the_grace_period() {
        let names = ClusterNames::new("db", "prod");
        let spec = pod_template(&cluster(minimal()), &names)
            .spec
            .expect("a pod spec");
        let container = &spec.containers[0];
        let path = |probe: &Option<Probe>| {
            probe
                .as_ref()
                .and_then(|p| p.http_get.as_ref())
                .and_then(|h| h.path.clone())
        };
        assert_eq!(path(&container.readiness_probe).as_deref(), Some("/readyz"));
        assert_eq!(path(&container.liveness_probe).as_deref(), Some("/livez"));
        assert_eq!(path(&container.startup_probe).as_deref(), Some("/livez"));
        let args = container.args.clone().unwrap_or_default();
        assert!(args.contains(&format!("--shutdown-timeout-secs={SHUTDOWN_TIMEOUT_SECS}")));
        assert!(spec.termination_grace_period_seconds >= Some(2 * SHUTDOWN_TIMEOUT_SECS));
    }

    fn secured() -> serde_json::Value {
        let mut spec = minimal();
        spec["tls"] = serde_json::json!({"enabled": true});
        spec["auth"] =
            serde_json::json!({"rootPasswordSecret": {"name": "db-root", "key": "password"}});
        spec["encryption"] = serde_json::json!({
            "masterKeySecret": {"name": "db-key", "key": "master.key"},
            "previousMasterKeySecret": {"name": "db-old-key", "key": "key"},
        });
        spec
    }

    #[test]
    fn security_secrets_are_mounted_read_only_and_named_by_flags() {
        let names = ClusterNames::new("db", "prod");
        let spec = pod_template(&cluster(secured()), &names)
            .spec
            .expect("a pod spec");
        assert_eq!(violations(&spec, Level::Restricted), Vec::<String>::new());
        let container = &spec.containers[0];
        let args = container.args.clone().unwrap_or_default();
        assert_eq!(
            args[args.len() - 6..],
            [
                "--tls-ca-file=/etc/zdb-tls/ca.crt",
                "--tls-cert-file=/etc/zdb-tls/tls.crt",
                "--tls-key-file=/etc/zdb-tls/tls.key",
                "--auth-root-password-file=/etc/zdb-auth/root-password",
                "--encryption-key-file=/etc/zdb-encryption/master.key",
                "--encryption-previous-key-file=/etc/zdb-encryption-previous/master.key",
            ]
        );
        let secrets: Vec<(String, i32, Option<String>)> = spec
            .volumes
            .iter()
            .flatten()
            .filter_map(|v| {
                let secret = v.secret.as_ref()?;
                Some((
                    secret.secret_name.clone().unwrap_or_default(),
                    secret.default_mode.unwrap_or_default(),
                    secret
                        .items
                        .as_ref()
                        .map(|items| format!("{}->{}", items[0].key, items[0].path)),
                ))
            })
            .collect();
        assert_eq!(
            secrets,
            [
                ("db-node-tls".to_owned(), 0o400, None),
                (
                    "db-root".to_owned(),
                    0o400,
                    Some("password->root-password".into())
                ),
                (
                    "db-key".to_owned(),
                    0o400,
                    Some("master.key->master.key".into())
                ),
                (
                    "db-old-key".to_owned(),
                    0o400,
                    Some("key->master.key".into())
                ),
            ]
        );
        let mounts = container.volume_mounts.clone().unwrap_or_default();
        assert_eq!(mounts.len(), 6);
        assert!(mounts[2..].iter().all(|m| m.read_only == Some(true)));
        // The probes do not change: the status port stays plaintext.
        let plain = pod_template(&cluster(minimal()), &names)
            .spec
            .expect("a pod spec");
        assert_eq!(
            container.readiness_probe,
            plain.containers[0].readiness_probe
        );
        assert_eq!(container.liveness_probe, plain.containers[0].liveness_probe);
    }

    #[test]
    fn a_cluster_without_security_keeps_its_template() {
        let names = ClusterNames::new("db", "prod");
        let hash = |spec| {
            crate::resources::statefulset::template_hash(&pod_template(&cluster(spec), &names))
                .expect("a hash")
        };
        let mut disabled = minimal();
        disabled["tls"] = serde_json::json!({"enabled": false, "issuerRef": {"name": "ca"}});
        assert_eq!(hash(disabled), hash(minimal()));
        let spec = pod_template(&cluster(minimal()), &names)
            .spec
            .expect("a pod spec");
        assert_eq!(spec.volumes.map(|v| v.len()), Some(1));
    }

    #[test]
    fn pods_spread_over_nodes_and_zones_unless_the_spec_says_otherwise() {
        let names = ClusterNames::new("db", "prod");
        let keys = |spec: serde_json::Value| -> Vec<String> {
            pod_template(&cluster(spec), &names)
                .spec
                .and_then(|s| s.topology_spread_constraints)
                .unwrap_or_default()
                .into_iter()
                .map(|c| c.topology_key)
                .collect()
        };
        assert_eq!(keys(minimal()), [HOSTNAME_TOPOLOGY_KEY, ZONE_TOPOLOGY_KEY]);
        let mut own = minimal();
        own["topologySpreadConstraints"] = serde_json::json!([{
            "maxSkew": 2, "topologyKey": "rack", "whenUnsatisfiable": "DoNotSchedule"}]);
        assert_eq!(keys(own), ["rack"]);
        let mut none = minimal();
        none["topologySpreadConstraints"] = serde_json::json!([]);
        assert!(keys(none).is_empty());
    }
}
