//! The one place this node opens connections to other nodes: Raft streams,
//! snapshots, meta range calls, forwarded requests, joining. Addresses are
//! `HOST:PORT`; how to reach one (plaintext, or TLS with this node's
//! certificate, which its peers require) is decided here and nowhere else.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tonic::transport::{Channel, Endpoint};
use zdb_security::tls::{ClientTls, Connector};

use crate::error::{Error, Result};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
const KEEPALIVE: Duration = Duration::from_secs(5);

/// Opens and caches connections to other nodes. Cheap to clone.
#[derive(Clone, Default)]
pub struct Dialer {
    /// One multiplexed connection per address, shared by every request to
    /// it; it reconnects by itself when the peer comes back.
    channels: Arc<Mutex<HashMap<String, Channel>>>,
    /// This node's TLS client side; None: plaintext.
    tls: Option<Arc<ClientTls>>,
}

impl Dialer {
    pub fn new() -> Self {
        Dialer::default()
    }

    /// Dials every peer over TLS, presenting this node's certificate (the
    /// configuration follows its files: rotated certificates are used by
    /// the connections made after the change).
    pub fn with_tls(tls: Arc<ClientTls>) -> Self {
        Dialer {
            tls: Some(tls),
            ..Dialer::default()
        }
    }

    fn connector(&self) -> Option<Connector> {
        self.tls
            .as_ref()
            .map(|tls| Connector::new(tls.clone(), CONNECT_TIMEOUT))
    }

    fn endpoint(address: &str) -> Result<Endpoint> {
        let endpoint = Endpoint::from_shared(format!("http://{address}")).map_err(|err| {
            Error::Config(format!(
                "{address:?} is not a valid HOST:PORT address: {err}"
            ))
        })?;
        Ok(endpoint
            .connect_timeout(CONNECT_TIMEOUT)
            .tcp_nodelay(true)
            .http2_keep_alive_interval(KEEPALIVE)
            .keep_alive_timeout(KEEPALIVE)
            .keep_alive_while_idle(true))
    }

    /// The cached connection to `address` (made on first use, lazily: a
    /// call fails with UNAVAILABLE while the peer cannot be reached).
    pub fn channel(&self, address: &str) -> Result<Channel> {
        let mut channels = self.channels.lock().expect("dialer lock is never poisoned");
        if let Some(channel) = channels.get(address) {
            return Ok(channel.clone());
        }
        let endpoint = Self::endpoint(address)?;
        let channel = match self.connector() {
            Some(connector) => endpoint.connect_with_connector_lazy(connector),
            None => endpoint.connect_lazy(),
        };
        channels.insert(address.to_owned(), channel.clone());
        Ok(channel)
    }

    /// A new connection of its own to `address`, once it is established:
    /// for long-lived Raft streams and snapshots, which must learn at once
    /// that a peer is unreachable.
    pub async fn connect(&self, address: &str) -> Result<Channel> {
        let endpoint = Self::endpoint(address)?;
        match self.connector() {
            Some(connector) => endpoint.connect_with_connector(connector).await,
            None => endpoint.connect().await,
        }
        .map_err(|err| Error::Transport(format!("cannot connect to {address}: {err}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn connections_are_cached_per_address_and_bad_addresses_refused() {
        let dialer = Dialer::new();
        dialer.channel("127.0.0.1:1").unwrap();
        dialer.channel("127.0.0.1:1").unwrap();
        assert_eq!(dialer.channels.lock().unwrap().len(), 1);
        assert!(matches!(
            dialer.channel("no port at all\n"),
            Err(Error::Config(_))
        ));
        assert!(dialer.connect("127.0.0.1:1").await.is_err());
    }
}
