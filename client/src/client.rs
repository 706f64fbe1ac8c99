use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::transport::{Credentials, Dialer, TlsConfig, Transport};
use tonic::{Request, Status};
use zdb_proto::v1::kv_client::KvClient;
use zdb_proto::v1::{self as pb, mutation, KeyValue, ReadConsistency, RequestHeader};

use crate::error::{Error, Result};
use crate::retry::{backoff, classify, Next};
use crate::routing::{CachedRange, RangeCache};

/// Whether puts, deletes and batch writes are sent again after an attempt
/// whose outcome is unknown (a lost reply, a timeout). They are not: a write
/// is not idempotent once other clients write the same key. If the first
/// attempt applied and another client then wrote the key, the retry would
/// apply the old value a second time and bring it back (A, B, A), which no
/// single point in time can explain. The caller gets
/// [`Error::OutcomeUnknown`] and decides (found by zdb-chaos).
const RETRY_WRITES: bool = false;

/// Scans ask for at most this many keys per page (nodes allow 10,000).
const SCAN_PAGE: usize = 1000;

/// Longest a single attempt may take before the client tries elsewhere.
pub(crate) const MAX_ATTEMPT: Duration = Duration::from_secs(3);

#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// `HOST:PORT` of any nodes of the cluster; the client finds the leader.
    pub endpoints: Vec<String>,
    /// Deadline for one call, retries included.
    pub timeout: Duration,
    pub connect_timeout: Duration,
    /// Connect over TLS, trusting this CA (and logging in with the client
    /// certificate, if it names one).
    pub tls: Option<TlsConfig>,
    /// Log in with a user name and password (needs TLS).
    pub credentials: Option<Credentials>,
}

