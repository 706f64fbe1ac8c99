//! Starting and stopping a node: open the engine, settle the node's identity
//! (bootstrapping a new cluster if this is its first start), start the store
//! and serve gRPC and HTTP until shutdown.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use prost::Message as _;
use rand::Rng;
use tokio::net::TcpListener;
use tonic::transport::server::TcpIncoming;
use zdb_proto::v1::admin_server::AdminServer;
use zdb_proto::v1::kv_server::KvServer;
use zdb_proto::v1::raft_transport_server::RaftTransportServer;
use zdb_proto::v1::{NodeIdentity, PeerHeader};

use crate::cluster;
use crate::config::NodeConfig;
use crate::engine::{keys, Engine, CF_META};
use crate::error::{Error, Result};
use crate::service::{admin::AdminService, kv::KvService, status_http};
use crate::store::{self, msg::StoreMsg, Store};
use crate::transport::{self, Outbox, PeerDirectory, RaftTransportService};

/// How long a client request may wait for its proposal or read to complete.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// Runs the node until `shutdown` completes.
pub async fn run(
    config: NodeConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    std::fs::create_dir_all(&config.data_dir)?;
    let engine = Engine::open(&config.data_dir.join("db"))?;
    let identity = settle_identity(&engine, &config).await?;
    tracing::info!(
        node_id = identity.node_id,
        cluster_id = %identity.cluster_id,
        store_id = %identity.store_id,
        listen = %config.listen,
        "starting node"
    );

    // Bind first: a port conflict is reported before anything starts.
    let listener = TcpListener::bind(config.listen)
        .await
        .map_err(|err| Error::Config(format!("cannot listen on {}: {err}", config.listen)))?;
    let status_listener = match config.status_listen {
        Some(address) => Some(TcpListener::bind(address).await.map_err(|err| {
            Error::Config(format!("cannot listen on {address} (status port): {err}"))
        })?),
        None => None,
    };

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
        header(&identity, &config.advertised_address()),
        peers.clone(),
        tokio::runtime::Handle::current(),
    );
    let logger = crate::logging::raft_logger();
    let (store, store_thread, store_sender) = Store::start(
        identity.node_id,
        engine.clone(),
        config.raft.clone(),
        config.ttl_sweep_interval,
        outbox.clone(),
        peers.clone(),
        &logger,
    )?;
    outbox.connect_store(store_sender.clone());

    let (health_reporter, health_service) = tonic_health::server::health_reporter();
    health_reporter.set_serving::<KvServer<KvService>>().await;

    let kv = KvService::new(
        store.clone(),
        engine.clone(),
        cluster::MetaClient::new(store.clone(), peers.clone()),
        config.limits.clone(),
        REQUEST_TIMEOUT,
    );
    let meta_peers = peers.clone();
    let admin = AdminService::new(
        identity.node_id,
        config.advertised_address(),
        identity.cluster_id.clone(),
        store.clone(),
        engine.clone(),
        peers.clone(),
    );
    let transport = RaftTransportService::new(
        identity.node_id,
        identity.cluster_id.clone(),
        peers,
        store_sender.clone(),
    );

    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let meta = cluster::MetaClient::new(store.clone(), meta_peers);
    let reporter = tokio::spawn(cluster::report_ranges(
        store.clone(),
        meta.clone(),
        stop_rx.clone(),
    ));
    let announcer = tokio::spawn(cluster::announce_address(
        meta,
        identity.node_id,
        config.advertised_address(),
        stop_rx.clone(),
    ));
    let status_task = status_listener.map(|listener| {
        let mut stop = stop_rx.clone();
        tokio::spawn(async move {
            let shutdown = async move {
                let _ = stop.wait_for(|stopped| *stopped).await;
            };
            if let Err(err) = status_http::serve(listener, shutdown).await {
                tracing::warn!(error = %err, "status port stopped");
            }
        })
    });

    // Batches over the limit must reach validation to get a clear error.
    let max_message = config.limits.max_batch_bytes * 4 + (4 << 20);
    tonic::transport::Server::builder()
        .add_service(health_service)
        .add_service(
            KvServer::new(kv)
                .max_decoding_message_size(max_message)
                .max_encoding_message_size(usize::MAX),
        )
        .add_service(AdminServer::new(admin))
        .add_service(
            RaftTransportServer::new(transport)
                .max_decoding_message_size(usize::MAX)
                .max_encoding_message_size(usize::MAX),
        )
        .serve_with_incoming_shutdown(
            TcpIncoming::from(listener).with_nodelay(Some(true)),
            shutdown,
        )
        .await
        .map_err(|err| Error::Transport(err.to_string()))?;

    tracing::info!("shutting down");
    let _ = stop_tx.send(true);
    let _ = reporter.await;
    let _ = announcer.await;
    if let Some(task) = status_task {
        let _ = task.await;
    }
    let _ = store_sender.send(StoreMsg::Shutdown);
    let _ = tokio::task::spawn_blocking(move || store_thread.join()).await;
    Ok(())
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
async fn settle_identity(engine: &Engine, config: &NodeConfig) -> Result<NodeIdentity> {
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
        let joined = transport::join(seed, &config.advertised_address()).await?;
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
