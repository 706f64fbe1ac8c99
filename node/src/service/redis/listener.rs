//! The Redis port: accepts connections (TLS with the node's certificate
//! when the node serves TLS, as the gRPC port does) and runs a session for
//! each until the node stops.

use std::net::SocketAddr;
use std::sync::Arc;

use futures::StreamExt;
use tokio::net::TcpListener;
use tokio::sync::watch;
use zdb_security::tls::{Identity, ServerTls};

use super::session::{self, Session, Shared};
use super::state::RedisState;
use crate::auth::audit::Decision;
use crate::auth::Caller;
use crate::ops::Ops;

pub async fn serve(
    listener: TcpListener,
    tls: Option<Arc<ServerTls>>,
    ops: Ops,
    stop: watch::Receiver<bool>,
) {
    let shared = Arc::new(Shared {
        ops,
        state: Arc::new(RedisState::new()),
    });
    match tls {
        None => serve_plain(listener, shared, stop).await,
        Some(tls) => serve_tls(listener, tls, shared, stop).await,
    }
}

fn start_session<S>(
    stream: S,
    peer: SocketAddr,
    certificate: Option<Identity>,
    shared: &Arc<Shared>,
    stop: &watch::Receiver<bool>,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    crate::metrics::REDIS_CONNECTIONS.inc();
    let info = shared.state.connect(peer);
    let caller = Caller {
        certificate,
        token: None,
        peer: Some(peer),
    };
    let session = Session::new(info, caller);
    tokio::spawn(session::run(stream, shared.clone(), session, stop.clone()));
}

async fn serve_plain(listener: TcpListener, shared: Arc<Shared>, mut stop: watch::Receiver<bool>) {
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = stop.wait_for(|stopped| *stopped) => return,
        };
        match accepted {
            Ok((stream, peer)) => {
                let _ = stream.set_nodelay(true);
                start_session(stream, peer, None, &shared, &stop);
            }
            Err(err) => {
                tracing::warn!(error = %err, "the Redis port could not accept a connection");
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            }
        }
    }
}

async fn serve_tls(
    listener: TcpListener,
    tls: Arc<ServerTls>,
    shared: Arc<Shared>,
    mut stop: watch::Receiver<bool>,
) {
    let audit = shared.ops.guard().audit().clone();
    let refused = move |peer, reason: String| {
        audit.record(
            "",
            "RedisTlsHandshake",
            Some(peer),
            Decision::Denied(reason),
        );
    };
    let mut incoming = Box::pin(zdb_security::tls::incoming(listener, tls, refused));
    loop {
        let next = tokio::select! {
            next = incoming.next() => next,
            _ = stop.wait_for(|stopped| *stopped) => return,
        };
        let Some(accepted) = next else { return };
        let Ok(stream) = accepted else { continue };
        let (tcp, connection) = stream.get_ref();
        let Ok(peer) = tcp.peer_addr() else { continue };
        let certificate = connection.peer_certificates().and_then(Identity::of_peer);
        start_session(stream, peer, certificate, &shared, &stop);
    }
}