impl ClientConfig {
    pub fn new(endpoints: impl IntoIterator<Item = impl Into<String>>) -> Self {
        ClientConfig {
            endpoints: endpoints.into_iter().map(Into::into).collect(),
            timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(1),
            tls: None,
            credentials: None,
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
    pub(crate) fn to_proto(self) -> i32 {
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

/// A zdb client. Cheap to clone; clones share connections and the range cache.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

struct Inner {
    config: ClientConfig,
    dialer: Dialer,
    channels: Mutex<HashMap<String, Transport>>,
    cache: Mutex<RangeCache>,
    next_endpoint: AtomicUsize,
}

/// Deadline and attempt count of one call, across its retries.
pub(crate) struct Attempts {
    deadline: Instant,
    pub(crate) count: u32,
    pub(crate) last: String,
}

impl Attempts {
    pub(crate) fn remaining(&self) -> Result<Duration> {
        let remaining = self.deadline.saturating_duration_since(Instant::now());
        if remaining.is_zero() {
            return Err(Error::Timeout {
                attempts: self.count,
                last: self.last.clone(),
            });
        }
        Ok(remaining)
    }

    pub(crate) async fn back_off(&self) {
        let wait = backoff(self.count).min(self.deadline.saturating_duration_since(Instant::now()));
        tokio::time::sleep(wait).await;
    }
}

/// The outcome of one attempt against one range.
enum Step<T> {
    Done(T),
    /// The route changed or the node was busy: resolve the target again.
    Again,
}

impl Client {
    pub fn new(config: ClientConfig) -> Result<Self> {
        if config.endpoints.is_empty() {
            return Err(Error::NoEndpoints);
        }
        let dialer = Dialer::new(
            config.tls.as_ref(),
            config.credentials.clone(),
            config.connect_timeout,
        )?;
        let client = Client {
            inner: Arc::new(Inner {
                dialer,
                config,
                channels: Mutex::new(HashMap::new()),
                cache: Mutex::new(RangeCache::default()),
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

    pub(crate) fn timeout(&self) -> Duration {
        self.inner.config.timeout
    }

    pub fn endpoints(&self) -> &[String] {
        &self.inner.config.endpoints
    }

    pub(crate) fn channel(&self, endpoint: &str) -> Result<Transport> {
        let mut channels = self
            .inner
            .channels
            .lock()
            .expect("channel pool lock is never poisoned");
        if let Some(channel) = channels.get(endpoint) {
            return Ok(channel.clone());
        }
        let channel = self.inner.dialer.dial(endpoint)?;
        channels.insert(endpoint.to_owned(), channel.clone());
        Ok(channel)
    }

    pub(crate) fn kv(&self, endpoint: &str) -> Result<KvClient<Transport>> {
        Ok(KvClient::new(self.channel(endpoint)?)
            .max_decoding_message_size(usize::MAX)
            .max_encoding_message_size(usize::MAX))
    }

    /// The next node to try when no better one is known: the configured
    /// endpoints and every node learned from the cluster since, in turn (the
    /// configured ones may all be gone by now).
    pub(crate) fn any_endpoint(&self) -> String {
        let mut endpoints = self.inner.config.endpoints.clone();
        endpoints.extend(self.cache().addresses());
        endpoints.sort();
        endpoints.dedup();
        let i = self.inner.next_endpoint.fetch_add(1, Ordering::Relaxed);
        endpoints[i % endpoints.len()].clone()
    }

    pub(crate) fn cache(&self) -> std::sync::MutexGuard<'_, RangeCache> {
        self.inner
            .cache
            .lock()
            .expect("range cache lock is never poisoned")
    }

    pub(crate) fn attempts(&self) -> Attempts {
        Attempts {
            deadline: Instant::now() + self.inner.config.timeout,
            count: 0,
            last: String::from("no attempt made"),
        }
    }

    /// The cached range holding `key`, asking the meta range when unknown.
    pub(crate) async fn route(&self, key: &[u8], attempts: &mut Attempts) -> Result<CachedRange> {
        loop {
            let hit = self.cache().lookup(key);
            if let Some(cached) = hit {
                return Ok(cached);
            }
            let remaining = attempts.remaining()?;
            let endpoint = self.any_endpoint();
            attempts.count += 1;
            let request = timed(
                pb::LocateRequest {
                    key: key.to_vec(),
                    limit: 64,
                    ..Default::default()
                },
                remaining.min(MAX_ATTEMPT),
            );
            match self.kv(&endpoint)?.locate(request).await {
                Ok(response) => self.cache().absorb(response.into_inner()),
                Err(status) => {
                    attempts.last = format!(
                        "{endpoint}: locate: {}: {}",
                        status.code(),
                        status.message()
                    );
                    if classify(&status) == Next::Fail {
                        return Err(Error::from_final_status(status));
                    }
                    attempts.back_off().await;
                }
            }
        }
    }

    /// Where to send a request for `cached`: its leader if known, otherwise
    /// its replicas in turn, otherwise any endpoint.
    pub(crate) fn target_node(&self, cached: &CachedRange, attempt: u32) -> String {
        let cache = self.cache();
        if let Some(address) = cached.leader.and_then(|leader| cache.address(leader)) {
            return address;
        }
        let replicas = &cached.range.replicas;
        if !replicas.is_empty() {
            let replica = &replicas[attempt as usize % replicas.len()];
            if let Some(address) = cache.address(replica.node_id) {
                return address;
            }
        }
        drop(cache);
        self.any_endpoint()
    }

    /// One attempt against the range `cached`; typed errors update the cache.
    async fn send<T, F, Fut>(
        &self,
        cached: &CachedRange,
        idempotent: bool,
        attempts: &mut Attempts,
        attempt: &mut F,
    ) -> Result<Step<T>>
    where
        F: FnMut(KvClient<Transport>, RequestHeader, Duration) -> Fut,
        Fut: Future<Output = std::result::Result<tonic::Response<T>, Status>>,
    {
        let remaining = attempts.remaining()?;
        let endpoint = self.target_node(cached, attempts.count);
        attempts.count += 1;
        let header = RequestHeader {
            range_id: cached.range.range_id,
            epoch: cached.range.epoch,
        };
        let status = match attempt(self.kv(&endpoint)?, header, remaining.min(MAX_ATTEMPT)).await {
            Ok(response) => return Ok(Step::Done(response.into_inner())),
            Err(status) => status,
        };
        attempts.last = format!("{endpoint}: {}: {}", status.code(), status.message());
        let range_id = cached.range.range_id;
        match classify(&status) {
            Next::NotLeader { leader_id, address } => {
                let known = {
                    let mut cache = self.cache();
                    cache.learn_node(leader_id, address);
                    let known =
                        leader_id != 0 && cache.address(leader_id).is_some_and(|a| a != endpoint);
                    cache.set_leader(range_id, known.then_some(leader_id));
                    known
                };
                if !known {
                    attempts.back_off().await;
                }
            }
            Next::Refresh(current) => {
                let mut cache = self.cache();
                for range in current {
                    cache.insert(range, None);
                }
            }
            Next::Relocate => {
                self.cache().invalidate(range_id);
                attempts.back_off().await;
            }
            Next::Retry => {
                self.cache().set_leader(range_id, None);
                attempts.back_off().await;
            }
            Next::Ambiguous if idempotent => {
                self.cache().set_leader(range_id, None);
                attempts.back_off().await;
            }
            Next::Ambiguous => {
                // The node may be gone: the next call looks for the leader
                // again instead of failing on the same node at once.
                self.cache().set_leader(range_id, None);
                return Err(Error::OutcomeUnknown(attempts.last.clone()));
            }
            Next::Fail => return Err(Error::from_final_status(status)),
        }
        Ok(Step::Again)
    }

    /// Runs `attempt` on the range holding `key` until it succeeds, fails for
    /// good, or the deadline passes. Only `idempotent` calls are retried after
    /// an ambiguous failure.
    async fn call<T, F, Fut>(&self, key: &[u8], idempotent: bool, mut attempt: F) -> Result<T>
    where
        F: FnMut(KvClient<Transport>, RequestHeader, Duration) -> Fut,
        Fut: Future<Output = std::result::Result<tonic::Response<T>, Status>>,
    {
        let mut attempts = self.attempts();
        loop {
            let cached = self.route(key, &mut attempts).await?;
            if let Step::Done(value) = self
                .send(&cached, idempotent, &mut attempts, &mut attempt)
                .await?
            {
                return Ok(value);
            }
        }
    }

    /// The cached ranges covering `[start, end)`, in key order.
    pub(crate) async fn ranges_covering(
        &self,
        start: &[u8],
        end: &[u8],
        attempts: &mut Attempts,
    ) -> Result<Vec<CachedRange>> {
        let mut ranges = Vec::new();
        let mut key = start.to_vec();
        loop {
            let cached = self.route(&key, attempts).await?;
            let range_end = cached.range.end_key.clone();
            ranges.push(cached);
            if range_end.is_empty() || (!end.is_empty() && range_end.as_slice() >= end) {
                return Ok(ranges);
            }
            key = range_end;
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
        self.get_from(key.into(), consistency, 0).await
    }

    /// The value `key` had at timestamp `ts` (from [`Client::now`]).
    pub async fn get_at(&self, key: impl Into<Vec<u8>>, ts: u64) -> Result<Option<Vec<u8>>> {
        self.get_from(key.into(), Consistency::Linearizable, ts)
            .await
    }

    async fn get_from(
        &self,
        key: Vec<u8>,
        consistency: Consistency,
        read_ts: u64,
    ) -> Result<Option<Vec<u8>>> {
        let request = pb::GetRequest {
            key,
            consistency: consistency.to_proto(),
            read_ts,
            ..Default::default()
        };
        let response = self
            .call(&request.key.clone(), true, |mut kv, header, timeout| {
                let request = timed(
                    pb::GetRequest {
                        header: Some(header),
                        ..request.clone()
                    },
                    timeout,
                );
                async move { kv.get(request).await }
            })
            .await?;
        Ok(response.found.then_some(response.value))
    }

    /// A timestamp from the cluster's oracle, above every write acknowledged
    /// before the call: reads at it see one consistent snapshot.
    pub async fn now(&self) -> Result<u64> {
        let mut attempts = self.attempts();
        loop {
            let remaining = attempts.remaining()?;
            let endpoint = self.any_endpoint();
            attempts.count += 1;
            let request = timed(
                pb::NowRequest {
                    header: None,
                    count: 1,
                },
                remaining.min(MAX_ATTEMPT),
            );
            match self.kv(&endpoint)?.now(request).await {
                Ok(response) => return Ok(response.into_inner().timestamp),
                Err(status) => {
                    attempts.last =
                        format!("{endpoint}: now: {}: {}", status.code(), status.message());
                    if classify(&status) == Next::Fail {
                        return Err(Error::from_final_status(status));
                    }
                    attempts.back_off().await;
                }
            }
        }
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
        self.call(
            &request.key.clone(),
            RETRY_WRITES,
            |mut kv, header, timeout| {
                let request = timed(
                    pb::PutRequest {
                        header: Some(header),
                        ..request.clone()
                    },
                    timeout,
                );
                async move { kv.put(request).await }
            },
        )
        .await?;
        Ok(())
    }

    pub async fn delete(&self, key: impl Into<Vec<u8>>) -> Result<()> {
        let request = pb::DeleteRequest {
            key: key.into(),
            ..Default::default()
        };
        self.call(
            &request.key.clone(),
            RETRY_WRITES,
            |mut kv, header, timeout| {
                let request = timed(
                    pb::DeleteRequest {
                        header: Some(header),
                        ..request.clone()
                    },
                    timeout,
                );
                async move { kv.delete(request).await }
            },
        )
        .await?;
        Ok(())
    }

    /// Keys in `[start, end)` (empty `end`: no bound), at most `limit`
    /// (0: all), in order or reversed, across as many ranges as the span
    /// covers, as one snapshot: a scan that one page of one range answers
    /// reads its latest state; a longer one reads every page at one
    /// timestamp from the oracle.
    pub async fn scan(
        &self,
        start: impl Into<Vec<u8>>,
        end: impl Into<Vec<u8>>,
        limit: usize,
        reverse: bool,
    ) -> Result<Vec<KeyValue>> {
        let (start, end) = (start.into(), end.into());
        if let Some(pairs) = self.scan_pages(&start, &end, limit, reverse, 0).await? {
            return Ok(pairs);
        }
        let ts = self.now().await?;
        self.scan_at(start, end, limit, reverse, ts).await
    }

    /// As [`Client::scan`], as of timestamp `ts`.
    pub async fn scan_at(
        &self,
        start: impl Into<Vec<u8>>,
        end: impl Into<Vec<u8>>,
        limit: usize,
        reverse: bool,
        ts: u64,
    ) -> Result<Vec<KeyValue>> {
        let pages = self
            .scan_pages(&start.into(), &end.into(), limit, reverse, ts.max(1))
            .await?;
        Ok(pages.unwrap_or_default())
    }

    /// The scan's pages at `read_ts`; at 0 (the latest state), None as soon
    /// as a second page or range would be needed.
    async fn scan_pages(
        &self,
        start: &[u8],
        end: &[u8],
        limit: usize,
        reverse: bool,
        read_ts: u64,
    ) -> Result<Option<Vec<KeyValue>>> {
        let (start, end) = (start.to_vec(), end.to_vec());
        let mut attempts = self.attempts();
        let mut pairs: Vec<KeyValue> = Vec::new();
        // Forward scans move `lower` up; reverse scans move `upper` down.
        let (mut lower, mut upper) = (start.clone(), end.clone());
        loop {
            let ranges = self.ranges_covering(&lower, &upper, &mut attempts).await?;
            let cached = if reverse {
                ranges.last()
            } else {
                ranges.first()
            }
            .expect("at least one range")
            .clone();
            let range = &cached.range;
            let sub_start = lower.clone().max(range.start_key.clone());
            let sub_end = match (upper.is_empty(), range.end_key.is_empty()) {
                (true, _) => range.end_key.clone(),
                (false, true) => upper.clone(),
                (false, false) => upper.clone().min(range.end_key.clone()),
            };
            // Past one page, ask for the node's largest page (0) and go on
            // from where it ended.
            let want = match limit.saturating_sub(pairs.len()) {
                _ if limit == 0 => 0,
                left if left > SCAN_PAGE => 0,
                left => left as u32,
            };
            let request = pb::ScanRequest {
                start_key: sub_start.clone(),
                end_key: sub_end.clone(),
                limit: want,
                reverse,
                read_ts,
                ..Default::default()
            };
            let page = match self
                .send(
                    &cached,
                    true,
                    &mut attempts,
                    &mut |mut kv: KvClient<Transport>, header, timeout| {
                        let request = timed(
                            pb::ScanRequest {
                                header: Some(header),
                                ..request.clone()
                            },
                            timeout,
                        );
                        async move { kv.scan(request).await }
                    },
                )
                .await?
            {
                Step::Done(page) => page,
                Step::Again => continue,
            };
            let more = page.more;
            pairs.extend(page.pairs);
            if limit != 0 && pairs.len() >= limit {
                pairs.truncate(limit);
                return Ok(Some(pairs));
            }
            let last_key = pairs.last().map(|kv| kv.key.clone());
            if reverse {
                upper = match (more, last_key) {
                    (true, Some(key)) => key,
                    _ if range.start_key.is_empty() || range.start_key <= lower => {
                        return Ok(Some(pairs))
                    }
                    _ => range.start_key.clone(),
                };
            } else {
                lower = match (more, last_key) {
                    (true, Some(key)) => [key.as_slice(), &[0]].concat(),
                    _ if sub_end.is_empty() || (!end.is_empty() && sub_end >= end) => {
                        return Ok(Some(pairs))
                    }
                    _ => sub_end,
                };
            }
            if read_ts == 0 {
                return Ok(None);
            }
        }
    }

    /// The keys that exist among `keys`, in request order, as one snapshot:
    /// keys of one range are read at its latest state, keys of several
    /// ranges at one timestamp from the oracle.
    pub async fn batch_get(&self, keys: Vec<Vec<u8>>) -> Result<Vec<KeyValue>> {
        if let Some(pairs) = self.batch_get_from(&keys, 0).await? {
            return Ok(pairs);
        }
        let ts = self.now().await?;
        self.batch_get_at(keys, ts).await
    }

    /// The keys that existed among `keys` at timestamp `ts`, in request order.
    pub async fn batch_get_at(&self, keys: Vec<Vec<u8>>, ts: u64) -> Result<Vec<KeyValue>> {
        Ok(self
            .batch_get_from(&keys, ts.max(1))
            .await?
            .unwrap_or_default())
    }

    /// At `read_ts` 0 (the latest state), None when the keys turn out to
    /// be in more than one range.
    async fn batch_get_from(
        &self,
        keys: &[Vec<u8>],
        read_ts: u64,
    ) -> Result<Option<Vec<KeyValue>>> {
        let mut attempts = self.attempts();
        let mut found: HashMap<Vec<u8>, Vec<u8>> = HashMap::new();
        let mut pending = keys.to_vec();
        while !pending.is_empty() {
            let groups = self.group_by_range(pending, &mut attempts).await?;
            if read_ts == 0 && (groups.len() > 1 || !found.is_empty()) {
                return Ok(None);
            }
            pending = Vec::new();
            for (cached, group) in groups {
                let request = pb::BatchGetRequest {
                    keys: group.clone(),
                    read_ts,
                    ..Default::default()
                };
                let step = self
                    .send(
                        &cached,
                        true,
                        &mut attempts,
                        &mut |mut kv: KvClient<Transport>, header, timeout| {
                            let request = timed(
                                pb::BatchGetRequest {
                                    header: Some(header),
                                    ..request.clone()
                                },
                                timeout,
                            );
                            async move { kv.batch_get(request).await }
                        },
                    )
                    .await?;
                match step {
                    Step::Done(response) => {
                        found.extend(response.pairs.into_iter().map(|kv| (kv.key, kv.value)))
                    }
                    Step::Again => pending.extend(group),
                }
            }
        }
        Ok(Some(
            keys.iter()
                .filter_map(|key| {
                    found.get(key).map(|value| KeyValue {
                        value: value.clone(),
                        key: key.clone(),
                    })
                })
                .collect(),
        ))
    }

    async fn group_by_range(
        &self,
        keys: Vec<Vec<u8>>,
        attempts: &mut Attempts,
    ) -> Result<Vec<(CachedRange, Vec<Vec<u8>>)>> {
        let mut groups: Vec<(CachedRange, Vec<Vec<u8>>)> = Vec::new();
        for key in keys {
            let cached = self.route(&key, attempts).await?;
            match groups
                .iter_mut()
                .find(|(c, _)| c.range.range_id == cached.range.range_id)
            {
                Some((_, group)) => group.push(key),
                None => groups.push((cached, vec![key])),
            }
        }
        Ok(groups)
    }

    /// Applies all mutations or none: in one command when one range holds
    /// every key, as a transaction (through a node's `Txn.Atomic`) when they
    /// span ranges.
    pub async fn batch_write(&self, mutations: Vec<Mutation>) -> Result<()> {
        let original = mutations.clone();
        let mutations: Vec<pb::Mutation> = mutations.into_iter().map(to_proto_mutation).collect();
        let keys: Vec<Vec<u8>> = mutations.iter().map(mutation_key).collect();
        let mut attempts = self.attempts();
        loop {
            let groups = self.group_by_range(keys.clone(), &mut attempts).await?;
            if groups.len() > 1 {
                self.atomic(Vec::new(), original, Vec::new()).await?;
                return Ok(());
            }
            let Some((cached, _)) = groups.into_iter().next() else {
                return Err(Error::InvalidArgument("batch is empty".into()));
            };
            let request = pb::BatchWriteRequest {
                mutations: mutations.clone(),
                ..Default::default()
            };
            let step = self
                .send(
                    &cached,
                    RETRY_WRITES,
                    &mut attempts,
                    &mut |mut kv: KvClient<Transport>, header, timeout| {
                        let request = timed(
                            pb::BatchWriteRequest {
                                header: Some(header),
                                ..request.clone()
                            },
                            timeout,
                        );
                        async move { kv.batch_write(request).await }
                    },
                )
                .await?;
            if let Step::Done(_) = step {
                return Ok(());
            }
        }
    }

    /// Applies mutations range by range: each range's share is atomic, the
    /// whole is not (a failure may leave some ranges written).
    pub async fn batch_write_per_range(&self, mutations: Vec<Mutation>) -> Result<()> {
        let mut attempts = self.attempts();
        let mut groups: Vec<(u64, Vec<Mutation>)> = Vec::new();
        for mutation in mutations {
            let (Mutation::Put { key, .. } | Mutation::Delete { key }) = &mutation;
            let range_id = self.route(key, &mut attempts).await?.range.range_id;
            match groups.iter_mut().find(|(id, _)| *id == range_id) {
                Some((_, group)) => group.push(mutation),
                None => groups.push((range_id, vec![mutation])),
            }
        }
        for (_, group) in groups {
            self.batch_write(group).await?;
        }
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
            .call(&request.key.clone(), false, |mut kv, header, timeout| {
                let request = timed(
                    pb::CompareAndSwapRequest {
                        header: Some(header),
                        ..request.clone()
                    },
                    timeout,
                );
                async move { kv.compare_and_swap(request).await }
            })
            .await?;
        Ok(CasOutcome {
            succeeded: response.succeeded,
            previous: response.found.then_some(response.current_value),
        })
    }
}

pub(crate) fn timed<T>(message: T, timeout: Duration) -> Request<T> {
    let mut request = Request::new(message);
    request.set_timeout(timeout);
    request
}

fn mutation_key(mutation: &pb::Mutation) -> Vec<u8> {
    match &mutation.op {
        Some(mutation::Op::Put(put)) => put.key.clone(),
        Some(mutation::Op::Delete(delete)) => delete.key.clone(),
        None => Vec::new(),
    }
}

pub(crate) fn to_proto_mutation(mutation: Mutation) -> pb::Mutation {
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
