use std::collections::{BTreeSet, HashMap};
use std::sync::mpsc as std_mpsc;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use protobuf::Message as _;
use raft::eraftpb::{Message, MessageType};
use tokio::runtime::Handle;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::Channel;
use tonic::Code;
use zdb_proto::v1::raft_transport_client::RaftTransportClient;
use zdb_proto::v1::{PeerHeader, RaftBatch, RaftEnvelope, SnapshotChunk};

use super::{Dialer, PeerDirectory, SNAPSHOT_CHUNK_BYTES};
use crate::error::Error;
use crate::metrics;
use crate::store::msg::StoreMsg;

/// Messages sent to one peer in one RaftBatch, at most.
const MAX_MESSAGES_PER_BATCH: usize = 1024;
const RECONNECT_BACKOFF: Duration = Duration::from_millis(200);

/// Messages of one store pass, each with its range id.
type PassMessages = Vec<(u64, Message)>;

/// Hands outgoing Raft messages to one sender task per peer. Never blocks the
/// store's event loop: messages to an unreachable peer are dropped, and Raft
/// resends what matters.
#[derive(Clone)]
pub struct Outbox {
    inner: Arc<Inner>,
}

struct Inner {
    me: PeerHeader,
    peers: Arc<PeerDirectory>,
    dialer: Dialer,
    runtime: Handle,
    queues: Mutex<HashMap<u64, mpsc::UnboundedSender<PassMessages>>>,
    /// Set on shutdown: nothing is sent any more, the streams end.
    closed: std::sync::atomic::AtomicBool,
    /// Set once the store runs: where delivery failures are reported.
    store: OnceLock<std_mpsc::Sender<StoreMsg>>,
}

impl Outbox {
    /// `me` is this node's header, sent (with the receiver's id) on every stream.
    pub fn new(me: PeerHeader, peers: Arc<PeerDirectory>, dialer: Dialer, runtime: Handle) -> Self {
        Outbox {
            inner: Arc::new(Inner {
                me,
                peers,
                dialer,
                runtime,
                queues: Mutex::new(HashMap::new()),
                closed: Default::default(),
                store: OnceLock::new(),
            }),
        }
    }

    pub fn connect_store(&self, store: std_mpsc::Sender<StoreMsg>) {
        let _ = self.inner.store.set(store);
    }

    /// Ends every stream to the peers (shutdown): their sender tasks see
    /// their queue close and finish the stream.
    pub fn close(&self) {
        self.inner
            .closed
            .store(true, std::sync::atomic::Ordering::SeqCst);
        self.inner
            .queues
            .lock()
            .expect("outbox lock is never poisoned")
            .clear();
    }

    /// Sends one pass's messages, tagged with their range: everything for
    /// one peer goes to its sender task in one hand-over, so a pass becomes
    /// at most one batch per peer however many ranges it touched.
    pub fn send_pass(&self, messages: PassMessages) {
        if self.inner.closed.load(std::sync::atomic::Ordering::SeqCst) {
            return;
        }
        let mut by_peer: HashMap<u64, PassMessages> = HashMap::new();
        for (range_id, message) in messages {
            let to = message.to;
            if to == self.inner.me.from_node_id {
                continue;
            }
            if message.get_msg_type() == MessageType::MsgSnapshot {
                let inner = self.inner.clone();
                self.inner
                    .runtime
                    .spawn(send_snapshot(inner, range_id, message));
                continue;
            }
            by_peer.entry(to).or_default().push((range_id, message));
        }
        if by_peer.is_empty() {
            return;
        }
        let mut queues = self
            .inner
            .queues
            .lock()
            .expect("outbox lock is never poisoned");
        for (to, messages) in by_peer {
            let queue = queues.entry(to).or_insert_with(|| {
                let (sender, receiver) = mpsc::unbounded_channel();
                self.inner
                    .runtime
                    .spawn(run_peer(self.inner.clone(), to, receiver));
                sender
            });
            metrics::RAFT_MESSAGES_SENT.inc_by(messages.len() as u64);
            let _ = queue.send(messages);
        }
    }
}

impl Inner {
    fn header(&self, to: u64) -> PeerHeader {
        PeerHeader {
            to_node_id: to,
            ..self.me.clone()
        }
    }

    fn report(&self, msg: StoreMsg) {
        if let Some(store) = self.store.get() {
            let _ = store.send(msg);
        }
    }

    async fn client(&self, to: u64) -> Option<RaftTransportClient<Channel>> {
        let address = self.peers.address(to)?;
        let channel = self.dialer.connect(&address).await.ok()?;
        Some(
            RaftTransportClient::new(channel)
                .max_decoding_message_size(usize::MAX)
                .max_encoding_message_size(usize::MAX),
        )
    }

