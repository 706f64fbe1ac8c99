//! The cluster CA and the certificates it issues, in CockroachDB's layout:
//! one CA per cluster; node certificates (CN `node`, SANs = the node's
//! hosts, usable as TLS server and client, since a node dials its peers);
//! client certificates (CN = the user name, client use only).
//!
//! Keys are ECDSA P-256: small, fast, and supported by every TLS stack
//! that zdb's clients use. Every certificate starts to be valid an hour
//! before it is issued, so that a node whose clock runs a little behind
//! the issuer's accepts it at once.
//!
//! [`files`] writes and reads the certificates directory; [`verify_issued`]
//! checks a certificate against a CA the way rustls will.

mod dn;
mod files;
mod verify;

#[cfg(test)]
mod tests;

use std::net::IpAddr;
use std::time::{Duration, SystemTime};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose,
    Ia5String, IsCa, KeyIdMethod, KeyPair, KeyUsagePurpose, SanType, SerialNumber,
    PKCS_ECDSA_P256_SHA256,
};
use time::OffsetDateTime;
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::ParsedExtension;

pub use files::{
    client_cert_file, client_key_file, load_ca, write_ca, write_client, write_node,
    write_working_set, CA_CERT_FILE, CA_KEY_FILE, NODE_CERT_FILE, NODE_KEY_FILE,
};
pub use verify::verify_issued;

use crate::{Error, Result};

/// The common name of every node certificate. A peer presenting it is a
/// zdb node (full access to node-to-node RPCs), which is why no user may
/// carry this name.
pub const NODE_COMMON_NAME: &str = "node";

/// How far in the past each certificate's validity starts.
const CLOCK_SKEW: Duration = Duration::from_secs(3600);

/// Hosts every node certificate names, so that a node (and tools on the
/// same machine) can always be reached as `localhost`.
const ALWAYS_HOSTS: [&str; 2] = ["localhost", "127.0.0.1"];

/// A CA certificate and its private key, able to issue node and client
/// certificates.
pub struct CertificateAuthority {
    /// The CA certificate exactly as generated or loaded: what goes into
    /// every trust store, so it must never be re-encoded.
    cert_pem: String,
    key: KeyPair,
    /// What rcgen signs with: for a loaded CA, rebuilt from the parsed
    /// subject and key identifier, so issued certificates name the
    /// original CA byte for byte (its own encoding is thrown away).
    issuer: rcgen::Certificate,
}

/// A certificate and its private key, both PEM.
#[derive(Clone)]
pub struct IssuedCert {
    pub cert_pem: String,
    pub key_pem: String,
}

impl std::fmt::Debug for IssuedCert {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IssuedCert")
            .field("cert_pem", &self.cert_pem)
            .field("key_pem", &"<redacted>")
            .finish()
    }
}

impl std::fmt::Debug for CertificateAuthority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertificateAuthority")
            .field("cert_pem", &self.cert_pem)
            .field("key", &"<redacted>")
            .finish()
    }
}

/// Why a CA could not be loaded, kept apart so that [`load_ca`] can name
/// the file at fault.
pub(crate) enum LoadError {
    Cert(String),
    Key(String),
    Mismatch,
}

impl CertificateAuthority {
    /// A new self-signed CA, ECDSA P-256, CN = common_name, valid for `valid_for`.
    pub fn generate(common_name: &str, valid_for: Duration) -> Result<Self> {
        if common_name.trim().is_empty() {
            return Err(Error::Certificate("the CA needs a common name".into()));
        }
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(rcgen_error)?;
        let mut params = CertificateParams::default();
        params.distinguished_name = common_name_dn(common_name);
        // Path length 0: this CA signs end-entity certificates only.
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        params.serial_number = Some(random_serial());
        let now = OffsetDateTime::now_utc();
        set_validity(&mut params, now - CLOCK_SKEW, now, valid_for)?;
        let issuer = params.self_signed(&key).map_err(rcgen_error)?;
        Ok(Self {
            cert_pem: issuer.pem(),
            key,
            issuer,
        })
    }

    /// A CA from its certificate and PKCS#8 private key, both PEM (the
    /// first certificate of `cert_pem` is the CA).
    pub fn from_pem(cert_pem: &str, key_pem: &str) -> Result<Self> {
        Self::from_pem_parts(cert_pem, key_pem).map_err(|err| match err {
            LoadError::Cert(reason) => Error::Certificate(format!("CA certificate: {reason}")),
            LoadError::Key(reason) => Error::Certificate(format!("CA key: {reason}")),
            LoadError::Mismatch => {
                Error::Certificate("the CA key does not belong to the CA certificate".into())
            }
        })
    }

