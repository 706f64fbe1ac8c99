//! Node-to-node traffic: the [`Dialer`] every outbound connection goes
//! through, one gRPC stream per peer carrying batches of Raft messages, a
//! streaming call per snapshot, the peer identity checks that keep a wiped
//! node from voting under its old name, and [`Remote`] calls on another
//! node's APIs (forwarding, the meta range's leader, the ranges a
//! transaction touches).

mod caller;
mod dialer;
mod introduce;
mod outbox;
mod peers;
mod remote;
mod server;
mod txn_remote;

pub use caller::caller_of;
pub use dialer::Dialer;
pub use introduce::{introduce, join};
pub use outbox::Outbox;
pub use peers::PeerDirectory;
pub use remote::{Remote, HOPS_METADATA};
pub use server::RaftTransportService;
pub use txn_remote::localized;

/// Snapshot messages are cut into chunks of this size.
const SNAPSHOT_CHUNK_BYTES: usize = 1 << 20;
/// A snapshot larger than this is refused by the receiver.
const MAX_SNAPSHOT_BYTES: usize = 4 << 30;
