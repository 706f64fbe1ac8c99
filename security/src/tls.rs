//! TLS for every zdb connection, built from PEM files that may be replaced
//! while the process runs: each new connection takes the configuration as
//! the files stand (checked at most once a second), so rotating a
//! certificate is writing new files, with no restart. A change that does
//! not load (a half-written file, a key that does not match) keeps the
//! previous configuration and says why in the log.
//!
//! Servers ask for a client certificate but take connections without one:
//! users may log in with a password instead. What a certificate proves is
//! [`Identity`]: its common name, `node` for the cluster's own nodes.

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant, SystemTime};

use hyper_util::rt::TokioIo;
use rustls::client::WebPkiServerVerifier;
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::{TlsAcceptor, TlsConnector};
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::Stream;

use crate::error::{Error, Result};

/// The common name of the certificates nodes carry.
pub const NODE_COMMON_NAME: &str = "node";
/// How often a configuration looks at its files for a change.
const RELOAD_CHECK: Duration = Duration::from_secs(1);
/// A connection that has not finished its handshake by then is dropped.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Where a process's TLS material lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// The cluster CA's certificate: peers must present certificates it signed.
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// TLS material for a client: the CA to trust, and optionally a certificate
/// to log in with. From files (reloaded on change) or from memory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientTlsSource {
    Files {
        ca: PathBuf,
        cert_and_key: Option<(PathBuf, PathBuf)>,
    },
    Pem {
        ca: String,
        cert_and_key: Option<(String, String)>,
    },
}

/// Who a verified certificate says the peer is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Identity {
    /// One of the cluster's nodes (common name `node`).
    Node,
    /// A user, named by the certificate's common name.
    User(String),
}

impl Identity {
    /// The identity of a peer whose chain the handshake verified
    /// (`certs[0]` is the peer's own certificate); None without one, or
    /// when it names no one.
    pub fn of_peer(certs: &[CertificateDer<'_>]) -> Option<Identity> {
        let name = crate::pki::common_name(certs.first()?.as_ref())?;
        Some(if name == NODE_COMMON_NAME {
            Identity::Node
        } else {
            Identity::User(name)
        })
    }
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn read(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|source| Error::Read {
        path: path.to_owned(),
        source,
    })
}

fn bad(path: &Path, reason: impl Into<String>) -> Error {
    Error::BadFile {
        path: path.to_owned(),
        reason: reason.into(),
    }
}

fn certificates(pem: &[u8], origin: &Path) -> Result<Vec<CertificateDer<'static>>> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|err| bad(origin, format!("not a PEM certificate file: {err}")))?;
    if certs.is_empty() {
        return Err(bad(origin, "holds no certificate"));
    }
    Ok(certs)
}

fn private_key(pem: &[u8], origin: &Path) -> Result<PrivateKeyDer<'static>> {
    PrivateKeyDer::from_pem_slice(pem)
        .map_err(|err| bad(origin, format!("not a PEM private key file: {err}")))
}

fn roots(ca_pem: &[u8], origin: &Path) -> Result<Arc<RootCertStore>> {
    let mut roots = RootCertStore::empty();
    for cert in certificates(ca_pem, origin)? {
        roots
            .add(cert)
            .map_err(|err| bad(origin, format!("not a usable CA certificate: {err}")))?;
    }
    Ok(Arc::new(roots))
}

/// The modification times of a set of files: a change of any reloads.
fn stamp(paths: &[&Path]) -> Vec<Option<SystemTime>> {
    paths
        .iter()
        .map(|path| std::fs::metadata(path).and_then(|m| m.modified()).ok())
        .collect()
}

/// A configuration and the file stamps it was built from.
struct Loaded<C> {
    config: Arc<C>,
    stamp: Vec<Option<SystemTime>>,
    checked: Instant,
}

/// A configuration that follows its files.
struct Reloading<C> {
    paths: Vec<PathBuf>,
    build: Box<dyn Fn() -> Result<C> + Send + Sync>,
    loaded: Mutex<Loaded<C>>,
}

