//! Certificates issued here must pass the rustls verifiers nodes use.

use std::time::{Duration, SystemTime};

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;

use super::*;

const DAY: Duration = Duration::from_secs(86_400);

fn hosts(names: &[&str]) -> Vec<String> {
    names.iter().map(|h| h.to_string()).collect()
}

fn der(pem: &str) -> Vec<u8> {
    CertificateDer::from_pem_slice(pem.as_bytes())
        .unwrap()
        .to_vec()
}

#[test]
fn node_cert_verifies_against_its_ca() {
    let ca = CertificateAuthority::generate("test CA", 10 * DAY).unwrap();
    let node = ca
        .issue_node(&hosts(&["zdb-0.zdb.svc", "10.0.0.7"]), DAY)
        .unwrap();
    for name in ["zdb-0.zdb.svc", "10.0.0.7", "localhost", "127.0.0.1"] {
        verify_issued(&ca.cert_pem(), &node.cert_pem, Some(name)).unwrap();
    }
    let err = verify_issued(&ca.cert_pem(), &node.cert_pem, Some("zdb-1.zdb.svc"));
    assert!(err.is_err(), "a name not in the SANs must be refused");
}

#[test]
fn cert_from_another_ca_does_not_verify() {
    let ca = CertificateAuthority::generate("test CA", DAY).unwrap();
    let other = CertificateAuthority::generate("test CA", DAY).unwrap();
    let node = other.issue_node(&[], DAY).unwrap();
    assert!(verify_issued(&ca.cert_pem(), &node.cert_pem, Some("localhost")).is_err());
    let client = other.issue_client("alice", DAY).unwrap();
    assert!(verify_issued(&ca.cert_pem(), &client.cert_pem, None).is_err());
}

#[test]
fn client_cert_is_for_clients_only() {
    let ca = CertificateAuthority::generate("test CA", DAY).unwrap();
    let client = ca.issue_client("alice", DAY).unwrap();
    verify_issued(&ca.cert_pem(), &client.cert_pem, None).unwrap();
    // No serverAuth EKU (and no SAN): it cannot serve TLS.
    assert!(verify_issued(&ca.cert_pem(), &client.cert_pem, Some("localhost")).is_err());
    assert_eq!(
        common_name(&der(&client.cert_pem)).as_deref(),
        Some("alice")
    );
}

#[test]
fn expired_cert_does_not_verify() {
    let ca = CertificateAuthority::generate("test CA", DAY).unwrap();
    let node = ca.issue_expired_node(&[]).unwrap();
    let err = verify_issued(&ca.cert_pem(), &node.cert_pem, Some("localhost")).unwrap_err();
    assert!(err.to_string().contains("xpired"), "{err}");
    assert!(not_after(&node.cert_pem).unwrap() < SystemTime::now() - DAY / 2);
}

#[test]
fn common_name_and_not_after() {
    let ca = CertificateAuthority::generate("test CA", 30 * DAY).unwrap();
    let node = ca.issue_node(&[], 3 * DAY).unwrap();
    assert_eq!(common_name(&der(&node.cert_pem)).as_deref(), Some("node"));
    assert_eq!(
        common_name(&der(&ca.cert_pem())).as_deref(),
        Some("test CA")
    );
    assert_eq!(common_name(b"not a certificate"), None);

    let expected = SystemTime::now() + 3 * DAY;
    let got = not_after(&node.cert_pem).unwrap();
    let off = got
        .duration_since(expected)
        .unwrap_or_else(|e| e.duration());
    assert!(off < Duration::from_secs(60), "not_after off by {off:?}");
    assert!(not_after("garbage").is_err());
}

#[test]
fn node_is_not_a_user() {
    let ca = CertificateAuthority::generate("test CA", DAY).unwrap();
    for user in ["node", "NODE", "", "a\nb"] {
        assert!(ca.issue_client(user, DAY).is_err(), "{user:?} accepted");
    }
}

