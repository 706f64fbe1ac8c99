//! `zdbctl cert`: create the cluster CA and the node and client
//! certificates it signs, in a certificates directory laid out like
//! CockroachDB's (`ca.crt`, `ca.key`, `node.crt`, `node.key`,
//! `client.<user>.crt`, `client.<user>.key`). Needs no running cluster.
//!
//! Existing files are never replaced without `--overwrite`, and every new
//! certificate is checked against the CA, the way nodes will check it,
//! before it is written.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Result};
use clap::Subcommand;
use zdb_security::pki::{self, CertificateAuthority};

const DAY: Duration = Duration::from_secs(86_400);

// The variants are the subcommand names (`create-ca`, ...), like CockroachDB's.
#[allow(clippy::enum_variant_names)]
#[derive(Subcommand)]
pub enum CertCommand {
    /// Create the cluster CA: DIR/ca.crt (give it to every node and client)
    /// and DIR/ca.key (keep it secret: it can sign node certificates).
    CreateCa {
        #[arg(long, env = "ZDB_CERTS_DIR", value_name = "DIR")]
        certs_dir: PathBuf,
        #[arg(long, default_value_t = 3650, value_parser = clap::value_parser!(u64).range(1..))]
        valid_days: u64,
        /// Replace existing files.
        #[arg(long)]
        overwrite: bool,
    },
    /// Create DIR/node.crt and DIR/node.key, signed by DIR/ca.crt and DIR/ca.key.
    CreateNode {
        #[arg(long, env = "ZDB_CERTS_DIR", value_name = "DIR")]
        certs_dir: PathBuf,
        /// A DNS name or IP address the node is reached at (repeatable);
        /// localhost and 127.0.0.1 are always included.
        #[arg(long = "host", value_name = "HOST")]
        hosts: Vec<String>,
        #[arg(long, default_value_t = 365, value_parser = clap::value_parser!(u64).range(1..))]
        valid_days: u64,
        /// Replace existing files.
        #[arg(long)]
        overwrite: bool,
    },
    /// Create DIR/client.USER.crt and DIR/client.USER.key, signed by
    /// DIR/ca.crt and DIR/ca.key, for logging in as USER.
    CreateClient {
        user: String,
        #[arg(long, env = "ZDB_CERTS_DIR", value_name = "DIR")]
        certs_dir: PathBuf,
        #[arg(long, default_value_t = 365, value_parser = clap::value_parser!(u64).range(1..))]
        valid_days: u64,
        /// Replace existing files.
        #[arg(long)]
        overwrite: bool,
    },
}

pub fn run(command: CertCommand) -> Result<ExitCode> {
    match command {
        CertCommand::CreateCa {
            certs_dir,
            valid_days,
            overwrite,
        } => create_ca(&certs_dir, valid_days, overwrite),
        CertCommand::CreateNode {
            certs_dir,
            hosts,
            valid_days,
            overwrite,
        } => create_node(&certs_dir, &hosts, valid_days, overwrite),
        CertCommand::CreateClient {
            user,
            certs_dir,
            valid_days,
            overwrite,
        } => create_client(&certs_dir, &user, valid_days, overwrite),
    }?;
    Ok(ExitCode::SUCCESS)
}

fn create_ca(dir: &Path, valid_days: u64, overwrite: bool) -> Result<()> {
    let ca = CertificateAuthority::generate("zdb CA", days(valid_days)?)?;
    let written = pki::write_ca(dir, &ca, overwrite).map_err(explain)?;
    report(&written, &ca.cert_pem());
    println!(
        "next: zdbctl cert create-node --certs-dir {} --host <address of the node>...",
        dir.display()
    );
    println!(
        "keep {} secret: whoever holds it can make node certificates",
        dir.join(pki::CA_KEY_FILE).display()
    );
    Ok(())
}

fn create_node(dir: &Path, hosts: &[String], valid_days: u64, overwrite: bool) -> Result<()> {
    let ca = load_ca(dir)?;
    let cert = ca.issue_node(hosts, days(valid_days)?)?;
    check(&ca, &cert.cert_pem, Some("localhost"), dir)?;
    let written = pki::write_node(dir, &cert, overwrite).map_err(explain)?;
    report(&written, &cert.cert_pem);
    warn_if_outlives_ca(&ca, &cert.cert_pem);
    let file = |name: &str| dir.join(name).display().to_string();
    println!(
        "next: start the node with --tls-ca-file {} --tls-cert-file {} --tls-key-file {}",
        file(pki::CA_CERT_FILE),
        file(pki::NODE_CERT_FILE),
        file(pki::NODE_KEY_FILE),
    );
    Ok(())
}

fn create_client(dir: &Path, user: &str, valid_days: u64, overwrite: bool) -> Result<()> {
    let ca = load_ca(dir)?;
    let cert = ca.issue_client(user, days(valid_days)?)?;
    check(&ca, &cert.cert_pem, None, dir)?;
    let written = pki::write_client(dir, user, &cert, overwrite).map_err(explain)?;
    report(&written, &cert.cert_pem);
    warn_if_outlives_ca(&ca, &cert.cert_pem);
    let file = |name: &str| dir.join(name).display().to_string();
    println!(
        "next: zdbctl --ca-cert {} --cert {} --key {} <command>",
        file(pki::CA_CERT_FILE),
        file(&pki::client_cert_file(user)),
        file(&pki::client_key_file(user)),
    );
    Ok(())
}

