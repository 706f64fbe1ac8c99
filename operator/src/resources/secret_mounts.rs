//! What the security settings add to the node pod: each Secret as a
//! read-only volume of its own (files 0400; with the pod's fsGroup the
//! kubelet makes them group-readable for the node's user, and no one
//! else's), and the node flags that point at the files.
//!
//! - TLS: the certificate Secret at [`TLS_MOUNT`] (`ca.crt`, `tls.crt`,
//!   `tls.key`) and `--tls-ca-file/--tls-cert-file/--tls-key-file`. The
//!   kubelet updates the files when the Secret changes and the node reloads
//!   them, so a renewed certificate needs no restart.
//! - Authentication: the password key alone, `--auth-root-password-file`.
//! - Encryption: the master key alone, `--encryption-key-file`; the
//!   previous one, `--encryption-previous-key-file`. Both are read when the
//!   node starts, which is why changing them changes the pod template.
//!
//! Nothing is added for a cluster without them: its template (and hash)
//! stays what it was, so upgrading the operator restarts no pod.

use k8s_openapi::api::core::v1::{KeyToPath, SecretVolumeSource, Volume, VolumeMount};

use super::tls::{CA_CERT_KEY, TLS_CERT_KEY, TLS_KEY_KEY};
use crate::crd::{TlsSource, ZdbCluster};
use crate::names::{
    ClusterNames, AUTH_MOUNT, ENCRYPTION_MOUNT, PREVIOUS_ENCRYPTION_MOUNT, TLS_MOUNT,
};

/// Owner read only; see the module doc for the group bit.
const SECRET_FILE_MODE: i32 = 0o400;
pub const TLS_VOLUME: &str = "tls";
pub const AUTH_VOLUME: &str = "auth";
pub const ENCRYPTION_VOLUME: &str = "encryption-key";
pub const PREVIOUS_ENCRYPTION_VOLUME: &str = "encryption-previous-key";
/// The file names inside the mounts (the Secret's key may be anything).
pub const ROOT_PASSWORD_FILE: &str = "root-password";
pub const MASTER_KEY_FILE: &str = "master.key";

/// Volumes, mounts and flags of one pod.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct SecretMounts {
    pub volumes: Vec<Volume>,
    pub mounts: Vec<VolumeMount>,
    pub args: Vec<String>,
}

impl SecretMounts {
    /// `secret` (only `items`, if given) at `path`.
    fn mount(&mut self, volume: &str, secret: &str, items: Option<Vec<KeyToPath>>, path: &str) {
        self.volumes.push(Volume {
            name: volume.into(),
            secret: Some(SecretVolumeSource {
                secret_name: Some(secret.into()),
                default_mode: Some(SECRET_FILE_MODE),
                items,
                ..SecretVolumeSource::default()
            }),
            ..Volume::default()
        });
        self.mounts.push(VolumeMount {
            name: volume.into(),
            mount_path: path.into(),
            read_only: Some(true),
            ..VolumeMount::default()
        });
    }

    /// One key of `secret`, as `file` under `path`.
    fn mount_key(&mut self, volume: &str, secret: &str, key: &str, file: &str, path: &str) {
        let item = KeyToPath {
            key: key.into(),
            path: file.into(),
            mode: None,
        };
        self.mount(volume, secret, Some(vec![item]), path);
    }
}

/// The Secret the pods take their TLS files from, when TLS is on.
pub fn tls_secret(cluster: &ZdbCluster, names: &ClusterNames) -> Option<String> {
    Some(match cluster.tls_source()? {
        TlsSource::Provided { secret, .. } => secret.to_owned(),
        TlsSource::Managed | TlsSource::CertManager(_) => names.node_tls_secret(),
    })
}

pub fn secret_mounts(cluster: &ZdbCluster, names: &ClusterNames) -> SecretMounts {
    let mut out = SecretMounts::default();
    if let Some(secret) = tls_secret(cluster, names) {
        out.mount(TLS_VOLUME, &secret, None, TLS_MOUNT);
        out.args.extend([
            format!("--tls-ca-file={TLS_MOUNT}/{CA_CERT_KEY}"),
            format!("--tls-cert-file={TLS_MOUNT}/{TLS_CERT_KEY}"),
            format!("--tls-key-file={TLS_MOUNT}/{TLS_KEY_KEY}"),
        ]);
    }
    if let Some(auth) = &cluster.spec.auth {
        let secret = &auth.root_password_secret;
        out.mount_key(
            AUTH_VOLUME,
            &secret.name,
            &secret.key,
            ROOT_PASSWORD_FILE,
            AUTH_MOUNT,
        );
        out.args.push(format!(
            "--auth-root-password-file={AUTH_MOUNT}/{ROOT_PASSWORD_FILE}"
        ));
    }
    if let Some(encryption) = &cluster.spec.encryption {
        let key = &encryption.master_key_secret;
        out.mount_key(
            ENCRYPTION_VOLUME,
            &key.name,
            &key.key,
            MASTER_KEY_FILE,
            ENCRYPTION_MOUNT,
        );
        out.args.push(format!(
            "--encryption-key-file={ENCRYPTION_MOUNT}/{MASTER_KEY_FILE}"
        ));
        if let Some(previous) = &encryption.previous_master_key_secret {
            out.mount_key(
                PREVIOUS_ENCRYPTION_VOLUME,
                &previous.name,
                &previous.key,
                MASTER_KEY_FILE,
                PREVIOUS_ENCRYPTION_MOUNT,
            );
            out.args.push(format!(
                "--encryption-previous-key-file={PREVIOUS_ENCRYPTION_MOUNT}/{MASTER_KEY_FILE}"
            ));
        }
    }
    out
}
