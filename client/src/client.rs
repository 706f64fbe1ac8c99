use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tonic::transport::{Channel, Endpoint};
use tonic::{Request, Status};
use zdb_proto::v1::admin_client::AdminClient;
use zdb_proto::v1::kv_client::KvClient;
use zdb_proto::v1::{
    self as pb, mutation, KeyValue, NodeStatusRequest, NodeStatusResponse, ReadConsistency,
};

use crate::error::{Error, Result};
use crate::retry::{backoff, classify, Next};

/// Longest a single attempt may take before the client tries elsewhere.
const MAX_ATTEMPT: Duration = Duration::from_secs(3);

#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// `HOST:PORT` of any nodes of the cluster; the client finds the leader.
    pub endpoints: Vec<String>,
    /// Deadline for one call, retries included.
    pub timeout: Duration,
    pub connect_timeout: Duration,
}

impl ClientConfig {
    pub fn new(endpoints: impl IntoIterator<Item = impl Into<String>>) -> Self {
        ClientConfig {
            endpoints: endpoints.into_iter().map(Into::into).collect(),
            timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(1),
        }
    }
}

/// How fresh a read must be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Consistency {
    /// Sees every write acknowledged before the read started.
    #[default]
    Linearizable,
    /// Served by any node, possibly behind.
    Stale,
}

impl Consistency {
    fn to_proto(self) -> i32 {
        match self {
            Consistency::Linearizable => ReadConsistency::Linearizable as i32,
            Consistency::Stale => ReadConsistency::Stale as i32,
        }
    }
}

/// One write of a [`Client::batch_write`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mutation {
    Put {
        key: Vec<u8>,
        value: Vec<u8>,
        ttl_seconds: u64,
    },
    Delete {
        key: Vec<u8>,
    },
}

/// The result of a compare-and-swap.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CasOutcome {
    pub succeeded: bool,
    /// What the key held when compared (None: absent).
    pub previous: Option<Vec<u8>>,
}

/// A zdb client. Cheap to clone; clones share connections and the leader hint.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

struct Inner {
    config: ClientConfig,
    channels: Mutex<HashMap<String, Channel>>,
    leader: Mutex<Option<String>>,
    next_endpoint: AtomicUsize,
}

impl Client {
    pub fn new(config: ClientConfig) -> Result<Self> {
        if config.endpoints.is_empty() {
            return Err(Error::NoEndpoints);
        }
        let client = Client {
            inner: Arc::new(Inner {
                config,
                channels: Mutex::new(HashMap::new()),
                leader: Mutex::new(None),
                next_endpoint: AtomicUsize::new(0),
            }),
        };
        for endpoint in &client.inner.config.endpoints {
            client.channel(endpoint)?;
        }
        Ok(client)
    }

    /// A client for comma-separated `HOST:PORT` endpoints.
    pub fn connect(endpoints: &str) -> Result<Self> {
        let endpoints = endpoints
            .split(',')
            .map(str::trim)
            .filter(|e| !e.is_empty());
        Client::new(ClientConfig::new(endpoints))
    }

    pub fn endpoints(&self) -> &[String] {
        &self.inner.config.endpoints
    }

    fn channel(&self, endpoint: &str) -> Result<Channel> {
        let mut channels = self
            .inner
            .channels
            .lock()
            .expect("channel pool lock is never poisoned");
        if let Some(channel) = channels.get(endpoint) {
            return Ok(channel.clone());
        }
        let bad = |reason: String| Error::BadEndpoint {
            endpoint: endpoint.to_owned(),
            reason,
        };
        let channel = Endpoint::from_shared(format!("http://{endpoint}"))
            .map_err(|err| bad(err.to_string()))?
            .connect_timeout(self.inner.config.connect_timeout)
            .tcp_nodelay(true)
            .http2_keep_alive_interval(Duration::from_secs(10))
            .keep_alive_while_idle(true)
            .connect_lazy();
        channels.insert(endpoint.to_owned(), channel.clone());
        Ok(channel)
    }

