//! The Pod Security Standards (Kubernetes 1.33, "latest"), as the
//! PodSecurity admission plugin checks them: `baseline` and `restricted`.
//! A pod in a namespace labelled `pod-security.kubernetes.io/enforce` is
//! refused when it violates that level; the texts follow the plugin's.
//!
//! Shared by the fake API server (pods the StatefulSet creates) and the chart
//! tests (the operator's own Deployment) through a `#[path]` include.

use k8s_openapi::api::core::v1::{
    Capabilities, Container, PodSecurityContext, PodSpec, SeccompProfile, SecurityContext,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Privileged,
    Baseline,
    Restricted,
}

impl Level {
    /// The level of a namespace's `pod-security.kubernetes.io/enforce` label.
    pub fn from_label(value: Option<&str>) -> Level {
        match value {
            Some("restricted") => Level::Restricted,
            Some("baseline") => Level::Baseline,
            _ => Level::Privileged,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Level::Privileged => "privileged",
            Level::Baseline => "baseline",
            Level::Restricted => "restricted",
        }
    }
}

pub const ENFORCE_LABEL: &str = "pod-security.kubernetes.io/enforce";

const BASELINE_CAPABILITIES: &[&str] = &[
    "AUDIT_WRITE",
    "CHOWN",
    "DAC_OVERRIDE",
    "FOWNER",
    "FSETID",
    "KILL",
    "MKNOD",
    "NET_BIND_SERVICE",
    "SETFCAP",
    "SETGID",
    "SETPCAP",
    "SETUID",
    "SYS_CHROOT",
];
const SAFE_SYSCTLS: &[&str] = &[
    "kernel.shm_rmid_forced",
    "net.ipv4.ip_local_port_range",
    "net.ipv4.ip_unprivileged_port_start",
    "net.ipv4.tcp_syncookies",
    "net.ipv4.ping_group_range",
    "net.ipv4.ip_local_reserved_ports",
    "net.ipv4.tcp_keepalive_time",
    "net.ipv4.tcp_fin_timeout",
    "net.ipv4.tcp_keepalive_intvl",
    "net.ipv4.tcp_keepalive_probes",
];
const SELINUX_TYPES: &[&str] = &[
    "",
    "container_t",
    "container_init_t",
    "container_kvm_t",
    "container_engine_t",
];

/// One container of the pod (init and ephemeral ones included) as the
/// checks see it.
struct Checked<'a> {
    name: &'a str,
    context: Option<&'a SecurityContext>,
    host_port: bool,
}

fn containers(spec: &PodSpec) -> Vec<Checked<'_>> {
    let regular = spec
        .init_containers
        .iter()
        .flatten()
        .chain(spec.containers.iter())
        .map(|c: &Container| Checked {
            name: &c.name,
            context: c.security_context.as_ref(),
            host_port: c
                .ports
                .iter()
                .flatten()
                .any(|p| p.host_port.unwrap_or(0) != 0),
        });
    let ephemeral = spec.ephemeral_containers.iter().flatten().map(|c| Checked {
        name: &c.name,
        context: c.security_context.as_ref(),
        host_port: c
            .ports
            .iter()
            .flatten()
            .any(|p| p.host_port.unwrap_or(0) != 0),
    });
    regular.chain(ephemeral).collect()
}

fn names(names: &[&str]) -> String {
    let quoted: Vec<String> = names.iter().map(|n| format!("{n:?}")).collect();
    let noun = if names.len() == 1 {
        "container"
    } else {
        "containers"
    };
    format!("{noun} {}", quoted.join(", "))
}

/// The checks `spec` fails at `level`, as the admission plugin words them.
pub fn violations(spec: &PodSpec, level: Level) -> Vec<String> {
    let mut out = Vec::new();
    if level == Level::Privileged {
        return out;
    }
    let pod = spec.security_context.clone().unwrap_or_default();
    let all = containers(spec);
    baseline(spec, &pod, &all, &mut out);
    if level == Level::Restricted {
        restricted(spec, &pod, &all, &mut out);
    }
    out
}

