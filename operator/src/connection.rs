//! How the operator reaches one cluster's nodes: their addresses and, with
//! TLS on, the CA to trust and the client certificate to present (user
//! `root`, or the node certificate of a user-provided Secret). The
//! certificate comes from a Secret read each pass, so a renewed one is
//! used from the next pass on; the key is never printed.

use zdb_client::{ClientConfig, TlsConfig};

use crate::resources::tls::TlsTriple;

/// The operator's TLS material for one cluster, PEM.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct ClientTls {
    pub ca: String,
    pub cert: String,
    pub key: String,
}

impl std::fmt::Debug for ClientTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientTls")
            .field("ca", &self.ca)
            .field("cert", &self.cert)
            .field("key", &"<redacted>")
            .finish()
    }
}

impl From<TlsTriple> for ClientTls {
    fn from(triple: TlsTriple) -> Self {
        ClientTls {
            ca: triple.ca,
            cert: triple.cert,
            key: triple.key,
        }
    }
}

impl ClientTls {
    pub fn config(&self) -> TlsConfig {
        TlsConfig::Pem {
            ca: self.ca.clone(),
            cert_and_key: Some((self.cert.clone(), self.key.clone())),
        }
    }
}

/// The `HOST:PORT` of a cluster's nodes, and how to speak to them.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Connection {
    pub endpoints: Vec<String>,
    /// None: plaintext.
    pub tls: Option<ClientTls>,
}

impl Connection {
    pub fn new(endpoints: Vec<String>, tls: Option<ClientTls>) -> Self {
        Connection { endpoints, tls }
    }

    pub fn is_empty(&self) -> bool {
        self.endpoints.is_empty()
    }

    /// A client configuration for these nodes, with `timeout` per call.
    pub fn client_config(&self, timeout: std::time::Duration) -> ClientConfig {
        let mut config = ClientConfig::new(self.endpoints.iter().cloned());
        config.timeout = timeout;
        config.tls = self.tls.as_ref().map(ClientTls::config);
        config
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_is_never_printed() {
        let tls = ClientTls {
            ca: "CA".into(),
            cert: "CERT".into(),
            key: "-----BEGIN PRIVATE KEY-----".into(),
        };
        let connection = Connection::new(vec!["a:1".into()], Some(tls));
        let shown = format!("{connection:?}");
        assert!(
            shown.contains("CERT") && !shown.contains("PRIVATE KEY"),
            "{shown}"
        );
        let config = connection.client_config(std::time::Duration::from_secs(3));
        assert!(matches!(
            config.tls,
            Some(TlsConfig::Pem {
                cert_and_key: Some(_),
                ..
            })
        ));
    }
}