    pub(crate) fn from_pem_parts(
        cert_pem: &str,
        key_pem: &str,
    ) -> std::result::Result<Self, LoadError> {
        let der = first_certificate_der(cert_pem).map_err(LoadError::Cert)?;
        let key = KeyPair::from_pem(key_pem)
            .map_err(|err| LoadError::Key(format!("not a PKCS#8 PEM private key ({err})")))?;
        let (_, x509) = x509_parser::parse_x509_certificate(&der)
            .map_err(|err| LoadError::Cert(format!("not an X.509 certificate ({err})")))?;
        if !x509.is_ca() {
            return Err(LoadError::Cert(
                "not a CA certificate (basicConstraints CA:false)".into(),
            ));
        }
        if x509.public_key().raw != key.public_key_der().as_slice() {
            return Err(LoadError::Mismatch);
        }
        let issuer = rebuild_issuer(&x509, &key).map_err(LoadError::Cert)?;
        Ok(Self {
            cert_pem: cert_pem.to_owned(),
            key,
            issuer,
        })
    }

    /// The CA certificate, PEM: what nodes and clients trust.
    pub fn cert_pem(&self) -> String {
        self.cert_pem.clone()
    }

    /// The CA private key, PKCS#8 PEM.
    pub fn key_pem(&self) -> String {
        self.key.serialize_pem()
    }

    /// CN "node", SANs = hosts (DNS names or IP literals; "localhost" and
    /// "127.0.0.1" always added), EKU serverAuth+clientAuth.
    pub fn issue_node(&self, hosts: &[String], valid_for: Duration) -> Result<IssuedCert> {
        let now = OffsetDateTime::now_utc();
        self.issue(
            NODE_COMMON_NAME,
            node_sans(hosts)?,
            vec![
                ExtendedKeyUsagePurpose::ServerAuth,
                ExtendedKeyUsagePurpose::ClientAuth,
            ],
            (now - CLOCK_SKEW, now, valid_for),
        )
    }

    /// CN = user, EKU clientAuth. Refuses user "node" (in any case, so that
    /// no user can pass for a node with a lax comparison), empty names and
    /// names with control characters.
    pub fn issue_client(&self, user: &str, valid_for: Duration) -> Result<IssuedCert> {
        check_user_name(user)?;
        let now = OffsetDateTime::now_utc();
        self.issue(
            user,
            Vec::new(),
            vec![ExtendedKeyUsagePurpose::ClientAuth],
            (now - CLOCK_SKEW, now, valid_for),
        )
    }

    /// For tests: a certificate whose validity ended in the past
    /// (not_before = now-2d, not_after = now-1d).
    pub fn issue_expired_node(&self, hosts: &[String]) -> Result<IssuedCert> {
        const DAY: Duration = Duration::from_secs(86_400);
        let now = OffsetDateTime::now_utc();
        self.issue(
            NODE_COMMON_NAME,
            node_sans(hosts)?,
            vec![
                ExtendedKeyUsagePurpose::ServerAuth,
                ExtendedKeyUsagePurpose::ClientAuth,
            ],
            (now - 2 * DAY, now - 2 * DAY, DAY),
        )
    }

    /// A fresh key pair and an end-entity certificate for it signed by this
    /// CA; `validity` is (not_before, start of valid_for, valid_for).
    fn issue(
        &self,
        common_name: &str,
        sans: Vec<SanType>,
        usages: Vec<ExtendedKeyUsagePurpose>,
        validity: (OffsetDateTime, OffsetDateTime, Duration),
    ) -> Result<IssuedCert> {
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(rcgen_error)?;
        let mut params = CertificateParams::default();
        params.distinguished_name = common_name_dn(common_name);
        params.subject_alt_names = sans;
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = usages;
        params.use_authority_key_identifier_extension = true;
        params.serial_number = Some(random_serial());
        let (not_before, from, valid_for) = validity;
        set_validity(&mut params, not_before, from, valid_for)?;
        let cert = params
            .signed_by(&key, &self.issuer, &self.key)
            .map_err(rcgen_error)?;
        Ok(IssuedCert {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }
}

/// The notAfter of the first certificate in a PEM (for rotation before expiry).
pub fn not_after(cert_pem: &str) -> Result<SystemTime> {
    let der = first_certificate_der(cert_pem).map_err(Error::Certificate)?;
    let (_, x509) = x509_parser::parse_x509_certificate(&der)
        .map_err(|err| Error::Certificate(format!("not an X.509 certificate ({err})")))?;
    Ok(SystemTime::from(x509.validity().not_after.to_datetime()))
}

/// The subject common name of a DER certificate (None if it has none, or
/// more than one: a name that is ambiguous must not become an identity).
pub fn common_name(cert_der: &[u8]) -> Option<String> {
    let (_, x509) = x509_parser::parse_x509_certificate(cert_der).ok()?;
    let mut names = x509.subject().iter_common_name();
    let first = names.next()?.as_str().ok()?.to_owned();
    match names.next() {
        Some(_) => None,
        None => Some(first),
    }
}

/// Why `user` cannot be the subject of a client certificate, if it cannot.
fn check_user_name(user: &str) -> Result<()> {
    if user.is_empty() {
        return Err(Error::Certificate("the user name is empty".into()));
    }
    if user.eq_ignore_ascii_case(NODE_COMMON_NAME) {
        return Err(Error::Certificate(format!(
            "{user:?} is reserved for node certificates and cannot be a user"
        )));
    }
    if user.chars().any(char::is_control) {
        return Err(Error::Certificate(format!(
            "the user name {user:?} contains control characters"
        )));
    }
    Ok(())
}

/// The SANs of a node certificate: `hosts` (trimmed, `[v6]` unbracketed,
/// duplicates dropped) followed by whichever of [`ALWAYS_HOSTS`] is missing.
fn node_sans(hosts: &[String]) -> Result<Vec<SanType>> {
    let mut sans: Vec<SanType> = Vec::new();
    let given = hosts.iter().map(|h| h.trim()).filter(|h| !h.is_empty());
    for host in given.chain(ALWAYS_HOSTS) {
        let san = host_san(host)?;
        if !sans.contains(&san) {
            sans.push(san);
        }
    }
    Ok(sans)
}

fn host_san(host: &str) -> Result<SanType> {
    let unbracketed = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    if let Ok(ip) = unbracketed.parse::<IpAddr>() {
        return Ok(SanType::IpAddress(ip));
    }
    let bad = |why: &str| Error::Certificate(format!("host {host:?}: {why}"));
    if host.contains(':') {
        return Err(bad("give a DNS name or an IP address, without a port"));
    }
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | '*');
    if !host.chars().all(allowed) {
        return Err(bad("not a DNS name or IP address"));
    }
    let name = Ia5String::try_from(host.to_ascii_lowercase()).map_err(|e| bad(&e.to_string()))?;
    Ok(SanType::DnsName(name))
}

fn common_name_dn(common_name: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, common_name);
    dn
}