fn load_ca(dir: &Path) -> Result<CertificateAuthority> {
    match pki::load_ca(dir) {
        Ok(ca) => Ok(ca),
        Err(zdb_security::Error::Read { path, source })
            if source.kind() == std::io::ErrorKind::NotFound =>
        {
            bail!(
                "{} not found; create the CA first with `zdbctl cert create-ca --certs-dir {}`",
                path.display(),
                dir.display()
            )
        }
        Err(err) => Err(err.into()),
    }
}

/// Refuses a certificate the nodes would refuse: better to find out here.
fn check(
    ca: &CertificateAuthority,
    cert_pem: &str,
    server_name: Option<&str>,
    dir: &Path,
) -> Result<()> {
    if let Err(err) = pki::verify_issued(&ca.cert_pem(), cert_pem, server_name) {
        bail!(
            "the new certificate does not verify against {} ({err}); nothing was written",
            dir.join(pki::CA_CERT_FILE).display()
        );
    }
    Ok(())
}

/// Turns "already exists" into what to do about it.
fn explain(err: zdb_security::Error) -> anyhow::Error {
    match err {
        zdb_security::Error::Exists { path } => anyhow::anyhow!(
            "{} already exists; nothing was written (pass --overwrite to replace it)",
            path.display()
        ),
        err => err.into(),
    }
}

fn days(n: u64) -> Result<Duration> {
    match u32::try_from(n) {
        Ok(n) if n <= 3_000_000 => Ok(DAY * n),
        _ => bail!("--valid-days {n} is too long"),
    }
}

fn report(written: &[PathBuf], cert_pem: &str) {
    for path in written {
        println!("wrote {}", path.display());
    }
    if let Ok(until) = pki::not_after(cert_pem) {
        println!("valid until {}", utc(until));
    }
}

fn warn_if_outlives_ca(ca: &CertificateAuthority, cert_pem: &str) {
    let (Ok(ca_until), Ok(until)) = (pki::not_after(&ca.cert_pem()), pki::not_after(cert_pem))
    else {
        return;
    };
    if until > ca_until {
        eprintln!(
            "warning: the CA expires first ({}): the certificate stops working then",
            utc(ca_until)
        );
    }
}

/// `YYYY-MM-DD HH:MM:SS UTC` (civil-from-days, proleptic Gregorian).
fn utc(t: SystemTime) -> String {
    let secs = match t.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_secs() as i64,
        Err(e) => -(e.duration().as_secs() as i64),
    };
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02} UTC",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn three_steps_make_a_working_set() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("certs");
        create_ca(&dir, 3650, false).unwrap();
        create_node(
            &dir,
            &["zdb-0.zdb".to_owned(), "10.1.2.3".to_owned()],
            365,
            false,
        )
        .unwrap();
        create_client(&dir, "alice", 365, false).unwrap();

        let read = |name: &str| std::fs::read_to_string(dir.join(name)).unwrap();
        let ca = read("ca.crt");
        for host in ["zdb-0.zdb", "10.1.2.3", "localhost", "127.0.0.1"] {
            pki::verify_issued(&ca, &read("node.crt"), Some(host)).unwrap();
        }
        pki::verify_issued(&ca, &read("client.alice.crt"), None).unwrap();
        assert!(dir.join("node.key").exists() && dir.join("client.alice.key").exists());
    }

    #[test]
    fn refuses_to_overwrite_unless_asked() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        create_ca(dir, 10, false).unwrap();
        let ca = std::fs::read_to_string(dir.join("ca.crt")).unwrap();
        let err = create_ca(dir, 10, false).unwrap_err().to_string();
        assert!(err.contains("--overwrite"), "{err}");
        assert_eq!(std::fs::read_to_string(dir.join("ca.crt")).unwrap(), ca);

        create_node(dir, &[], 1, false).unwrap();
        assert!(create_node(dir, &[], 1, false).is_err());
        create_node(dir, &[], 1, true).unwrap();
    }

    #[test]
    fn missing_ca_says_what_to_do() {
        let tmp = tempfile::tempdir().unwrap();
        let err = create_node(tmp.path(), &[], 1, false)
            .unwrap_err()
            .to_string();
        assert!(err.contains("create-ca"), "{err}");
        let err = create_client(tmp.path(), "bob", 1, false)
            .unwrap_err()
            .to_string();
        assert!(err.contains("create-ca"), "{err}");
    }

    #[test]
    fn node_user_refused() {
        let tmp = tempfile::tempdir().unwrap();
        create_ca(tmp.path(), 10, false).unwrap();
        assert!(create_client(tmp.path(), "node", 1, false).is_err());
    }

    #[test]
    fn utc_formats_dates() {
        assert_eq!(utc(UNIX_EPOCH), "1970-01-01 00:00:00 UTC");
        let t = UNIX_EPOCH + Duration::from_secs(951_782_400 + 3_661);
        assert_eq!(utc(t), "2000-02-29 01:01:01 UTC");
    }
}