#[test]
fn bad_hosts_refused() {
    let ca = CertificateAuthority::generate("test CA", DAY).unwrap();
    for host in ["zdb-0:26257", "a b", "é.example"] {
        assert!(ca.issue_node(&hosts(&[host]), DAY).is_err(), "{host:?}");
    }
    let v6 = ca.issue_node(&hosts(&["[::1]", "LOCALHOST"]), DAY).unwrap();
    verify_issued(&ca.cert_pem(), &v6.cert_pem, Some("::1")).unwrap();
}

#[test]
fn ca_round_trips_through_pem() {
    let ca = CertificateAuthority::generate("test CA", DAY).unwrap();
    let loaded = CertificateAuthority::from_pem(&ca.cert_pem(), &ca.key_pem()).unwrap();
    assert_eq!(loaded.cert_pem(), ca.cert_pem());
    let node = loaded.issue_node(&[], DAY).unwrap();
    verify_issued(&ca.cert_pem(), &node.cert_pem, Some("localhost")).unwrap();
}

#[test]
fn from_pem_refuses_mismatched_or_non_ca() {
    let ca = CertificateAuthority::generate("test CA", DAY).unwrap();
    let other = CertificateAuthority::generate("other CA", DAY).unwrap();
    let err = CertificateAuthority::from_pem(&ca.cert_pem(), &other.key_pem()).unwrap_err();
    assert!(err.to_string().contains("does not belong"), "{err}");
    let node = ca.issue_node(&[], DAY).unwrap();
    let err = CertificateAuthority::from_pem(&node.cert_pem, &node.key_pem).unwrap_err();
    assert!(err.to_string().contains("not a CA"), "{err}");
    assert!(CertificateAuthority::from_pem("x", &ca.key_pem()).is_err());
    assert!(CertificateAuthority::from_pem(&ca.cert_pem(), "x").is_err());
}

#[test]
fn serials_differ() {
    let ca = CertificateAuthority::generate("test CA", DAY).unwrap();
    let serial = |pem: &str| {
        let der = der(pem);
        let (_, x509) = x509_parser::parse_x509_certificate(&der).unwrap();
        x509.raw_serial().to_vec()
    };
    let a = ca.issue_node(&[], DAY).unwrap();
    let b = ca.issue_node(&[], DAY).unwrap();
    assert_ne!(serial(&a.cert_pem), serial(&b.cert_pem));
}

#[cfg(unix)]
#[test]
fn working_set_files_and_modes() {
    use std::os::unix::fs::PermissionsExt;

    let dir = tempfile::tempdir().unwrap();
    let certs = dir.path().join("certs");
    let ca = write_working_set(&certs, &hosts(&["zdb-0"])).unwrap();
    let mode = |name: &str| {
        let meta = std::fs::metadata(certs.join(name)).unwrap();
        meta.permissions().mode() & 0o777
    };
    for key in ["ca.key", "node.key", "client.root.key"] {
        assert_eq!(mode(key), 0o600, "{key}");
    }
    for cert in ["ca.crt", "node.crt", "client.root.crt"] {
        assert_eq!(mode(cert), 0o644, "{cert}");
    }
    let read = |name: &str| std::fs::read_to_string(certs.join(name)).unwrap();
    assert_eq!(read("ca.crt"), ca.cert_pem());
    verify_issued(&read("ca.crt"), &read("node.crt"), Some("zdb-0")).unwrap();
    verify_issued(&read("ca.crt"), &read("client.root.crt"), None).unwrap();
    let loaded = load_ca(&certs).unwrap();
    assert_eq!(loaded.cert_pem(), ca.cert_pem());

    // A second run refuses to replace anything.
    let err = write_working_set(&certs, &[]).unwrap_err();
    assert!(matches!(err, Error::Exists { .. }), "{err}");
    assert_eq!(read("ca.crt"), ca.cert_pem());
    // Unless asked to, one pair at a time.
    let node = ca.issue_node(&[], DAY).unwrap();
    assert!(matches!(
        write_node(&certs, &node, false),
        Err(Error::Exists { .. })
    ));
    write_node(&certs, &node, true).unwrap();
    assert_eq!(read("node.crt"), node.cert_pem);
    assert_eq!(mode("node.key"), 0o600);
}

