//! A fault-injecting TCP proxy for one direction of node-to-node traffic.
//!
//! Node `i` reaches node `j` only through the proxy `P(i, j)` (its `--peers`
//! entry for `j` points here), so every Raft message, snapshot and meta call
//! from `i` to `j` crosses it. The harness sets the proxy's [`LinkFault`] at
//! any time; it applies to open connections as well as new ones.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use rand::Rng;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::error::{ChaosError, Result};

/// What a link does to the bytes that cross it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum LinkFault {
    /// Forward everything at once.
    Pass,
    /// A partition: accept connections but forward nothing; bytes wait in
    /// the socket buffers (as TCP would retransmit) until the link heals.
    Blackhole,
    /// Forward every chunk after this delay.
    Delay(Duration),
    /// Packet loss as a stream protocol sees it: each chunk breaks its
    /// connection with this probability (the peer must reconnect and resend).
    Lossy(f64),
}

struct Control {
    fault: watch::Sender<LinkFault>,
    /// Bumped to cut every open connection.
    resets: watch::Sender<u64>,
}

/// One running proxy; stops when dropped.
pub struct Proxy {
    address: SocketAddr,
    control: Arc<Control>,
    acceptor: JoinHandle<()>,
}

impl Proxy {
    /// Listens on a free port of 127.0.0.1 and forwards to `upstream`.
    pub async fn start(upstream: SocketAddr) -> Result<Proxy> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let address = listener.local_addr()?;
        let control = Arc::new(Control {
            fault: watch::channel(LinkFault::Pass).0,
            resets: watch::channel(0).0,
        });
        let acceptor = tokio::spawn(accept_loop(listener, upstream, control.clone()));
        Ok(Proxy {
            address,
            control,
            acceptor,
        })
    }

    pub fn address(&self) -> SocketAddr {
        self.address
    }

    pub fn set(&self, fault: LinkFault) {
        self.control.fault.send_replace(fault);
    }

    pub fn fault(&self) -> LinkFault {
        *self.control.fault.borrow()
    }

    /// Cuts every open connection; the peer sees a reset and reconnects.
    pub fn reset_connections(&self) {
        self.control
            .resets
            .send_modify(|generation| *generation += 1);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.acceptor.abort();
        // Open connections end with the reset signal's sender.
        self.reset_connections();
    }
}

async fn accept_loop(listener: TcpListener, upstream: SocketAddr, control: Arc<Control>) {
    loop {
        let Ok((downstream, _)) = listener.accept().await else {
            continue;
        };
        tokio::spawn(serve_connection(downstream, upstream, control.clone()));
    }
}

/// Forwards one connection both ways until either side closes, the link
/// breaks it, or the harness resets it.
async fn serve_connection(downstream: TcpStream, upstream: SocketAddr, control: Arc<Control>) {
    let mut resets = control.resets.subscribe();
    resets.mark_unchanged();
    let mut fault = control.fault.subscribe();
    // A blackholed link does not even let the connection through.
    if wait_while_blackholed(&mut fault).await.is_err() {
        return;
    }
    let Ok(upstream) = TcpStream::connect(upstream).await else {
        return; // the node is down: the caller sees the connection close
    };
    let _ = downstream.set_nodelay(true);
    let _ = upstream.set_nodelay(true);
    let (down_read, down_write) = downstream.into_split();
    let (up_read, up_write) = upstream.into_split();
    let forward = pump(down_read, up_write, control.fault.subscribe());
    let backward = pump(up_read, down_write, control.fault.subscribe());
    tokio::select! {
        _ = async { tokio::join!(forward, backward) } => {}
        _ = resets.changed() => {}
    }
}

/// Waits until the link is not blackholed; Err once the proxy is gone.
async fn wait_while_blackholed(fault: &mut watch::Receiver<LinkFault>) -> Result<()> {
    fault
        .wait_for(|fault| *fault != LinkFault::Blackhole)
        .await
        .map(|_| ())
        .map_err(|_| ChaosError::Stopped("proxy"))
}

/// Copies one direction, applying the link's fault to every chunk.
async fn pump(
    mut from: OwnedReadHalf,
    mut to: OwnedWriteHalf,
    mut fault: watch::Receiver<LinkFault>,
) -> Result<()> {
    let mut buffer = vec![0u8; 64 << 10];
    loop {
        // Partitioned: stop reading, so bytes stay queued in the kernel.
        wait_while_blackholed(&mut fault).await?;
        let read = from.read(&mut buffer).await?;
        if read == 0 {
            let _ = to.shutdown().await;
            return Ok(());
        }
        // The link may have been cut while we waited for bytes.
        wait_while_blackholed(&mut fault).await?;
        let current = *fault.borrow();
        match current {
            LinkFault::Delay(delay) => tokio::time::sleep(delay).await,
            LinkFault::Lossy(probability)
                if rand::rng().random_bool(probability.clamp(0.0, 1.0)) =>
            {
                return Err(ChaosError::Stopped("connection broken by a lossy link"));
            }
            _ => {}
        }
        to.write_all(&buffer[..read]).await?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn echo_server() -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let address = listener.local_addr().expect("address");
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let (mut read, mut write) = stream.into_split();
                    let _ = tokio::io::copy(&mut read, &mut write).await;
                });
            }
        });
        address
    }

    async fn round_trip(stream: &mut TcpStream, within: Duration) -> Option<Vec<u8>> {
        stream.write_all(b"ping").await.ok()?;
        let mut reply = [0u8; 4];
        tokio::time::timeout(within, stream.read_exact(&mut reply))
            .await
            .ok()?
            .ok()?;
        Some(reply.to_vec())
    }

    #[tokio::test]
    async fn passes_blackholes_heals_and_resets() {
        let proxy = Proxy::start(echo_server().await).await.expect("proxy");
        let mut stream = TcpStream::connect(proxy.address()).await.expect("connect");
        assert_eq!(
            round_trip(&mut stream, Duration::from_secs(5)).await,
            Some(b"ping".to_vec())
        );

        proxy.set(LinkFault::Blackhole);
        assert_eq!(
            round_trip(&mut stream, Duration::from_millis(300)).await,
            None,
            "a blackholed link forwards nothing"
        );
        proxy.set(LinkFault::Pass);
        // The held "ping" arrives after the heal, like a TCP retransmission.
        let mut held = [0u8; 4];
        tokio::time::timeout(Duration::from_secs(5), stream.read_exact(&mut held))
            .await
            .expect("the held bytes arrive once healed")
            .expect("read");
        assert_eq!(&held, b"ping");

        proxy.reset_connections();
        let mut rest = Vec::new();
        // EOF or a reset error: either way the connection ended, not hung.
        let _ended = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut rest))
            .await
            .expect("a reset closes the connection");
        let mut fresh = TcpStream::connect(proxy.address()).await.expect("connect");
        assert_eq!(
            round_trip(&mut fresh, Duration::from_secs(5)).await,
            Some(b"ping".to_vec())
        );
    }

    #[tokio::test]
    async fn delays_every_chunk() {
        let proxy = Proxy::start(echo_server().await).await.expect("proxy");
        proxy.set(LinkFault::Delay(Duration::from_millis(200)));
        let mut stream = TcpStream::connect(proxy.address()).await.expect("connect");
        let started = std::time::Instant::now();
        assert!(round_trip(&mut stream, Duration::from_secs(5))
            .await
            .is_some());
        // Two crossings of the proxy, 200 ms each.
        assert!(started.elapsed() >= Duration::from_millis(400));
    }
}