/// Sets not_before, and not_after = from + valid_for, refusing dates X.509
/// cannot carry (past year 9999).
fn set_validity(
    params: &mut CertificateParams,
    not_before: OffsetDateTime,
    from: OffsetDateTime,
    valid_for: Duration,
) -> Result<()> {
    let too_long = || Error::Certificate(format!("a validity of {valid_for:?} is too long"));
    let span = time::Duration::try_from(valid_for).map_err(|_| too_long())?;
    let not_after = from.checked_add(span).ok_or_else(too_long)?;
    if not_after.year() > 9999 {
        return Err(too_long());
    }
    params.not_before = not_before;
    params.not_after = not_after;
    Ok(())
}

/// 128 random bits: rcgen's default serial is a hash of the public key,
/// and serials must be unique per CA whatever keys are certified.
fn random_serial() -> SerialNumber {
    let mut bytes: [u8; 16] = rand::random();
    // Positive, and 16 bytes long whatever the draw.
    bytes[0] = (bytes[0] & 0x7f) | 0x40;
    SerialNumber::from_slice(&bytes)
}

/// The DER of the first `CERTIFICATE` block of a PEM text.
fn first_certificate_der(pem: &str) -> std::result::Result<Vec<u8>, String> {
    for block in x509_parser::pem::Pem::iter_from_buffer(pem.as_bytes()) {
        let block = block.map_err(|err| format!("bad PEM ({err})"))?;
        if block.label == "CERTIFICATE" {
            return Ok(block.contents);
        }
    }
    Err("no PEM CERTIFICATE block".into())
}

/// The rcgen issuer for a CA certificate parsed from PEM: same subject name
/// (checked byte for byte after re-encoding) and same key identifier, so
/// certificates it signs chain to the original.
fn rebuild_issuer(
    x509: &X509Certificate<'_>,
    key: &KeyPair,
) -> std::result::Result<rcgen::Certificate, String> {
    let mut params = CertificateParams::default();
    params.distinguished_name = dn::from_x509(x509.subject())?;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    params.key_identifier_method = x509
        .iter_extensions()
        .find_map(|ext| match ext.parsed_extension() {
            ParsedExtension::SubjectKeyIdentifier(id) => {
                Some(KeyIdMethod::PreSpecified(id.0.into()))
            }
            _ => None,
        })
        .unwrap_or(KeyIdMethod::Sha256);
    let issuer = params
        .self_signed(key)
        .map_err(|err| format!("cannot sign with it ({err})"))?;
    let (_, rebuilt) = x509_parser::parse_x509_certificate(issuer.der())
        .map_err(|err| format!("cannot re-read its subject ({err})"))?;
    if rebuilt.subject().as_raw() != x509.subject().as_raw() {
        return Err(format!(
            "its subject {} cannot be reproduced exactly; use a CA made by `zdbctl cert create-ca`",
            x509.subject()
        ));
    }
    Ok(issuer)
}

fn rcgen_error(err: rcgen::Error) -> Error {
    Error::Certificate(err.to_string())
}