#[test]
fn client_file_names() {
    let dir = tempfile::tempdir().unwrap();
    let ca = CertificateAuthority::generate("test CA", DAY).unwrap();
    let cert = ca.issue_client("alice", DAY).unwrap();
    let paths = write_client(dir.path(), "alice", &cert, false).unwrap();
    assert_eq!(
        paths,
        vec![
            dir.path().join("client.alice.key"),
            dir.path().join("client.alice.crt")
        ]
    );
    assert!(write_client(dir.path(), "../x", &cert, false).is_err());
}

#[test]
fn load_ca_names_the_bad_file() {
    let dir = tempfile::tempdir().unwrap();
    let err = load_ca(dir.path()).unwrap_err();
    assert!(err.to_string().contains("ca.crt"), "{err}");
    let ca = CertificateAuthority::generate("test CA", DAY).unwrap();
    write_ca(dir.path(), &ca, false).unwrap();
    std::fs::write(dir.path().join("ca.key"), "junk").unwrap();
    let err = load_ca(dir.path()).unwrap_err();
    assert!(
        matches!(&err, Error::BadFile { path, .. } if path.ends_with("ca.key")),
        "{err}"
    );
}

/// A CA made by OpenSSL (`openssl req -x509 -newkey ec ... -subj
/// "/C=DE/O=Acme Corp/OU=Ops/CN=Acme Root"`, valid until 2126): several
/// attributes, PrintableString and UTF8String mixed. Test-only key.
const OPENSSL_CA_CERT: &str = "-----BEGIN CERTIFICATE-----
MIIB7DCCAZOgAwIBAgIUIKxSIWUiL6szI6Gfkj0yAPaUzf8wCgYIKoZIzj0EAwIw
QzELMAkGA1UEBhMCREUxEjAQBgNVBAoMCUFjbWUgQ29ycDEMMAoGA1UECwwDT3Bz
MRIwEAYDVQQDDAlBY21lIFJvb3QwIBcNMjYxMjAxMTkyNTU2WhgPMjEyNjExMDcx
OTI1NTZaMEMxCzAJBgNVBAYTAkRFMRIwEAYDVQQKDAlBY21lIENvcnAxDDAKBgNV
BAsMA09wczESMBAGA1UEAwwJQWNtZSBSb290MFkwEwYHKoZIzj0CAQYIKoZIzj0D
AQcDQgAEfte0l3qDZEpk5DKpWpXArh9fQwVi9ldSnMPo0+R0Hn63RNIi+fmVcwd/
+rlSc/4DKvu2ntH9UT8GKdNxc4lPIKNjMGEwHQYDVR0OBBYEFLpqJrctztPXMKvL
wKoB2ZiKEmcZMB8GA1UdIwQYMBaAFLpqJrctztPXMKvLwKoB2ZiKEmcZMA8GA1Ud
EwEB/wQFMAMBAf8wDgYDVR0PAQH/BAQDAgEGMAoGCCqGSM49BAMCA0cAMEQCICUS
+7odRWJJicQ4ektAtmzFe2M22hYK1HaLiIQ8BxJ4AiAG9IdicW3c8kVLARB6XKQZ
EaHFAniaI7jbwWLyO7aoNg==
-----END CERTIFICATE-----
";
const OPENSSL_CA_KEY: &str = "-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgalM9tkCygH5PNBKZ
OJIMOV80Tqqxz7lt1LkzxAJ7jY2hRANCAAR+17SXeoNkSmTkMqlalcCuH19DBWL2
V1Kcw+jT5HQefrdE0iL5+ZVzB3/6uVJz/gMq+7ae0f1RPwYp03FziU8g
-----END PRIVATE KEY-----
";

#[test]
fn ca_made_elsewhere_issues_chaining_certs() {
    let ca = CertificateAuthority::from_pem(OPENSSL_CA_CERT, OPENSSL_CA_KEY).unwrap();
    assert_eq!(ca.cert_pem(), OPENSSL_CA_CERT);
    let node = ca.issue_node(&[], DAY).unwrap();
    verify_issued(OPENSSL_CA_CERT, &node.cert_pem, Some("localhost")).unwrap();
    let client = ca.issue_client("alice", DAY).unwrap();
    verify_issued(OPENSSL_CA_CERT, &client.cert_pem, None).unwrap();
}
