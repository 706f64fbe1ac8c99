//! Starting and stopping a node: open the engine, settle the node's identity
//! (bootstrapping a new cluster if this is its first start), start the store
//! and serve gRPC, HTTP and (when asked) Redis until shutdown; then leave
//! gracefully, within a bounded time.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use prost::Message as _;
use rand::Rng;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tonic::transport::server::TcpIncoming;
use zdb_proto::v1::admin_server::AdminServer;
use zdb_proto::v1::auth_server::AuthServer;
use zdb_proto::v1::kv_server::KvServer;
use zdb_proto::v1::raft_transport_server::RaftTransportServer;
use zdb_proto::v1::txn_range_server::TxnRangeServer;
use zdb_proto::v1::txn_server::TxnServer;
use zdb_proto::v1::{NodeIdentity, PeerHeader};

use zdb_security::tls::{ClientTls, ServerTls};

use crate::auth::audit::Decision;
use crate::auth::{AuditLog, Guard};
use crate::clock::SystemClock;
use crate::config::NodeConfig;
use crate::engine::{keys, Engine, ReadView, CF_META};
use crate::error::{Error, Result};
use crate::health::{Health, Phase};
use crate::meta::gc::{self, GcParts};
use crate::meta::{reporter, MetaClient, Timestamps};
use crate::mvcc::Horizon;
use crate::ops::{Identity, Ops, OpsParts};
use crate::service::txn::{TxnRangeService, TxnService};
use crate::service::{
    admin::AdminService, auth::AuthService, grpc_health, kv::KvService, redis, status_http,
};
use crate::store::{self, msg::StoreMsg, MetaLease, Store, StoreParts};
use crate::transport::{self, Dialer, Outbox, PeerDirectory, RaftTransportService, Remote};

/// How long a client request may wait for its proposal or read to complete.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// Streams a client may cancel on one connection before the server has
/// taken them: a node that was paused finds many such cancellations queued
/// (each a client's deadline passing), and a small limit would make it
/// close the connection and fail every other call on it.
const MAX_PENDING_RESET_STREAMS: usize = 16 << 10;

/// Runs the node until `shutdown` completes (then leaves gracefully), or
/// until its store stops on an error it cannot go on after.
pub async fn run(
    config: NodeConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    let health = Health::default();
    std::fs::create_dir_all(&config.data_dir)?;
    // Bind first: a port conflict is reported before anything starts.
    let listener = TcpListener::bind(config.listen)
        .await
        .map_err(|err| Error::Config(format!("cannot listen on {}: {err}", config.listen)))?;
    let (stop_tx, stop_rx) = watch::channel(false);
    let status_task = match config.status_listen {
        Some(address) => {
            let status_listener = TcpListener::bind(address).await.map_err(|err| {
                Error::Config(format!("cannot listen on {address} (status port): {err}"))
            })?;
            Some(tokio::spawn(serve_status(
                status_listener,
                health.clone(),
                stop_rx.clone(),
            )))
        }
        None => None,
    };

    let redis_listener = match config.redis_listen {
        Some(address) => Some(TcpListener::bind(address).await.map_err(|err| {
            Error::Config(format!("cannot listen on {address} (Redis port): {err}"))
        })?),
        None => None,
    };

    let engine = Engine::open_node(&config.data_dir, config.encryption.as_ref())?;
    engine.check_format()?;
    let security = Security::load(&config)?;
    let identity = settle_identity(&engine, &config, &security.dialer).await?;
    security.guard.audit().set_node(identity.node_id);
    tracing::info!(
        node_id = identity.node_id,
        cluster_id = %identity.cluster_id,
        store_id = %identity.store_id,
        listen = %config.listen,
        "starting node"
    );
    let server_tls = security.server_tls.clone();
    let (node, transport) = start(&config, &identity, engine, security, &health, &stop_rx)?;
    health.set_phase(Phase::Running);
    if let Some(listener) = redis_listener {
        tokio::spawn(redis::listener::serve(
            listener,
            server_tls.clone(),
            node.ops.clone(),
            stop_rx.clone(),
        ));
    }

    let incoming = Incoming {
        listener,
        tls: server_tls,
    };
    let result = serve(&config, &node, transport, incoming, shutdown, &stop_tx).await;
    let _ = stop_tx.send(true);
    node.outbox.close();
    let _ = node.store_sender.send(StoreMsg::Shutdown);
    let stopped = node
        .store_thread
        .await
        .unwrap_or_else(|err| Err(Error::Config(format!("the store's thread failed: {err}"))));
    if let Some(task) = status_task {
        let _ = task.await;
    }
    tracing::info!("node stopped");
    result.and(stopped)
}

