//! What each RPC needs, declared on its request message: a service
//! handler cannot run a request whose type does not say (the call
//! adapter requires [`Protected`]), so a new RPC without a permission
//! check does not compile.

use zdb_proto::v1::*;

use super::catalog::{Need, Span};

/// What a call needs to be allowed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Requirement {
    /// Anyone, even without credentials (logging in; whether auth is on).
    Anyone,
    /// Any authenticated caller (timestamps, routing, a transaction's own
    /// bookkeeping: its keys are checked by the calls that name them).
    Authenticated,
    /// These permissions on these spans, all of them.
    Spans(Vec<(Need, Span)>),
    /// Only the cluster's own nodes (node-to-node RPCs): with TLS on, the
    /// caller must present a node certificate from the cluster CA.
    Node,
}

impl Requirement {
    fn keys<'a>(need: Need, keys: impl IntoIterator<Item = &'a Vec<u8>>) -> Self {
        Requirement::Spans(keys.into_iter().map(|key| (need, Span::key(key))).collect())
    }

    fn admin() -> Self {
        Requirement::Spans(vec![(Need::Admin, Span::everything())])
    }
}

/// A request that says what it needs.
pub trait Protected {
    fn requirement(&self) -> Requirement;
}

fn mutation_keys(mutations: &[Mutation]) -> impl Iterator<Item = &Vec<u8>> {
    mutations.iter().filter_map(|mutation| match &mutation.op {
        Some(mutation::Op::Put(put)) => Some(&put.key),
        Some(mutation::Op::Delete(delete)) => Some(&delete.key),
        None => None,
    })
}

macro_rules! requires {
    ($($request:ty => |$r:ident| $requirement:expr;)*) => {
        $(impl Protected for $request {
            #[allow(unused_variables)]
            fn requirement(&self) -> Requirement {
                let $r = self;
                $requirement
            }
        })*
    };
}

requires! {
    // Kv
    GetRequest => |r| Requirement::keys(Need::Read, [&r.key]);
    PutRequest => |r| Requirement::keys(Need::Write, [&r.key]);
    DeleteRequest => |r| Requirement::keys(Need::Write, [&r.key]);
    ScanRequest => |r| Requirement::Spans(vec![(Need::Read, Span::scan(&r.start_key, &r.end_key))]);
    BatchGetRequest => |r| Requirement::keys(Need::Read, &r.keys);
    BatchWriteRequest => |r| Requirement::keys(Need::Write, mutation_keys(&r.mutations));
    CompareAndSwapRequest => |r| Requirement::Spans(vec![
        (Need::Read, Span::key(&r.key)),
        (Need::Write, Span::key(&r.key)),
    ]);
    ExistsRequest => |r| Requirement::keys(Need::Read, &r.keys);
    CountRequest => |r| Requirement::Spans(vec![(Need::Read, Span::scan(&r.start_key, &r.end_key))]);
    DeleteRangeRequest => |r| Requirement::Spans(vec![(Need::Write, Span::scan(&r.start_key, &r.end_key))]);
    // Every update reads the key (it answers with the value before or after).
    UpdateRequest => |r| Requirement::Spans(vec![
        (Need::Read, Span::key(&r.key)),
        (Need::Write, Span::key(&r.key)),
    ]);
    LocateRequest => |r| Requirement::Authenticated;
    NowRequest => |r| Requirement::Authenticated;

    // Txn: the session calls are the caller's own; every key is checked
    // by the call that names it.
    BeginRequest => |r| Requirement::Authenticated;
    TxnGetRequest => |r| {
        let need = if r.lock == ReadLock::Exclusive as i32 { Need::Write } else { Need::Read };
        Requirement::Spans(vec![(Need::Read, Span::key(&r.key)), (need, Span::key(&r.key))])
    };
    TxnBatchGetRequest => |r| Requirement::keys(Need::Read, &r.keys);
    TxnScanRequest => |r| Requirement::Spans(vec![(Need::Read, Span::scan(&r.start_key, &r.end_key))]);
    TxnPutRequest => |r| Requirement::keys(Need::Write, [&r.key]);
    TxnDeleteRequest => |r| Requirement::keys(Need::Write, [&r.key]);
    CommitRequest => |r| Requirement::keys(Need::Write, mutation_keys(&r.mutations));
    RollbackRequest => |r| Requirement::Authenticated;
    HeartbeatRequest => |r| Requirement::Authenticated;
    AtomicRequest => |r| {
        let reads = r.compare.iter().map(|compare| (Need::Read, Span::key(&compare.key)));
        let writes = mutation_keys(&r.success)
            .chain(mutation_keys(&r.failure))
            .map(|key| (Need::Write, Span::key(key)));
        Requirement::Spans(reads.chain(writes).collect())
    };

    // TxnRange: the per-range protocol between nodes.
    PrewriteRequest => |r| Requirement::Node;
    AcquireLocksRequest => |r| Requirement::Node;
    CommitKeysRequest => |r| Requirement::Node;
    RollbackKeysRequest => |r| Requirement::Node;
    CheckStatusRequest => |r| Requirement::Node;
    KeepAliveRequest => |r| Requirement::Node;
    WaitForRequest => |r| Requirement::Node;

    // Admin
    NodeStatusRequest => |r| Requirement::admin();
    SplitRangeRequest => |r| Requirement::Spans(vec![(Need::Admin, Span::key(&r.split_key))]);
    TransferLeaderRequest => |r| Requirement::admin();
    AddReplicaRequest => |r| Requirement::admin();
    RemoveReplicaRequest => |r| Requirement::admin();
    SetNodeStateRequest => |r| Requirement::admin();
    SetNodeZoneRequest => |r| Requirement::admin();
    // Clients learn the cluster's nodes from it to route.
    ListNodesRequest => |r| Requirement::Authenticated;
    GcStatusRequest => |r| Requirement::admin();
    SetGcLifeTimeRequest => |r| Requirement::admin();
    RotateDataKeyRequest => |r| Requirement::admin();
    JoinRequest => |r| Requirement::Node;
    UpdateMetaRequest => |r| Requirement::Node;
    AllocateRangeIdRequest => |r| Requirement::Node;
    SecurityCatalogRequest => |r| Requirement::Node;
    SecurityCommand => |r| Requirement::Node;
    CacheStatusRequest => |r| Requirement::admin();
    SetCachePolicyRequest => |r| Requirement::admin();
    CacheSettingsRequest => |r| Requirement::Node;
    EvictRangeRequest => |r| Requirement::Node;

    // Auth
    AuthenticateRequest => |r| Requirement::Anyone;
    AuthStatusRequest => |r| Requirement::Anyone;
    AuthEnableRequest => |r| Requirement::admin();
    AuthDisableRequest => |r| Requirement::admin();
    UserAddRequest => |r| Requirement::admin();
    UserDeleteRequest => |r| Requirement::admin();
    UserChangePasswordRequest => |r| Requirement::admin();
    UserRoleRequest => |r| Requirement::admin();
    UserListRequest => |r| Requirement::admin();
    RoleAddRequest => |r| Requirement::admin();
    RoleDeleteRequest => |r| Requirement::admin();
    RoleGrantPermissionRequest => |r| Requirement::admin();
    RoleRevokePermissionRequest => |r| Requirement::admin();
    RoleListRequest => |r| Requirement::admin();
}
