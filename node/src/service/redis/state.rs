//! What the node's Redis connections share: client ids and the client
//! list (CLIENT LIST, INFO clients), SCAN cursors, and the start time.
//! Counters live in `crate::metrics`, so INFO and Prometheus agree.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rand::Rng;

/// A connected client, as CLIENT LIST and CLIENT INFO show it.
#[derive(Debug, Clone)]
pub struct ClientInfo {
    pub id: u64,
    pub peer: SocketAddr,
    pub name: String,
    pub connected_at: Instant,
    pub last_command: String,
    pub protocol: u8,
    pub user: String,
}

impl ClientInfo {
    /// One line of CLIENT LIST, in Redis's field order (the fields zdb has).
    pub fn line(&self) -> String {
        format!(
            "id={} addr={} laddr= fd=0 name={} age={} idle=0 flags=N db=0 sub=0 psub=0 ssub=0 multi=-1 qbuf=0 qbuf-free=0 argv-mem=0 multi-mem=0 rbs=0 rbp=0 obl=0 oll=0 omem=0 tot-mem=0 events=r cmd={} user={} redir=-1 resp={}",
            self.id,
            self.peer,
            self.name,
            self.connected_at.elapsed().as_secs(),
            self.last_command.to_ascii_lowercase(),
            if self.user.is_empty() { "default" } else { &self.user },
            self.protocol,
        )
    }
}

/// How long an unused SCAN cursor is kept.
const CURSOR_LIFETIME: Duration = Duration::from_secs(600);
/// At most this many cursors are kept; the oldest go first.
const MAX_CURSORS: usize = 100_000;

#[derive(Default)]
pub struct RedisState {
    next_client_id: AtomicU64,
    clients: Mutex<HashMap<u64, ClientInfo>>,
    /// SCAN cursors: Redis clients read a cursor as a number, so the key a
    /// scan stopped after is kept here under a random one.
    cursors: Mutex<HashMap<u64, (Vec<u8>, Instant)>>,
    started: Option<Instant>,
}

impl RedisState {
    pub fn new() -> Self {
        RedisState {
            started: Some(Instant::now()),
            ..Default::default()
        }
    }

    pub fn uptime(&self) -> Duration {
        self.started
            .map_or(Duration::ZERO, |started| started.elapsed())
    }

    pub fn connect(&self, peer: SocketAddr) -> ClientInfo {
        let id = self.next_client_id.fetch_add(1, Ordering::Relaxed) + 1;
        let info = ClientInfo {
            id,
            peer,
            name: String::new(),
            connected_at: Instant::now(),
            last_command: String::new(),
            protocol: 2,
            user: String::new(),
        };
        self.clients
            .lock()
            .expect("never poisoned")
            .insert(id, info.clone());
        info
    }

    pub fn update(&self, info: &ClientInfo) {
        if let Some(entry) = self
            .clients
            .lock()
            .expect("never poisoned")
            .get_mut(&info.id)
        {
            *entry = info.clone();
        }
    }

    pub fn disconnect(&self, id: u64) {
        self.clients.lock().expect("never poisoned").remove(&id);
    }

    pub fn clients(&self) -> Vec<ClientInfo> {
        let mut clients: Vec<ClientInfo> = self
            .clients
            .lock()
            .expect("never poisoned")
            .values()
            .cloned()
            .collect();
        clients.sort_by_key(|client| client.id);
        clients
    }

    /// A cursor to resume a scan after `last_key`.
    pub fn save_cursor(&self, last_key: Vec<u8>) -> u64 {
        let mut cursors = self.cursors.lock().expect("never poisoned");
        let now = Instant::now();
        cursors.retain(|_, (_, saved)| now.duration_since(*saved) < CURSOR_LIFETIME);
        if cursors.len() >= MAX_CURSORS {
            if let Some(oldest) = cursors
                .iter()
                .min_by_key(|(_, (_, saved))| *saved)
                .map(|(id, _)| *id)
            {
                cursors.remove(&oldest);
            }
        }
        let mut rng = rand::rng();
        loop {
            // Never 0: that is the start and the end of every scan.
            let id = rng.random_range(1..u64::MAX >> 11);
            if let std::collections::hash_map::Entry::Vacant(slot) = cursors.entry(id) {
                slot.insert((last_key, now));
                return id;
            }
        }
    }

    /// The key a cursor resumes after (None: unknown or expired).
    pub fn cursor(&self, id: u64) -> Option<Vec<u8>> {
        let mut cursors = self.cursors.lock().expect("never poisoned");
        let (key, saved) = cursors.get_mut(&id)?;
        *saved = Instant::now();
        Some(key.clone())
    }
}