/// A running node's parts that serving and shutdown need.
struct Running {
    ops: Ops,
    outbox: Outbox,
    store_sender: std::sync::mpsc::Sender<StoreMsg>,
    /// Ends when the store's thread ends, with the store's error if it failed.
    store_thread: tokio::task::JoinHandle<Result<()>>,
    health: Health,
}

/// How this node proves who it is and checks who calls it.
struct Security {
    dialer: Dialer,
    server_tls: Option<Arc<ServerTls>>,
    guard: Guard,
}

impl Security {
    fn load(config: &NodeConfig) -> Result<Self> {
        let bad = |err: zdb_security::Error| Error::Config(err.to_string());
        let Some(files) = &config.tls else {
            if config.security.root_password.is_some() {
                return Err(Error::Config(
                    "authentication needs TLS: give --tls-ca-file, --tls-cert-file and --tls-key-file too".into(),
                ));
            }
            return Ok(Security {
                dialer: Dialer::new(),
                server_tls: None,
                guard: Guard::open(),
            });
        };
        let server_tls = Arc::new(ServerTls::load(files).map_err(bad)?);
        let client_tls = Arc::new(ClientTls::for_node(files).map_err(bad)?);
        let audit_path = config
            .audit_log
            .clone()
            .unwrap_or_else(|| config.data_dir.join("audit.log"));
        let audit = AuditLog::open(&audit_path).map_err(|err| {
            Error::Config(format!(
                "cannot open the audit log {}: {err}",
                audit_path.display()
            ))
        })?;
        Ok(Security {
            dialer: Dialer::with_tls(client_tls),
            server_tls: Some(server_tls),
            guard: Guard::new(true, config.security.root_password.is_some(), audit),
        })
    }
}

/// Where connections come from: the listener, with TLS when configured.
struct Incoming {
    listener: TcpListener,
    tls: Option<Arc<ServerTls>>,
}

fn start(
    config: &NodeConfig,
    identity: &NodeIdentity,
    engine: Engine,
    security: Security,
    health: &Health,
    stop: &watch::Receiver<bool>,
) -> Result<(Running, RaftTransportService)> {
    let Security { dialer, guard, .. } = security;
    let advertised = config.advertised_address();
    let seeds = config
        .join
        .iter()
        .flat_map(|seeds| seeds.split(','))
        .map(|seed| seed.trim().to_owned())
        .filter(|seed| !seed.is_empty())
        .collect();
    let peers = Arc::new(PeerDirectory::new(
        engine.clone(),
        config.peers.clone(),
        seeds,
    ));
    let outbox = Outbox::new(
        header(identity, &advertised),
        peers.clone(),
        dialer.clone(),
        tokio::runtime::Handle::current(),
    );
    let horizon = Arc::new(Horizon::default());
    let meta_lease = Arc::new(MetaLease::default());
    let (store, store_thread, store_sender) = Store::start(StoreParts {
        node_id: identity.node_id,
        engine: engine.clone(),
        raft: config.raft.clone(),
        ttl_sweep_interval: config.ttl_sweep_interval,
        sink: Box::new(outbox.clone()),
        peers: peers.clone(),
        logger: crate::logging::raft_logger(),
        clock: Arc::new(SystemClock),
        health: health.clone(),
        horizon: horizon.clone(),
        meta_lease: meta_lease.clone(),
    })?;
    outbox.connect_store(store_sender.clone());
    let store_thread = tokio::task::spawn_blocking(move || {
        store_thread
            .join()
            .unwrap_or_else(|_| Err(Error::Config("the store's thread panicked".into())))
    });

    let remote = Remote::new(dialer);
    let meta = MetaClient::new(
        store.clone(),
        engine.clone(),
        peers.clone(),
        remote.clone(),
        meta_lease,
    );
    let timestamps = Timestamps::start(meta.clone(), horizon.clone());
    tokio::spawn(gc::run(
        GcParts {
            meta: meta.clone(),
            timestamps: timestamps.clone(),
            store: store.clone(),
            engine: engine.clone(),
            horizon: horizon.clone(),
        },
        stop.clone(),
    ));
    tokio::spawn(crate::engine::sealing::rotate_periodically(
        engine.clone(),
        config.encryption.clone(),
        stop.clone(),
    ));
    let ops = Ops::new(OpsParts {
        identity: Identity {
            node_id: identity.node_id,
            address: advertised.clone(),
            cluster_id: identity.cluster_id.clone(),
        },
        store: store.clone(),
        engine,
        meta: meta.clone(),
        remote,
        peers: peers.clone(),
        limits: config.limits.clone(),
        timeout: REQUEST_TIMEOUT,
        health: health.clone(),
        timestamps,
        horizon,
        guard: guard.clone(),
        security: config.security.clone(),
    });
    let transport = RaftTransportService::new(
        identity.node_id,
        identity.cluster_id.clone(),
        peers.clone(),
        store_sender.clone(),
        stop.clone(),
        guard,
    );
    tokio::spawn(reporter::report_ranges(
        store,
        meta.clone(),
        peers,
        stop.clone(),
    ));
    tokio::spawn(reporter::announce_address(
        meta,
        identity.node_id,
        advertised,
        config.zone.clone(),
        stop.clone(),
    ));
    tokio::spawn(ops.clone().keep_transactions());
    tokio::spawn(ops.clone().keep_security_catalog(stop.clone()));
    tokio::spawn(ops.clone().keep_cache(stop.clone()));
    let running = Running {
        ops,
        outbox,
        store_sender,
        store_thread,
        health: health.clone(),
    };
    Ok((running, transport))
}

