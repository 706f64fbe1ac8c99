//! The certificates directory, laid out like CockroachDB's: `ca.crt`,
//! `ca.key`, `node.crt`, `node.key`, `client.<user>.crt`,
//! `client.<user>.key`. Private keys are written 0600 and every file is
//! written to a temporary name and renamed into place, so that a node
//! reloading its certificates on change never reads half a file.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::{check_user_name, CertificateAuthority, IssuedCert, LoadError};
use crate::{Error, Result};

pub const CA_CERT_FILE: &str = "ca.crt";
pub const CA_KEY_FILE: &str = "ca.key";
pub const NODE_CERT_FILE: &str = "node.crt";
pub const NODE_KEY_FILE: &str = "node.key";

/// `client.<user>.crt`.
pub fn client_cert_file(user: &str) -> String {
    format!("client.{user}.crt")
}

/// `client.<user>.key`.
pub fn client_key_file(user: &str) -> String {
    format!("client.{user}.key")
}

/// One file to write: name in the directory, contents, private or not.
struct Output<'a> {
    name: String,
    contents: &'a str,
    private: bool,
}

/// Writes `ca.key` and `ca.crt` into `dir`; returns the paths written.
pub fn write_ca(dir: &Path, ca: &CertificateAuthority, overwrite: bool) -> Result<Vec<PathBuf>> {
    let key = ca.key_pem();
    let outputs = [
        Output::private(CA_KEY_FILE, &key),
        Output::public(CA_CERT_FILE, &ca.cert_pem),
    ];
    write_all(dir, &outputs, overwrite)
}

/// Reads `ca.crt` and `ca.key` from `dir`.
pub fn load_ca(dir: &Path) -> Result<CertificateAuthority> {
    let cert_path = dir.join(CA_CERT_FILE);
    let key_path = dir.join(CA_KEY_FILE);
    let cert_pem = read(&cert_path)?;
    let key_pem = read(&key_path)?;
    CertificateAuthority::from_pem_parts(&cert_pem, &key_pem).map_err(|err| match err {
        LoadError::Cert(reason) => Error::BadFile {
            path: cert_path,
            reason,
        },
        LoadError::Key(reason) => Error::BadFile {
            path: key_path,
            reason,
        },
        LoadError::Mismatch => Error::BadFile {
            path: key_path,
            reason: format!("not the key of {}", cert_path.display()),
        },
    })
}

/// Writes `node.key` and `node.crt` into `dir`; returns the paths written.
pub fn write_node(dir: &Path, cert: &IssuedCert, overwrite: bool) -> Result<Vec<PathBuf>> {
    let outputs = [
        Output::private(NODE_KEY_FILE, &cert.key_pem),
        Output::public(NODE_CERT_FILE, &cert.cert_pem),
    ];
    write_all(dir, &outputs, overwrite)
}

/// Writes `client.<user>.key` and `client.<user>.crt` into `dir`; returns
/// the paths written. Refuses user names that cannot be part of a file name.
pub fn write_client(
    dir: &Path,
    user: &str,
    cert: &IssuedCert,
    overwrite: bool,
) -> Result<Vec<PathBuf>> {
    check_user_name(user)?;
    if user.contains(['/', '\\']) || user.starts_with('.') {
        return Err(Error::Certificate(format!(
            "the user name {user:?} cannot be part of a file name"
        )));
    }
    let outputs = [
        Output::private(&client_key_file(user), &cert.key_pem),
        Output::public(&client_cert_file(user), &cert.cert_pem),
    ];
    write_all(dir, &outputs, overwrite)
}

/// Writes a working set into `dir`: ca.crt, ca.key, node.crt, node.key
/// (for `hosts`, plus localhost and 127.0.0.1), client.root.crt,
/// client.root.key, as `zdbctl cert` does step by step. The CA is valid
/// for 10 years, the others for one. Refuses to replace existing files.
pub fn write_working_set(dir: &Path, hosts: &[String]) -> Result<CertificateAuthority> {
    const YEAR: Duration = Duration::from_secs(365 * 86_400);
    let ca = CertificateAuthority::generate("zdb CA", 10 * YEAR)?;
    let node = ca.issue_node(hosts, YEAR)?;
    let root = ca.issue_client("root", YEAR)?;
    let ca_key = ca.key_pem();
    let outputs = [
        Output::private(CA_KEY_FILE, &ca_key),
        Output::public(CA_CERT_FILE, &ca.cert_pem),
        Output::private(NODE_KEY_FILE, &node.key_pem),
        Output::public(NODE_CERT_FILE, &node.cert_pem),
        Output::private(&client_key_file("root"), &root.key_pem),
        Output::public(&client_cert_file("root"), &root.cert_pem),
    ];
    write_all(dir, &outputs, false)?;
    Ok(ca)
}

impl<'a> Output<'a> {
    fn private(name: &str, contents: &'a str) -> Self {
        let name = name.to_owned();
        Output {
            name,
            contents,
            private: true,
        }
    }

    fn public(name: &str, contents: &'a str) -> Self {
        let name = name.to_owned();
        Output {
            name,
            contents,
            private: false,
        }
    }
}

/// Writes every output, in order, after checking that none exists (unless
/// `overwrite`), so that a refusal leaves the directory untouched.
fn write_all(dir: &Path, outputs: &[Output<'_>], overwrite: bool) -> Result<Vec<PathBuf>> {
    let paths: Vec<PathBuf> = outputs.iter().map(|o| dir.join(&o.name)).collect();
    if !overwrite {
        if let Some(path) = paths.iter().find(|p| p.symlink_metadata().is_ok()) {
            return Err(Error::Exists { path: path.clone() });
        }
    }
    create_dir(dir)?;
    for (output, path) in outputs.iter().zip(&paths) {
        write_atomically(path, output.contents, output.private)?;
    }
    Ok(paths)
}

/// Creates `dir` if missing, readable by its owner only (it holds keys).
fn create_dir(dir: &Path) -> Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    let failed = |source| Error::Write {
        path: dir.to_owned(),
        source,
    };
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir).map_err(failed)
}

/// Writes `contents` to a temporary file next to `path` (0600 if private,
/// 0644 otherwise), flushes it to disk and renames it over `path`.
fn write_atomically(path: &Path, contents: &str, private: bool) -> Result<()> {
    let failed = |source| Error::Write {
        path: path.to_owned(),
        source,
    };
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    let tmp = path.with_file_name(format!(".{name}.tmp.{}", std::process::id()));
    let mut options = fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, if private { 0o600 } else { 0o644 });
    #[cfg(not(unix))]
    let _ = private;
    let result = options.open(&tmp).and_then(|mut file| {
        // The mode only applies to new files: a leftover temporary file
        // from a crash must not keep looser permissions.
        #[cfg(unix)]
        if private {
            use std::os::unix::fs::PermissionsExt;
            file.set_permissions(fs::Permissions::from_mode(0o600))?;
        }
        file.write_all(contents.as_bytes())?;
        file.sync_all()?;
        fs::rename(&tmp, path)
    });
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result.map_err(failed)
}

fn read(path: &Path) -> Result<String> {
    fs::read_to_string(path).map_err(|source| Error::Read {
        path: path.to_owned(),
        source,
    })
}
