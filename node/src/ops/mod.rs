//! The node's operations, free of any protocol: the gRPC services, a Redis
//! front end or an HTTP API are thin adapters over these calls. Requests
//! and responses are the `zdb.v1` messages; failures are typed
//! [`Error`](crate::Error)s.
//!
//! - [`kv`]: single-range writes and reads (validate, propose or pass the
//!   read barrier, read);
//! - [`reads`]: scans and multi-key reads, each from one engine snapshot,
//!   and their coordination across ranges for clients that do not route;
//! - [`update`]: read-modify-writes of one key, decided at apply;
//! - [`cache`]: cache mode: budgets and eviction policies for key
//!   prefixes, enforced cluster-wide;
//! - [`count`], [`delete_range`]: how many keys exist or a span holds, and
//!   clearing a span, range by range;
//! - [`forward`]: passing a request on to the leader that can serve it;
//! - [`admin`]: node status, splits, the node registry, joining;
//! - [`auth`]: logins, users and roles, keeping the node's copy of the
//!   security catalog current;
//! - [`membership`]: adding and removing replicas, moving leaderships;
//! - [`shutdown`]: handing this node's leaderships away before it stops;
//! - [`time`]: timestamps from the oracle, read timestamp checks, GC settings;
//! - [`txn`]: transactions this node coordinates, and the per-range
//!   transaction protocol (prewrite, locks, commit, rollback, status);
//! - [`validate`], [`range_stats`]: request checks and range sizes.

pub mod admin;
pub mod auth;
pub mod cache;
pub mod count;
pub mod delete_range;
pub mod forward;
pub mod kv;
pub mod membership;
pub mod range_stats;
pub mod reads;
pub mod shutdown;
pub mod time;
pub mod txn;
pub mod update;
pub mod validate;

use std::sync::Arc;
use std::time::{Duration, Instant};

use zdb_proto::v1::RequestHeader;

use crate::config::Limits;
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::health::Health;
use crate::meta::{MetaClient, Timestamps};
use crate::mvcc::Horizon;
use crate::store::StoreHandle;
use crate::transport::{PeerDirectory, Remote};

/// Who this node is, as its operations report it.
#[derive(Debug, Clone)]
pub struct Identity {
    pub node_id: u64,
    pub address: String,
    pub cluster_id: String,
}

/// Per call: how the request reached this node, and what the node did to
/// serve it that the caller may want to know.
#[derive(Debug, Default)]
pub struct CallContext {
    /// How many nodes passed the request on before it reached this one.
    pub hops: u32,
    /// When the caller stops waiting, if it said.
    pub deadline: Option<Instant>,
    /// A share of a request this node splits by range: passed on to its
    /// range's leader although it names the range.
    coordinated: bool,
    /// The redirect this node followed to serve the request: clients that
    /// route themselves update their range cache from it.
    pub redirect: Option<zdb_proto::v1::Error>,
    /// Who the call runs as.
    pub principal: crate::auth::Principal,
}

impl CallContext {
    /// A call passed on by other nodes `hops` times, whose caller waits
    /// until `deadline`.
    pub fn new(hops: u32, deadline: Option<Instant>) -> Self {
        CallContext {
            hops,
            deadline,
            coordinated: false,
            redirect: None,
            principal: crate::auth::Principal::Anonymous,
        }
    }

    /// A fresh context for another attempt at the same call, by the same
    /// caller.
    pub fn again(&self) -> Self {
        CallContext {
            principal: self.principal.clone(),
            ..CallContext::new(self.hops, self.deadline)
        }
    }

    /// One range's share of this call, which this node coordinates.
    fn share(&self) -> Self {
        CallContext {
            coordinated: true,
            ..CallContext::new(self.hops, self.deadline)
        }
    }

    /// How long a call made for this one may take: `own`, or less if the
    /// caller stops waiting sooner.
    fn budget(&self, own: Duration) -> Duration {
        match self.deadline {
            Some(deadline) => own.min(deadline.saturating_duration_since(Instant::now())),
            None => own,
        }
    }
}

/// The operations of one node. Cheap to clone.
#[derive(Clone)]
pub struct Ops {
    identity: Arc<Identity>,
    store: StoreHandle,
    engine: Engine,
    meta: MetaClient,
    remote: Remote,
    peers: Arc<PeerDirectory>,
    limits: Limits,
    /// How long a request may wait for its proposal or read.
    timeout: Duration,
    health: Health,
    sizes: Arc<range_stats::SizeCache>,
    timestamps: Timestamps,
    horizon: Arc<Horizon>,
    transactions: txn::Transactions,
    lock_waits: txn::locking::WaitQueues,
    guard: crate::auth::Guard,
    security: auth::SecuritySettings,
    cache: Arc<cache::CacheState>,
}

/// What [`Ops`] is made of.
pub struct OpsParts {
    pub identity: Identity,
    pub store: StoreHandle,
    pub engine: Engine,
    pub meta: MetaClient,
    pub remote: Remote,
    pub peers: Arc<PeerDirectory>,
    pub limits: Limits,
    pub timeout: Duration,
    pub health: Health,
    pub timestamps: Timestamps,
    pub horizon: Arc<Horizon>,
    pub guard: crate::auth::Guard,
    pub security: auth::SecuritySettings,
}

impl Ops {
    pub fn new(parts: OpsParts) -> Self {
        Ops {
            identity: Arc::new(parts.identity),
            store: parts.store,
            engine: parts.engine,
            meta: parts.meta,
            remote: parts.remote,
            peers: parts.peers,
            limits: parts.limits,
            timeout: parts.timeout,
            health: parts.health,
            sizes: Arc::default(),
            timestamps: parts.timestamps,
            horizon: parts.horizon,
            transactions: txn::Transactions::default(),
            lock_waits: txn::locking::WaitQueues::default(),
            guard: parts.guard,
            security: parts.security,
            cache: Arc::default(),
        }
    }

    /// This node's copy of the cache policies.
    pub fn cache_settings(&self) -> Arc<zdb_proto::v1::CacheSettings> {
        self.cache.settings()
    }

    pub fn guard(&self) -> &crate::auth::Guard {
        &self.guard
    }

    pub fn identity(&self) -> &Identity {
        &self.identity
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Refuses new requests once the node is shutting down: they are not
    /// applied, and the caller goes to another node.
    fn admit(&self) -> Result<()> {
        if self.health.accepting() {
            Ok(())
        } else {
            Err(Error::ShuttingDown)
        }
    }

    /// The meta range as this call may use it: a call another node passed
    /// on is answered from here or refused with where to go.
    fn meta_for(&self, ctx: &CallContext) -> MetaClient {
        if ctx.hops > 0 {
            self.meta.local_only()
        } else {
            self.meta.clone()
        }
    }
}

/// Whether the client named the range (it routes itself): it then gets the
/// typed routing errors, and the node never serves it from another range.
fn routed(header: &Option<RequestHeader>) -> bool {
    header.as_ref().is_some_and(|header| header.range_id != 0)
}