    /// A peer refused us because it knows our node id under another store
    /// id: this node's data directory was wiped. Going on would let it vote
    /// twice in a term, so the store stops (and the node with it).
    fn refused_identity(&self, status: &tonic::Status) {
        if status.code() == Code::FailedPrecondition {
            tracing::error!("{}", status.message());
            self.report(StoreMsg::Fatal(Error::IdentityChanged {
                node_id: self.me.from_node_id,
            }));
        }
    }
}

/// Keeps one stream open to a peer and feeds it everything queued, batched.
async fn run_peer(inner: Arc<Inner>, to: u64, mut queue: mpsc::UnboundedReceiver<PassMessages>) {
    loop {
        let Some(first) = queue.recv().await else {
            return;
        };
        let Some(mut client) = inner.client(to).await else {
            drop_undeliverable(&inner, to, first, &mut queue);
            tokio::time::sleep(RECONNECT_BACKOFF).await;
            continue;
        };
        let (stream_tx, stream_rx) = mpsc::channel::<RaftBatch>(64);
        let call = tokio::spawn(async move { client.stream(ReceiverStream::new(stream_rx)).await });
        let mut pending = Some(first);
        let mut header_sent = false;
        loop {
            let next = match pending.take() {
                Some(messages) => messages,
                None => match queue.recv().await {
                    Some(messages) => messages,
                    None => return,
                },
            };
            let mut messages: Vec<RaftEnvelope> = next.into_iter().map(envelope).collect();
            while messages.len() < MAX_MESSAGES_PER_BATCH {
                match queue.try_recv() {
                    Ok(more) => messages.extend(more.into_iter().map(envelope)),
                    Err(_) => break,
                }
            }
            metrics::RAFT_BATCHES_SENT.inc();
            let header = (!header_sent).then(|| inner.header(to));
            header_sent = true;
            if stream_tx
                .send(RaftBatch { header, messages })
                .await
                .is_err()
            {
                break;
            }
        }
        if let Ok(Err(status)) = call.await {
            inner.refused_identity(&status);
            tracing::debug!(to, %status, "raft stream closed");
        }
        tokio::time::sleep(RECONNECT_BACKOFF).await;
    }
}

fn envelope((range_id, message): (u64, Message)) -> RaftEnvelope {
    RaftEnvelope {
        range_id,
        message: message
            .write_to_bytes()
            .expect("encoding an in-memory raft message cannot fail"),
    }
}

/// The peer cannot be reached: drop what is queued for it and tell each
/// affected range once, so Raft probes instead of streaming into the void.
fn drop_undeliverable(
    inner: &Inner,
    to: u64,
    first: PassMessages,
    queue: &mut mpsc::UnboundedReceiver<PassMessages>,
) {
    let mut ranges: BTreeSet<u64> = first.iter().map(|(range_id, _)| *range_id).collect();
    while let Ok(messages) = queue.try_recv() {
        ranges.extend(messages.iter().map(|(range_id, _)| *range_id));
    }
    for range_id in ranges {
        inner.report(StoreMsg::Unreachable { range_id, to });
    }
}

async fn send_snapshot(inner: Arc<Inner>, range_id: u64, message: Message) {
    let to = message.to;
    let ok = match stream_snapshot(&inner, range_id, &message).await {
        Ok(()) => {
            metrics::RAFT_SNAPSHOTS_SENT.inc();
            true
        }
        Err(err) => {
            tracing::warn!(range_id, to, error = %err, "snapshot transfer failed; Raft will retry");
            false
        }
    };
    inner.report(StoreMsg::SnapshotSent { range_id, to, ok });
}

async fn stream_snapshot(inner: &Inner, range_id: u64, message: &Message) -> Result<(), String> {
    let to = message.to;
    let bytes = message.write_to_bytes().map_err(|err| err.to_string())?;
    let mut client = inner
        .client(to)
        .await
        .ok_or_else(|| format!("node {to} is unreachable"))?;
    let header = inner.header(to);
    let chunks: Vec<SnapshotChunk> = bytes
        .chunks(SNAPSHOT_CHUNK_BYTES)
        .enumerate()
        .map(|(i, data)| SnapshotChunk {
            header: (i == 0).then(|| header.clone()),
            range_id,
            data: data.to_vec(),
        })
        .collect();
    tracing::info!(
        range_id,
        to,
        bytes = bytes.len(),
        chunks = chunks.len(),
        "sending snapshot"
    );
    client
        .snapshot(tokio_stream::iter(chunks))
        .await
        .map_err(|status| {
            inner.refused_identity(&status);
            status.to_string()
        })?;
    Ok(())
}

impl crate::store::MessageSink for Outbox {
    fn send(&self, messages: PassMessages) {
        self.send_pass(messages);
    }
}