impl<C> Reloading<C> {
    fn new(paths: Vec<PathBuf>, build: Box<dyn Fn() -> Result<C> + Send + Sync>) -> Result<Self> {
        let refs: Vec<&Path> = paths.iter().map(PathBuf::as_path).collect();
        let stamp = stamp(&refs);
        let config = Arc::new(build()?);
        Ok(Reloading {
            paths,
            build,
            loaded: Mutex::new(Loaded {
                config,
                stamp,
                checked: Instant::now(),
            }),
        })
    }

    fn current(&self) -> Arc<C> {
        let mut loaded = self
            .loaded
            .lock()
            .expect("TLS config lock is never poisoned");
        if loaded.checked.elapsed() < RELOAD_CHECK || self.paths.is_empty() {
            return loaded.config.clone();
        }
        loaded.checked = Instant::now();
        let refs: Vec<&Path> = self.paths.iter().map(PathBuf::as_path).collect();
        let now = stamp(&refs);
        if now != loaded.stamp {
            match (self.build)() {
                Ok(config) => {
                    tracing::info!(files = ?self.paths, "TLS files changed: new connections use them");
                    loaded.config = Arc::new(config);
                    loaded.stamp = now;
                }
                Err(err) => tracing::warn!(
                    error = %err,
                    "TLS files changed but do not load; keeping the previous ones"
                ),
            }
        }
        loaded.config.clone()
    }
}

/// The server side of a node's port.
pub struct ServerTls {
    config: Reloading<ServerConfig>,
}

impl ServerTls {
    pub fn load(files: &TlsFiles) -> Result<Self> {
        let owned = files.clone();
        let config = Reloading::new(
            vec![files.ca.clone(), files.cert.clone(), files.key.clone()],
            Box::new(move || server_config(&owned)),
        )?;
        Ok(ServerTls { config })
    }

    pub fn config(&self) -> Arc<ServerConfig> {
        self.config.current()
    }
}

fn server_config(files: &TlsFiles) -> Result<ServerConfig> {
    let roots = roots(&read(&files.ca)?, &files.ca)?;
    let verifier = WebPkiClientVerifier::builder_with_provider(roots, provider())
        .allow_unauthenticated()
        .build()
        .map_err(|err| Error::Tls(format!("client certificate verifier: {err}")))?;
    let certs = certificates(&read(&files.cert)?, &files.cert)?;
    let key = private_key(&read(&files.key)?, &files.key)?;
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|err| Error::Tls(err.to_string()))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(certs, key)
        .map_err(|err| {
            bad(
                &files.key,
                format!("does not match {}: {err}", files.cert.display()),
            )
        })?;
    // gRPC clients in other languages insist on negotiating HTTP/2.
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(config)
}

/// The client side: what a node dials its peers with, and what clients,
/// zdbctl and the operator dial nodes with.
pub struct ClientTls {
    config: Reloading<ClientConfig>,
}

impl ClientTls {
    pub fn load(source: &ClientTlsSource) -> Result<Self> {
        let owned = source.clone();
        let paths = match source {
            ClientTlsSource::Files { ca, cert_and_key } => {
                let mut paths = vec![ca.clone()];
                if let Some((cert, key)) = cert_and_key {
                    paths.extend([cert.clone(), key.clone()]);
                }
                paths
            }
            ClientTlsSource::Pem { .. } => Vec::new(),
        };
        let config = Reloading::new(paths, Box::new(move || client_config(&owned)))?;
        Ok(ClientTls { config })
    }

    /// A node's client side: its own certificate, trusting the cluster CA.
    pub fn for_node(files: &TlsFiles) -> Result<Self> {
        Self::load(&ClientTlsSource::Files {
            ca: files.ca.clone(),
            cert_and_key: Some((files.cert.clone(), files.key.clone())),
        })
    }

    pub fn config(&self) -> Arc<ClientConfig> {
        self.config.current()
    }
}