fn baseline(spec: &PodSpec, pod: &PodSecurityContext, all: &[Checked<'_>], out: &mut Vec<String>) {
    let host: Vec<&str> = [
        ("hostNetwork=true", spec.host_network),
        ("hostPID=true", spec.host_pid),
        ("hostIPC=true", spec.host_ipc),
    ]
    .into_iter()
    .filter(|(_, set)| *set == Some(true))
    .map(|(name, _)| name)
    .collect();
    if !host.is_empty() {
        out.push(format!("host namespaces ({})", host.join(", ")));
    }
    let host_process = pod
        .windows_options
        .as_ref()
        .and_then(|w| w.host_process)
        .unwrap_or(false)
        || all.iter().any(|c| {
            c.context
                .and_then(|c| c.windows_options.as_ref())
                .and_then(|w| w.host_process)
                .unwrap_or(false)
        });
    if host_process {
        out.push("hostProcess (pod or containers must not set securityContext.windowsOptions.hostProcess=true)".into());
    }
    let privileged: Vec<&str> = all
        .iter()
        .filter(|c| c.context.and_then(|c| c.privileged) == Some(true))
        .map(|c| c.name)
        .collect();
    if !privileged.is_empty() {
        out.push(format!(
            "privileged ({} must not set securityContext.privileged=true)",
            names(&privileged)
        ));
    }
    let added: Vec<&str> = all
        .iter()
        .filter(|c| {
            c.context
                .and_then(|c| c.capabilities.as_ref())
                .and_then(|caps| caps.add.as_ref())
                .is_some_and(|add| {
                    add.iter()
                        .any(|cap| !BASELINE_CAPABILITIES.contains(&cap.as_str()))
                })
        })
        .map(|c| c.name)
        .collect();
    if !added.is_empty() {
        out.push(format!(
            "non-default capabilities ({} must not include capabilities beyond the default set in securityContext.capabilities.add)",
            names(&added)
        ));
    }
    let host_paths: Vec<&str> = spec
        .volumes
        .iter()
        .flatten()
        .filter(|v| v.host_path.is_some())
        .map(|v| v.name.as_str())
        .collect();
    if !host_paths.is_empty() {
        out.push(format!(
            "hostPath volumes (volumes {})",
            host_paths
                .iter()
                .map(|n| format!("{n:?}"))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    let host_ports: Vec<&str> = all.iter().filter(|c| c.host_port).map(|c| c.name).collect();
    if !host_ports.is_empty() {
        out.push(format!("hostPort ({} uses hostPorts)", names(&host_ports)));
    }
    let apparmor_ok =
        |kind: Option<&str>| matches!(kind, None | Some("RuntimeDefault" | "Localhost"));
    if !apparmor_ok(pod.app_armor_profile.as_ref().map(|p| p.type_.as_str()))
        || all.iter().any(|c| {
            !apparmor_ok(
                c.context
                    .and_then(|c| c.app_armor_profile.as_ref())
                    .map(|p| p.type_.as_str()),
            )
        })
    {
        out.push(
            "forbidden AppArmor profile (appArmorProfile.type must be RuntimeDefault or Localhost)"
                .into(),
        );
    }
    let selinux_bad = |options: Option<&k8s_openapi::api::core::v1::SELinuxOptions>| {
        options.is_some_and(|o| {
            !SELINUX_TYPES.contains(&o.type_.as_deref().unwrap_or(""))
                || o.user.is_some()
                || o.role.is_some()
        })
    };
    if selinux_bad(pod.se_linux_options.as_ref())
        || all
            .iter()
            .any(|c| selinux_bad(c.context.and_then(|c| c.se_linux_options.as_ref())))
    {
        out.push("seLinuxOptions (type, user and role are restricted)".into());
    }
    let proc_mount: Vec<&str> = all
        .iter()
        .filter(|c| {
            c.context
                .and_then(|c| c.proc_mount.as_deref())
                .is_some_and(|m| m != "Default")
        })
        .map(|c| c.name)
        .collect();
    if !proc_mount.is_empty() {
        out.push(format!(
            "procMount ({} must not set securityContext.procMount)",
            names(&proc_mount)
        ));
    }
    let unconfined =
        |profile: Option<&SeccompProfile>| profile.is_some_and(|p| p.type_ == "Unconfined");
    if unconfined(pod.seccomp_profile.as_ref())
        || all
            .iter()
            .any(|c| unconfined(c.context.and_then(|c| c.seccomp_profile.as_ref())))
    {
        out.push("seccompProfile (pod or containers must not set securityContext.seccompProfile.type to \"Unconfined\")".into());
    }
    let unsafe_sysctls: Vec<&str> = pod
        .sysctls
        .iter()
        .flatten()
        .map(|s| s.name.as_str())
        .filter(|name| !SAFE_SYSCTLS.contains(name))
        .collect();
    if !unsafe_sysctls.is_empty() {
        out.push(format!("forbidden sysctls ({})", unsafe_sysctls.join(", ")));
    }
}

fn restricted(
    spec: &PodSpec,
    pod: &PodSecurityContext,
    all: &[Checked<'_>],
    out: &mut Vec<String>,
) {
    let restricted_volumes: Vec<String> = spec
        .volumes
        .iter()
        .flatten()
        .filter(|v| {
            v.config_map.is_none()
                && v.csi.is_none()
                && v.downward_api.is_none()
                && v.empty_dir.is_none()
                && v.ephemeral.is_none()
                && v.persistent_volume_claim.is_none()
                && v.projected.is_none()
                && v.secret.is_none()
        })
        .map(|v| format!("{:?}", v.name))
        .collect();
    if !restricted_volumes.is_empty() {
        out.push(format!(
            "restricted volume types (volumes {} use restricted volume types)",
            restricted_volumes.join(", ")
        ));
    }
    let escalating: Vec<&str> = all
        .iter()
        .filter(|c| c.context.and_then(|c| c.allow_privilege_escalation) != Some(false))
        .map(|c| c.name)
        .collect();
    if !escalating.is_empty() {
        out.push(format!(
            "allowPrivilegeEscalation != false ({} must set securityContext.allowPrivilegeEscalation=false)",
            names(&escalating)
        ));
    }
    let capabilities = |c: &Checked<'_>| -> Option<Capabilities> {
        c.context.and_then(|c| c.capabilities.clone())
    };
    let not_dropping: Vec<&str> = all
        .iter()
        .filter(|c| {
            !capabilities(c)
                .and_then(|caps| caps.drop)
                .is_some_and(|drop| drop.iter().any(|cap| cap == "ALL"))
        })
        .map(|c| c.name)
        .collect();
    let adding: Vec<&str> = all
        .iter()
        .filter(|c| {
            capabilities(c)
                .and_then(|caps| caps.add)
                .is_some_and(|add| add.iter().any(|cap| cap != "NET_BIND_SERVICE"))
        })
        .map(|c| c.name)
        .collect();
    if !not_dropping.is_empty() || !adding.is_empty() {
        let mut parts = Vec::new();
        if !not_dropping.is_empty() {
            parts.push(format!(
                "{} must set securityContext.capabilities.drop=[\"ALL\"]",
                names(&not_dropping)
            ));
        }
        if !adding.is_empty() {
            parts.push(format!(
                "{} must not include capabilities other than NET_BIND_SERVICE in securityContext.capabilities.add",
                names(&adding)
            ));
        }
        out.push(format!("unrestricted capabilities ({})", parts.join("; ")));
    }
    let pod_non_root = pod.run_as_non_root == Some(true);
    let explicitly_root: Vec<&str> = all
        .iter()
        .filter(|c| c.context.and_then(|c| c.run_as_non_root) == Some(false))
        .map(|c| c.name)
        .collect();
    let unset: Vec<&str> = all
        .iter()
        .filter(|c| c.context.and_then(|c| c.run_as_non_root).is_none())
        .map(|c| c.name)
        .collect();
    if pod.run_as_non_root == Some(false)
        || !explicitly_root.is_empty()
        || (!pod_non_root && !unset.is_empty())
    {
        out.push(format!(
            "runAsNonRoot != true (pod or {} must set securityContext.runAsNonRoot=true)",
            names(if explicitly_root.is_empty() {
                &unset
            } else {
                &explicitly_root
            })
        ));
    }
    let root_user = pod.run_as_user == Some(0)
        || all
            .iter()
            .any(|c| c.context.and_then(|c| c.run_as_user) == Some(0));
    if root_user {
        out.push("runAsUser=0 (pod and containers must not set runAsUser=0)".into());
    }
    let confined = |profile: Option<&SeccompProfile>| {
        profile.is_some_and(|p| p.type_ == "RuntimeDefault" || p.type_ == "Localhost")
    };
    let pod_confined = confined(pod.seccomp_profile.as_ref());
    let unconfined: Vec<&str> = all
        .iter()
        .filter(|c| {
            let own = c.context.and_then(|c| c.seccomp_profile.as_ref());
            match own {
                Some(_) => !confined(own),
                None => !pod_confined,
            }
        })
        .map(|c| c.name)
        .collect();
    if !unconfined.is_empty() {
        out.push(format!(
            "seccompProfile (pod or {} must set securityContext.seccompProfile.type to \"RuntimeDefault\" or \"Localhost\")",
            names(&unconfined)
        ));
    }
}

/// The API server's refusal of a pod, if `level` refuses it.
pub fn refusal(pod_name: &str, spec: &PodSpec, level: Level) -> Option<String> {
    let violations = violations(spec, level);
    (!violations.is_empty()).then(|| {
        format!(
            "pods {pod_name:?} is forbidden: violates PodSecurity \"{}:latest\": {}",
            level.as_str(),
            violations.join(", ")
        )
    })
}