    fn pick_endpoint(&self) -> String {
        if let Some(leader) = self
            .inner
            .leader
            .lock()
            .expect("leader lock is never poisoned")
            .clone()
        {
            return leader;
        }
        let endpoints = &self.inner.config.endpoints;
        let i = self.inner.next_endpoint.fetch_add(1, Ordering::Relaxed);
        endpoints[i % endpoints.len()].clone()
    }

    fn set_leader(&self, leader: Option<String>) {
        *self
            .inner
            .leader
            .lock()
            .expect("leader lock is never poisoned") = leader;
    }

    /// Runs `attempt` against the leader until it succeeds, fails for good,
    /// or the deadline passes. Only `idempotent` calls are retried after an
    /// ambiguous failure.
    async fn call<T, F, Fut>(&self, idempotent: bool, mut attempt: F) -> Result<T>
    where
        F: FnMut(KvClient<Channel>, Duration) -> Fut,
        Fut: Future<Output = std::result::Result<tonic::Response<T>, Status>>,
    {
        let deadline = Instant::now() + self.inner.config.timeout;
        let mut attempts = 0u32;
        let mut last = String::from("no attempt made");
        loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                return Err(Error::Timeout { attempts, last });
            }
            let endpoint = self.pick_endpoint();
            let client = KvClient::new(self.channel(&endpoint)?)
                .max_decoding_message_size(usize::MAX)
                .max_encoding_message_size(usize::MAX);
            attempts += 1;
            let status = match attempt(client, remaining.min(MAX_ATTEMPT)).await {
                Ok(response) => return Ok(response.into_inner()),
                Err(status) => status,
            };
            last = format!("{endpoint}: {}: {}", status.code(), status.message());
            match classify(&status) {
                Next::Redirect(leader) => {
                    let known = leader == endpoint;
                    self.set_leader(Some(leader));
                    if known {
                        // The node names itself yet refused: it is stepping down.
                        self.set_leader(None);
                        tokio::time::sleep(backoff(attempts).min(remaining)).await;
                    }
                    continue;
                }
                Next::Retry => {}
                Next::Ambiguous if idempotent => {}
                Next::Ambiguous => return Err(Error::OutcomeUnknown(last)),
                Next::Fail => return Err(Error::from_final_status(status)),
            }
            self.set_leader(None);
            tokio::time::sleep(backoff(attempts).min(remaining)).await;
        }
    }

    pub async fn get(&self, key: impl Into<Vec<u8>>) -> Result<Option<Vec<u8>>> {
        self.get_with(key, Consistency::Linearizable).await
    }

    pub async fn get_with(
        &self,
        key: impl Into<Vec<u8>>,
        consistency: Consistency,
    ) -> Result<Option<Vec<u8>>> {
        let request = pb::GetRequest {
            key: key.into(),
            consistency: consistency.to_proto(),
            ..Default::default()
        };
        let response = self
            .call(true, |mut kv, timeout| {
                let request = timed(request.clone(), timeout);
                async move { kv.get(request).await }
            })
            .await?;
        Ok(response.found.then_some(response.value))
    }

    pub async fn put(&self, key: impl Into<Vec<u8>>, value: impl Into<Vec<u8>>) -> Result<()> {
        self.put_with_ttl(key, value, 0).await
    }

    /// Writes a key that disappears after `ttl_seconds` (0: never).
    pub async fn put_with_ttl(
        &self,
        key: impl Into<Vec<u8>>,
        value: impl Into<Vec<u8>>,
        ttl_seconds: u64,
    ) -> Result<()> {
        let request = pb::PutRequest {
            key: key.into(),
            value: value.into(),
            ttl_seconds,
            ..Default::default()
        };
        self.call(true, |mut kv, timeout| {
            let request = timed(request.clone(), timeout);
            async move { kv.put(request).await }
        })
        .await?;
        Ok(())
    }

    pub async fn delete(&self, key: impl Into<Vec<u8>>) -> Result<()> {
        let request = pb::DeleteRequest {
            key: key.into(),
            ..Default::default()
        };
        self.call(true, |mut kv, timeout| {
            let request = timed(request.clone(), timeout);
            async move { kv.delete(request).await }
        })
        .await?;
        Ok(())
    }

    /// Keys in `[start, end)` (empty `end`: no bound), at most `limit`
    /// (0: all), in order or reversed. Each page the node returns is a
    /// consistent read; a scan of several pages is not one snapshot.
    pub async fn scan(
        &self,
        start: impl Into<Vec<u8>>,
        end: impl Into<Vec<u8>>,
        limit: usize,
        reverse: bool,
    ) -> Result<Vec<KeyValue>> {
        let mut start = start.into();
        let mut end = end.into();
        let mut pairs: Vec<KeyValue> = Vec::new();
        loop {
            let want = if limit == 0 {
                0
            } else {
                (limit - pairs.len()) as u32
            };
            let request = pb::ScanRequest {
                start_key: start.clone(),
                end_key: end.clone(),
                limit: want,
                reverse,
                ..Default::default()
            };
            let page = self
                .call(true, |mut kv, timeout| {
                    let request = timed(request.clone(), timeout);
                    async move { kv.scan(request).await }
                })
                .await?;
            let more = page.more;
            pairs.extend(page.pairs);
            if !more || (limit != 0 && pairs.len() >= limit) {
                return Ok(pairs);
            }
            let Some(last) = pairs.last() else {
                return Ok(pairs);
            };
            if reverse {
                end = last.key.clone();
            } else {
                start = [last.key.as_slice(), &[0]].concat();
            }
        }
    }

    /// The keys that exist among `keys`, read at one point in time.
    pub async fn batch_get(&self, keys: Vec<Vec<u8>>) -> Result<Vec<KeyValue>> {
        let request = pb::BatchGetRequest {
            keys,
            ..Default::default()
        };
        let response = self
            .call(true, |mut kv, timeout| {
                let request = timed(request.clone(), timeout);
                async move { kv.batch_get(request).await }
            })
            .await?;
        Ok(response.pairs)
    }

    /// Applies all mutations or none.
    pub async fn batch_write(&self, mutations: Vec<Mutation>) -> Result<()> {
        let request = pb::BatchWriteRequest {
            mutations: mutations.into_iter().map(to_proto_mutation).collect(),
            ..Default::default()
        };
        // Puts and deletes of fixed values: applying the batch twice is the same as once.
        self.call(true, |mut kv, timeout| {
            let request = timed(request.clone(), timeout);
            async move { kv.batch_write(request).await }
        })
        .await?;
        Ok(())
    }

    /// Sets `key` to `new_value` if it holds `expected` (None: if absent).
    pub async fn compare_and_swap(
        &self,
        key: impl Into<Vec<u8>>,
        expected: Option<&[u8]>,
        new_value: impl Into<Vec<u8>>,
    ) -> Result<CasOutcome> {
        let request = pb::CompareAndSwapRequest {
            key: key.into(),
            expected_value: expected.unwrap_or_default().to_vec(),
            expect_absent: expected.is_none(),
            new_value: new_value.into(),
            ..Default::default()
        };
        let response = self
            .call(false, |mut kv, timeout| {
                let request = timed(request.clone(), timeout);
                async move { kv.compare_and_swap(request).await }
            })
            .await?;
        Ok(CasOutcome {
            succeeded: response.succeeded,
            previous: response.found.then_some(response.current_value),
        })
    }

    /// Status of the node at `endpoint` (one of the configured ones or any other).
    pub async fn node_status(&self, endpoint: &str) -> Result<NodeStatusResponse> {
        let mut admin = AdminClient::new(self.channel(endpoint)?);
        let request = timed(
            NodeStatusRequest {},
            self.inner.config.timeout.min(MAX_ATTEMPT),
        );
        admin
            .node_status(request)
            .await
            .map(tonic::Response::into_inner)
            .map_err(Error::from_final_status)
    }
}

fn timed<T>(message: T, timeout: Duration) -> Request<T> {
    let mut request = Request::new(message);
    request.set_timeout(timeout);
    request
}

fn to_proto_mutation(mutation: Mutation) -> pb::Mutation {
    let op = match mutation {
        Mutation::Put {
            key,
            value,
            ttl_seconds,
        } => mutation::Op::Put(pb::PutOp {
            key,
            value,
            ttl_seconds,
        }),
        Mutation::Delete { key } => mutation::Op::Delete(pb::DeleteOp { key }),
    };
    pb::Mutation { op: Some(op) }
}