fn client_config(source: &ClientTlsSource) -> Result<ClientConfig> {
    let memory = Path::new("(in memory)");
    let (ca, cert_and_key) = match source {
        ClientTlsSource::Files { ca, cert_and_key } => {
            let pair = match cert_and_key {
                Some((cert, key)) => Some((
                    certificates(&read(cert)?, cert)?,
                    private_key(&read(key)?, key)?,
                )),
                None => None,
            };
            (roots(&read(ca)?, ca)?, pair)
        }
        ClientTlsSource::Pem { ca, cert_and_key } => {
            let pair = match cert_and_key {
                Some((cert, key)) => Some((
                    certificates(cert.as_bytes(), memory)?,
                    private_key(key.as_bytes(), memory)?,
                )),
                None => None,
            };
            (roots(ca.as_bytes(), memory)?, pair)
        }
    };
    let verifier = WebPkiServerVerifier::builder_with_provider(ca, provider())
        .build()
        .map_err(|err| Error::Tls(format!("server certificate verifier: {err}")))?;
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|err| Error::Tls(err.to_string()))?
        .with_webpki_verifier(verifier);
    let mut config = match cert_and_key {
        Some((certs, key)) => builder.with_client_auth_cert(certs, key).map_err(|err| {
            Error::Tls(format!(
                "the client certificate and key do not match: {err}"
            ))
        })?,
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(config)
}

/// Accepts TCP connections on `listener` and yields those that complete a
/// TLS handshake. Handshakes run concurrently, so a slow or hostile
/// client holds up no one; a failed one is passed to `refused` (for the
/// audit log) and dropped.
pub fn incoming(
    listener: TcpListener,
    tls: Arc<ServerTls>,
    refused: impl Fn(SocketAddr, String) + Send + Sync + 'static,
) -> impl Stream<Item = std::io::Result<tokio_rustls::server::TlsStream<TcpStream>>> {
    let (accepted_tx, accepted_rx) = mpsc::channel(64);
    let refused = Arc::new(refused);
    tokio::spawn(async move {
        loop {
            let (tcp, from) = match listener.accept().await {
                Ok(accepted) => accepted,
                Err(err) => {
                    tracing::warn!(error = %err, "accept failed");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            };
            let _ = tcp.set_nodelay(true);
            if accepted_tx.is_closed() {
                return;
            }
            let acceptor = TlsAcceptor::from(tls.config());
            let accepted_tx = accepted_tx.clone();
            let refused = refused.clone();
            tokio::spawn(async move {
                match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                    Ok(Ok(stream)) => {
                        let _ = accepted_tx.send(Ok(stream)).await;
                    }
                    Ok(Err(err)) => refused(from, err.to_string()),
                    Err(_) => refused(from, "no TLS handshake within 10 s".to_owned()),
                }
            });
        }
    });
    ReceiverStream::new(accepted_rx)
}

/// Dials TLS for tonic channels (`Endpoint::connect_with_connector`): TCP
/// with no delay, the handshake under the current configuration, the
/// server's certificate checked against the host the URI names.
#[derive(Clone)]
pub struct Connector {
    tls: Arc<ClientTls>,
    connect_timeout: Duration,
}

impl Connector {
    pub fn new(tls: Arc<ClientTls>, connect_timeout: Duration) -> Self {
        Connector {
            tls,
            connect_timeout,
        }
    }
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

impl tower_service::Service<http::Uri> for Connector {
    type Response = TokioIo<tokio_rustls::client::TlsStream<TcpStream>>;
    type Error = BoxError;
    type Future =
        Pin<Box<dyn Future<Output = std::result::Result<Self::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<std::result::Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: http::Uri) -> Self::Future {
        let config = self.tls.config();
        let connect_timeout = self.connect_timeout;
        Box::pin(async move {
            let host = uri.host().ok_or("the address names no host")?;
            let host = host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_owned();
            let port = uri.port_u16().ok_or("the address names no port")?;
            let server_name = ServerName::try_from(host.clone())
                .map_err(|err| format!("{host:?} is not a host name: {err}"))?;
            let tcp =
                tokio::time::timeout(connect_timeout, TcpStream::connect((host.as_str(), port)))
                    .await
                    .map_err(|_| {
                        format!("no connection to {host}:{port} within {connect_timeout:?}")
                    })??;
            tcp.set_nodelay(true)?;
            let stream = tokio::time::timeout(
                connect_timeout.max(Duration::from_secs(2)),
                TlsConnector::from(config).connect(server_name, tcp),
            )
            .await
            .map_err(|_| format!("no TLS handshake with {host}:{port}"))??;
            Ok(TokioIo::new(stream))
        })
    }
}