/// Serves gRPC until `shutdown` (then leaves gracefully) or until the
/// store fails.
async fn serve(
    config: &NodeConfig,
    node: &Running,
    transport: RaftTransportService,
    incoming: Incoming,
    shutdown: impl Future<Output = ()> + Send + 'static,
    stop: &watch::Sender<bool>,
) -> Result<()> {
    let health_service = grpc_health::service(node.health.clone(), stop.subscribe()).await;
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(zdb_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()
        .map_err(|err| Error::Config(format!("gRPC reflection: {err}")))?;
    // Batches over the limit must reach validation to get a clear error.
    let max_message = config.limits.max_batch_bytes * 4 + (4 << 20);
    let mut server_stop = stop.subscribe();
    let router = tonic::transport::Server::builder()
        .http2_max_pending_accept_reset_streams(Some(MAX_PENDING_RESET_STREAMS))
        .add_service(health_service)
        .add_service(reflection)
        .add_service(
            KvServer::new(KvService::new(node.ops.clone()))
                .max_decoding_message_size(max_message)
                .max_encoding_message_size(usize::MAX),
        )
        .add_service(AdminServer::new(AdminService::new(node.ops.clone())))
        .add_service(
            TxnServer::new(TxnService::new(node.ops.clone()))
                .max_decoding_message_size(max_message)
                .max_encoding_message_size(usize::MAX),
        )
        .add_service(
            TxnRangeServer::new(TxnRangeService::new(node.ops.clone()))
                .max_decoding_message_size(max_message)
                .max_encoding_message_size(usize::MAX),
        )
        .add_service(AuthServer::new(AuthService::new(node.ops.clone())))
        .add_service(
            RaftTransportServer::new(transport)
                .max_decoding_message_size(usize::MAX)
                .max_encoding_message_size(usize::MAX),
        );
    let stopped = async move {
        let _ = server_stop.wait_for(|stopped| *stopped).await;
    };
    let server: Pin<
        Box<dyn Future<Output = std::result::Result<(), tonic::transport::Error>> + Send>,
    > = match incoming.tls {
        None => Box::pin(router.serve_with_incoming_shutdown(
            TcpIncoming::from(incoming.listener).with_nodelay(Some(true)),
            stopped,
        )),
        Some(tls) => {
            let audit = node.ops.guard().audit().clone();
            let refused = move |peer, reason: String| {
                audit.record("", "TlsHandshake", Some(peer), Decision::Denied(reason));
            };
            Box::pin(router.serve_with_incoming_shutdown(
                zdb_security::tls::incoming(incoming.listener, tls, refused),
                stopped,
            ))
        }
    };
    tokio::pin!(server);
    tokio::select! {
        served = &mut server => return served.map_err(|err| Error::Transport(err.to_string())),
        _ = shutdown => {}
        _ = finished(&node.store_thread) => {
            node.health.set_phase(Phase::Failed);
            tracing::error!("the store stopped; stopping the node");
            return Ok(());
        }
    }
    leave(config.shutdown_timeout, node, server, stop).await;
    Ok(())
}

async fn finished<T>(task: &tokio::task::JoinHandle<T>) {
    while !task.is_finished() {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// SIGTERM: hand the leaderships to peers, stop taking requests, close the
/// streams, and give in-flight requests what is left of `within`.
async fn leave(
    within: Duration,
    node: &Running,
    server: impl Future<Output = std::result::Result<(), tonic::transport::Error>>,
    stop: &watch::Sender<bool>,
) {
    let started = Instant::now();
    node.health.set_phase(Phase::ShuttingDown);
    tracing::info!(?within, "shutting down: handing leaderships to peers");
    let left = node.ops.hand_off_leaderships(within / 2).await;
    if left > 0 {
        tracing::warn!(ranges = left, "some leaderships could not be moved in time");
    }
    node.health.stop_accepting();
    // Ends the peers' streams into this node and starts the server's
    // graceful shutdown: no new connections, GOAWAY on the open ones.
    let _ = stop.send(true);
    node.outbox.close();
    let remaining = within.saturating_sub(started.elapsed());
    match tokio::time::timeout(remaining, server).await {
        Ok(_) => tracing::info!(elapsed = ?started.elapsed(), "requests drained"),
        Err(_) => tracing::warn!("requests still running at the shutdown timeout; stopping anyway"),
    }
}

async fn serve_status(listener: TcpListener, health: Health, mut stop: watch::Receiver<bool>) {
    let shutdown = async move {
        let _ = stop.wait_for(|stopped| *stopped).await;
    };
    if let Err(err) = status_http::serve(listener, health, shutdown).await {
        tracing::warn!(error = %err, "status port stopped");
    }
}

fn header(identity: &NodeIdentity, address: &str) -> PeerHeader {
    PeerHeader {
        cluster_id: identity.cluster_id.clone(),
        from_node_id: identity.node_id,
        from_store_id: identity.store_id.clone(),
        to_node_id: 0,
        from_address: address.to_owned(),
    }
}

/// Loads the identity written on first start, or creates it for a new data
/// directory: by joining a running cluster (`--join`), or by bootstrapping
/// a new one with the listed peers.
async fn settle_identity(
    engine: &Engine,
    config: &NodeConfig,
    dialer: &Dialer,
) -> Result<NodeIdentity> {
    if let Some(raw) = engine.get(CF_META, keys::NODE_IDENTITY_KEY)? {
        let identity = NodeIdentity::decode(raw.as_slice())?;
        if config.node_id != 0 && identity.node_id != config.node_id {
            return Err(Error::Config(format!(
                "data directory {} belongs to node {}, not node {}",
                config.data_dir.display(),
                identity.node_id,
                config.node_id
            )));
        }
        if config.join.is_none() && identity.cluster_id != config.cluster_id {
            return Err(Error::Config(format!(
                "data directory {} belongs to cluster {:?}, not {:?}",
                config.data_dir.display(),
                identity.cluster_id,
                config.cluster_id
            )));
        }
        return Ok(identity);
    }
    let store_id = format!("{:032x}", rand::rng().random::<u128>());
    if let Some(seed) = &config.join {
        let joined = transport::join(dialer, seed, &config.advertised_address()).await?;
        let identity = NodeIdentity {
            cluster_id: joined.cluster_id,
            node_id: joined.node_id,
            store_id,
        };
        engine.put(
            CF_META,
            keys::NODE_IDENTITY_KEY,
            &identity.encode_to_vec(),
            true,
        )?;
        tracing::info!(
            node_id = identity.node_id,
            "joined the cluster as a new node"
        );
        return Ok(identity);
    }
    if !config.peers.contains_key(&config.node_id) {
        return Err(Error::Config(format!(
            "node {} is not in the peer list; list every member, this node included (or use --join)",
            config.node_id
        )));
    }
    let identity = NodeIdentity {
        cluster_id: config.cluster_id.clone(),
        node_id: config.node_id,
        store_id,
    };
    // Before anything is written: a refused node leaves its directory empty.
    transport::introduce(
        dialer,
        &header(&identity, &config.advertised_address()),
        &config.peers,
    )
    .await?;
    store::bootstrap(engine, &config.cluster_id, &config.peers)?;
    engine.put(
        CF_META,
        keys::NODE_IDENTITY_KEY,
        &identity.encode_to_vec(),
        true,
    )?;
    let members: Vec<u64> = config.peers.keys().copied().collect();
    tracing::info!(
        ?members,
        "new data directory: bootstrapped the cluster's first range"
    );
    Ok(identity)
}
