//! Checking a certificate against a CA with the verifiers rustls uses in a
//! handshake (webpki: chain, validity, key usage, names), so that
//! `zdbctl cert` and tests find a bad certificate before a node does.

use std::sync::Arc;

use rustls::client::danger::ServerCertVerifier;
use rustls::client::WebPkiServerVerifier;
use rustls::server::WebPkiClientVerifier;
use rustls::RootCertStore;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};

use crate::{Error, Result};

/// Checks that the first certificate of `cert_pem` chains to the CA in
/// `ca_cert_pem` and is valid now as a TLS client certificate and, if
/// `server_name` is given, as a TLS server certificate for that name (a
/// node certificate must pass both).
pub fn verify_issued(ca_cert_pem: &str, cert_pem: &str, server_name: Option<&str>) -> Result<()> {
    let ca = CertificateDer::from_pem_slice(ca_cert_pem.as_bytes())
        .map_err(|err| Error::Certificate(format!("CA certificate: {err}")))?;
    let cert = CertificateDer::from_pem_slice(cert_pem.as_bytes())
        .map_err(|err| Error::Certificate(format!("certificate: {err}")))?;
    let mut roots = RootCertStore::empty();
    roots
        .add(ca)
        .map_err(|err| Error::Certificate(format!("CA certificate: {err}")))?;
    let roots = Arc::new(roots);
    // Explicit provider: never depend on a process-wide default.
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let now = UnixTime::now();
    let rejected = |err: rustls::Error| Error::Certificate(format!("rejected: {err}"));

    let clients = WebPkiClientVerifier::builder_with_provider(roots.clone(), provider.clone())
        .build()
        .map_err(|err| Error::Certificate(format!("client verifier: {err}")))?;
    clients
        .verify_client_cert(&cert, &[], now)
        .map_err(rejected)?;

    if let Some(name) = server_name {
        let name = ServerName::try_from(name.to_owned())
            .map_err(|err| Error::Certificate(format!("server name {name:?}: {err}")))?;
        let servers = WebPkiServerVerifier::builder_with_provider(roots, provider)
            .build()
            .map_err(|err| Error::Certificate(format!("server verifier: {err}")))?;
        servers
            .verify_server_cert(&cert, &[], &name, &[], now)
            .map_err(rejected)?;
    }
    Ok(())
}
