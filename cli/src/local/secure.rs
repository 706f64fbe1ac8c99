//! A secure local cluster (`local up --secure`): TLS between everyone and
//! authentication on. The cluster folder keeps what that takes, so a
//! restart uses the same: `certs/` (the cluster CA, the nodes' certificate
//! for 127.0.0.1 and localhost, and root's client certificate) and
//! `root.password` (root's password, made up at random on first start).
//!
//! A folder with `certs/` is a secure cluster from then on: `local up`
//! runs it secure with or without `--secure` (its nodes refuse plaintext,
//! and their users are still there), and `local add-node` and `local
//! remove-node` reach it over TLS as root.

use std::fs::OpenOptions;
use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use zdb_client::{ClientConfig, TlsConfig};
use zdb_security::pki;

const CERTS_DIR: &str = "certs";
const ROOT_PASSWORD_FILE: &str = "root.password";

/// Where a secure cluster's certificates and root password are.
pub struct Secure {
    certs: PathBuf,
    root_password: PathBuf,
}

impl Secure {
    /// The security of the cluster in `data`: None for a plaintext one.
    pub fn of(data: &Path) -> Result<Option<Secure>> {
        let data = std::fs::canonicalize(data)
            .with_context(|| format!("cannot find {}", data.display()))?;
        let secure = Secure {
            certs: data.join(CERTS_DIR),
            root_password: data.join(ROOT_PASSWORD_FILE),
        };
        if !secure.certs.exists() {
            return Ok(None);
        }
        secure.check()?;
        Ok(Some(secure))
    }

    /// Makes the cluster in `data` secure, if it is not yet: writes the
    /// certificates and a random root password.
    pub fn set_up(data: &Path) -> Result<Secure> {
        if let Some(secure) = Secure::of(data)? {
            return Ok(secure);
        }
        let data = std::fs::canonicalize(data)?;
        let secure = Secure {
            certs: data.join(CERTS_DIR),
            root_password: data.join(ROOT_PASSWORD_FILE),
        };
        pki::write_working_set(&secure.certs, &[])
            .with_context(|| format!("cannot create certificates in {}", secure.certs.display()))?;
        if !secure.root_password.exists() {
            write_random_password(&secure.root_password)?;
        }
        println!(
            "made the cluster secure: certificates in {}, root's password in {}",
            secure.certs.display(),
            secure.root_password.display()
        );
        Ok(secure)
    }

    /// Every file a restart needs is there.
    fn check(&self) -> Result<()> {
        let needed = [
            pki::CA_CERT_FILE.to_owned(),
            pki::NODE_CERT_FILE.to_owned(),
            pki::NODE_KEY_FILE.to_owned(),
            pki::client_cert_file("root"),
            pki::client_key_file("root"),
        ];
        let missing: Vec<&str> = needed
            .iter()
            .filter(|name| !self.certs.join(name).is_file())
            .map(String::as_str)
            .collect();
        if !missing.is_empty() {
            bail!(
                "{} lacks {}: restore them, or create them with `zdbctl cert` (create-node --certs-dir {0}, create-client root --certs-dir {0})",
                self.certs.display(),
                missing.join(", ")
            );
        }
        if !self.root_password.is_file() {
            bail!(
                "{} is missing: write root's password into it (nodes use it only to create user root; root can also log in with {})",
                self.root_password.display(),
                self.certs.join(pki::client_cert_file("root")).display()
            );
        }
        Ok(())
    }

    /// The flags that make a node serve TLS, dial its peers over TLS, and
    /// turn authentication on.
    pub fn node_args(&self) -> Vec<String> {
        vec![
            format!("--tls-ca-file={}", self.ca().display()),
            format!(
                "--tls-cert-file={}",
                self.certs.join(pki::NODE_CERT_FILE).display()
            ),
            format!(
                "--tls-key-file={}",
                self.certs.join(pki::NODE_KEY_FILE).display()
            ),
            format!("--auth-root-password-file={}", self.root_password.display()),
        ]
    }

    fn ca(&self) -> PathBuf {
        self.certs.join(pki::CA_CERT_FILE)
    }

    fn root_cert(&self) -> (PathBuf, PathBuf) {
        (
            self.certs.join(pki::client_cert_file("root")),
            self.certs.join(pki::client_key_file("root")),
        )
    }

    /// The environment that makes zdbctl connect as root, with its
    /// certificate.
    pub fn certificate_env(&self) -> String {
        let (cert, key) = self.root_cert();
        format!(
            "export ZDB_CA_CERT={} ZDB_CERT={} ZDB_KEY={}",
            self.ca().display(),
            cert.display(),
            key.display()
        )
    }

    /// The environment that makes zdbctl log in as root with its password.
    pub fn password_env(&self) -> String {
        format!(
            "export ZDB_CA_CERT={} ZDB_USER=root ZDB_PASSWORD=$(cat {})",
            self.ca().display(),
            self.root_password.display()
        )
    }
}

/// A client for `endpoints`: over TLS as root (its certificate) when the
/// cluster is secure.
pub fn client_config(secure: Option<&Secure>, endpoints: &str) -> ClientConfig {
    let mut config = ClientConfig::new(
        endpoints
            .split(',')
            .map(str::trim)
            .filter(|e| !e.is_empty()),
    );
    if let Some(secure) = secure {
        config.tls = Some(TlsConfig::Files {
            ca: secure.ca(),
            cert_and_key: Some(secure.root_cert()),
        });
    }
    config
}

/// 24 random bytes as 48 hex characters, in a file only its owner reads.
fn write_random_password(path: &Path) -> Result<()> {
    let mut bytes = [0u8; 24];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut random| random.read_exact(&mut bytes))
        .context("cannot read /dev/urandom")?;
    let password: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    writeln!(file, "{password}").with_context(|| format!("cannot write {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_folder_is_set_up_once_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        assert!(Secure::of(dir.path()).unwrap().is_none());
        let first = Secure::set_up(dir.path()).unwrap();
        let password = std::fs::read_to_string(&first.root_password).unwrap();
        assert_eq!(password.trim().len(), 48);
        let mode = std::fs::metadata(&first.root_password)
            .unwrap()
            .permissions();
        assert_eq!(
            std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777,
            0o600
        );
        let ca = std::fs::read(first.ca()).unwrap();

        let again = Secure::set_up(dir.path()).unwrap();
        assert_eq!(std::fs::read(again.ca()).unwrap(), ca);
        assert_eq!(
            std::fs::read_to_string(&again.root_password).unwrap(),
            password
        );
        assert!(Secure::of(dir.path()).unwrap().is_some());
        assert_eq!(again.node_args().len(), 4);

        std::fs::remove_file(&again.root_password).unwrap();
        let err = Secure::of(dir.path()).err().unwrap().to_string();
        assert!(err.contains("root.password is missing"), "{err}");
    }
}
