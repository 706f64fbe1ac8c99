//! Encryption at rest: AES-256-GCM data keys that seal stored values, kept
//! in a key file where each is wrapped by a master key.
//!
//! Two levels of keys, so that the master key (a Kubernetes Secret, a file
//! an operator can replace) never touches the data: it only wraps the data
//! keys. Rotating the master key rewraps a small file; rotating a data key
//! costs nothing at all (old keys stay in the ring to open what they
//! sealed, new values are sealed with the new one).
//!
//! - [`MasterKey`]: 32 random bytes, read from a file as 64 hex characters;
//!   its [`id`](MasterKey::id) is a fingerprint that is safe to show.
//! - [`KeyRing`]: the data keys and which one is current, persisted in the
//!   key file (rewritten atomically: temp file, fsync, rename, fsync of the
//!   directory). [`KeyRing::seal`] and [`KeyRing::open`] are what the
//!   storage engine calls for every value it writes and reads.
//!
//! A sealed value is `[format byte][data key id, u32 BE][12-byte nonce]
//! [ciphertext][16-byte tag]`: 33 bytes more than the plaintext. The caller
//! passes associated data (the storage key), so a sealed value copied under
//! another key no longer opens.
//!
//! Nonces are random (96 bits): unlike a counter they need no coordination
//! between threads or across restarts. The price is the birthday bound:
//! after n seals under one key two of them share a nonce with probability
//! about n²/2⁹⁷, and a repeated nonce under GCM leaks the XOR of two
//! plaintexts and lets an attacker forge tags. NIST SP 800-38D caps random
//! nonces at 2³² per key; a key here seals at most [`MAX_SEALS_PER_KEY`]
//! = 2³¹ values (collision chance below 2⁻³⁵) before the ring rotates to a
//! new key by itself. The count must survive a crash, so the key file
//! records, per key, a number of seals reserved ahead of use; after a
//! restart counting resumes at the reservation, never below what was used.
//!
//! The key file as a whole is authenticated with an HMAC under a key
//! derived from the master key: its current key, creation times and
//! reservations cannot be edited unnoticed.

use std::collections::BTreeMap;
use std::fmt;
use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aes_gcm::aead::{AeadInPlace, KeyInit};
use aes_gcm::{Aes256Gcm, Key, Nonce, Tag};
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::error::{Error, Result};

/// Bytes of a master key or a data key.
pub const KEY_LEN: usize = 32;
const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;
/// First byte of every value sealed in the layout above; another layout
/// would get another byte.
pub const SEALED_FORMAT_V1: u8 = 0xE1;
const HEADER_LEN: usize = 1 + 4 + NONCE_LEN;
/// What sealing adds to a value's size.
pub const SEALED_OVERHEAD: usize = HEADER_LEN + TAG_LEN;
/// Seals one data key may make before the ring rotates (see the module doc).
pub const MAX_SEALS_PER_KEY: u64 = 1 << 31;
/// Seals reserved in the key file at a time: one small synced file write
/// per 16M values sealed.
const RESERVATION_BLOCK: u64 = 1 << 24;
const KEY_FILE_HEADER: &str = "zdb-data-keys 1";

// ---------------------------------------------------------------------------
// Master key

/// The key that wraps the data keys. Its bytes are zeroed when dropped and
/// never printed (`Debug` shows the id only).
pub struct MasterKey {
    bytes: Zeroizing<[u8; KEY_LEN]>,
    id: String,
}

impl MasterKey {
    /// Reads a master key file: 64 hex characters (32 bytes), surrounding
    /// whitespace ignored (`openssl rand -hex 32 > master.key` makes one).
    pub fn load(path: &Path) -> Result<Self> {
        let text = Zeroizing::new(fs::read_to_string(path).map_err(|source| Error::Read {
            path: path.to_owned(),
            source,
        })?);
        MasterKey::from_hex(&text).map_err(|reason| Error::BadFile {
            path: path.to_owned(),
            reason: format!("not a master key: {reason}"),
        })
    }

    /// A key from 64 hex characters (whitespace around them ignored).
    pub fn from_hex(text: &str) -> std::result::Result<Self, String> {
        let text = text.trim();
        if text.len() != 2 * KEY_LEN {
            return Err(format!(
                "expected {} hex characters (32 random bytes), found {} characters",
                2 * KEY_LEN,
                text.chars().count()
            ));
        }
        let mut bytes = Zeroizing::new([0u8; KEY_LEN]);
        decode_hex_into(text, bytes.as_mut_slice())
            .map_err(|at| format!("character {} is not a hex digit", at + 1))?;
        Ok(MasterKey::from_bytes(*bytes))
    }

    pub fn from_bytes(bytes: [u8; KEY_LEN]) -> Self {
        let digest = Sha256::digest(bytes);
        MasterKey {
            bytes: Zeroizing::new(bytes),
            id: encode_hex(&digest[..8]),
        }
    }

    /// A new random key as 64 hex characters, the master key file's format.
    pub fn generate_hex() -> String {
        let mut bytes = Zeroizing::new([0u8; KEY_LEN]);
        rand::rng().fill_bytes(bytes.as_mut_slice());
        encode_hex(bytes.as_slice())
    }

    /// The first 8 bytes of the key's SHA-256, in hex: names the key in
    /// status output and errors without revealing it
    /// (`xxd -r -p master.key | sha256sum | cut -c1-16` computes it too).
    pub fn id(&self) -> &str {
        &self.id
    }

    fn cipher(&self) -> Aes256Gcm {
        Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(self.bytes.as_slice()))
    }

    /// The key that authenticates the key file: derived, so that the master
    /// key itself is used for one purpose only (wrapping).
    fn mac_key(&self) -> Zeroizing<[u8; 32]> {
        let mut hasher = Sha256::new();
        hasher.update(b"zdb key file mac v1\0");
        hasher.update(self.bytes.as_slice());
        Zeroizing::new(hasher.finalize().into())
    }
}

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MasterKey").field("id", &self.id).finish()
    }
}

// ---------------------------------------------------------------------------
// Key ring

/// What a node shows about its encryption: never key material.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyRingStatus {
    pub master_key_id: String,
    pub current_key_id: u32,
    /// When the current data key was made, ms since the Unix epoch.
    pub current_key_created_at_ms: u64,
    pub data_keys: usize,
}

/// One data key, with its cipher ready (the AES key schedule is computed
/// once, not per value).
struct DataKey {
    id: u32,
    created_at_ms: u64,
    cipher: Aes256Gcm,
    /// The key wrapped by the master key, as the key file stores it.
    wrapped: Vec<u8>,
    /// Seals made (or possibly made, before a restart) with this key.
    seals: AtomicU64,
    /// Seals the key file allows: `seals` may not pass it until the file
    /// records a higher reservation.
    reserved: AtomicU64,
}

struct State {
    keys: BTreeMap<u32, Arc<DataKey>>,
    current: Arc<DataKey>,
}

/// The data keys of one node. Thread-safe and cheap to share in an `Arc`:
/// sealing and opening take a read lock; rotation and reservations write
/// the key file under a mutex, then swap the state.
pub struct KeyRing {
    path: PathBuf,
    master: MasterKey,
    state: RwLock<State>,
    /// Serializes key file writes (rotations, reservations).
    persisting: Mutex<()>,
}

impl fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyRing")
            .field("path", &self.path)
            .field("status", &self.status())
            .finish()
    }
}

impl KeyRing {
    /// Opens the key file at `path`, or creates it with a first data key if
    /// there is none. A file wrapped by `previous_master` is rewrapped by
    /// `master` and rewritten (master key rotation: restart each node with
    /// the new key and the old one as previous). Any other master key is
    /// refused with both ids named.
    pub fn open_or_create(
        path: &Path,
        master: MasterKey,
        previous_master: Option<MasterKey>,
    ) -> Result<Self> {
        let text = match fs::read_to_string(path) {
            Ok(text) => text,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
                return KeyRing::create(path, master);
            }
            Err(source) => {
                return Err(Error::Read {
                    path: path.to_owned(),
                    source,
                })
            }
        };
        let file = KeyFile::parse(&text).map_err(|reason| Error::BadFile {
            path: path.to_owned(),
            reason: format!("not a zdb data key file: {reason}"),
        })?;
        let (wrapping, rewrap) = if file.master_id == master.id() {
            (&master, false)
        } else {
            match &previous_master {
                Some(previous) if file.master_id == previous.id() => (previous, true),
                _ => {
                    return Err(Error::WrongMasterKey {
                        path: path.to_owned(),
                        file_key: file.master_id,
                        given: master.id().to_owned(),
                        previous: previous_master.map(|key| key.id().to_owned()),
                    })
                }
            }
        };
        file.verify(&text, wrapping)
            .map_err(|reason| Error::BadFile {
                path: path.to_owned(),
                reason,
            })?;
        let mut keys = BTreeMap::new();
        for entry in &file.keys {
            let secret = unwrap_key(wrapping, entry.id, &entry.wrapped).map_err(|reason| {
                Error::BadFile {
                    path: path.to_owned(),
                    reason: format!("data key {}: {reason}", entry.id),
                }
            })?;
            let wrapped = if rewrap {
                wrap_key(&master, entry.id, &secret)
            } else {
                entry.wrapped.clone()
            };
            // Everything up to the reservation may have been used before
            // a crash: count from there.
            let key = DataKey::new(entry.id, entry.created_at_ms, &secret, wrapped);
            key.seals.store(entry.reserved, Ordering::Relaxed);
            key.reserved.store(entry.reserved, Ordering::Relaxed);
            keys.insert(entry.id, Arc::new(key));
        }
        let current = keys
            .get(&file.current)
            .cloned()
            .ok_or_else(|| Error::BadFile {
                path: path.to_owned(),
                reason: format!("the current data key {} is not in the file", file.current),
            })?;
        if rewrap {
            tracing::info!(
                path = %path.display(),
                from = %file.master_id,
                to = %master.id(),
                "data keys rewrapped by the new master key"
            );
        }
        let ring = KeyRing {
            path: path.to_owned(),
            master,
            state: RwLock::new(State { keys, current }),
            persisting: Mutex::new(()),
        };
        // Reserve seals for the current key now (which also writes the
        // rewrapped file): the first write after a restart does not wait.
        ring.reserve_or_rotate()?;
        Ok(ring)
    }

    fn create(path: &Path, master: MasterKey) -> Result<Self> {
        let key = Arc::new(DataKey::generate(&master, 1, now_ms()));
        key.reserved.store(RESERVATION_BLOCK, Ordering::Relaxed);
        let state = State {
            keys: BTreeMap::from([(1, key.clone())]),
            current: key,
        };
        let ring = KeyRing {
            path: path.to_owned(),
            master,
            state: RwLock::new(state),
            persisting: Mutex::new(()),
        };
        {
            let state = ring.read();
            ring.persist(&state.keys, state.current.id)?;
        }
        tracing::info!(path = %path.display(), "created the data key file");
        Ok(ring)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn master_key_id(&self) -> &str {
        self.master.id()
    }

    pub fn status(&self) -> KeyRingStatus {
        let state = self.read();
        KeyRingStatus {
            master_key_id: self.master.id().to_owned(),
            current_key_id: state.current.id,
            current_key_created_at_ms: state.current.created_at_ms,
            data_keys: state.keys.len(),
        }
    }

    /// Makes a new data key current: what is sealed from now on uses it;
    /// the older keys stay to open what they sealed.
    pub fn rotate(&self) -> Result<KeyRingStatus> {
        let _persisting = lock(&self.persisting);
        self.rotate_locked()?;
        Ok(self.status())
    }

    /// Rotates if the current data key is older than `period` at `now_ms`.
    /// Returns whether it did.
    pub fn rotate_if_older(&self, period: Duration, now_ms: u64) -> Result<bool> {
        let _persisting = lock(&self.persisting);
        let created = self.read().current.created_at_ms;
        if now_ms.saturating_sub(created) < period.as_millis() as u64 {
            return Ok(false);
        }
        self.rotate_locked()?;
        Ok(true)
    }

    /// Seals `plaintext` with the current data key; `aad` (associated data,
    /// not stored) must be given again to open it. Fails only if the key
    /// file cannot be written when a new reservation or rotation is due.
    pub fn seal(&self, plaintext: &[u8], aad: &[u8]) -> Result<Vec<u8>> {
        loop {
            {
                let state = self.read();
                let key = &state.current;
                let n = key.seals.fetch_add(1, Ordering::Relaxed);
                if n < key.reserved.load(Ordering::Acquire) {
                    return Ok(key.seal(plaintext, aad));
                }
            }
            self.reserve_or_rotate()?;
        }
    }

    /// Opens a value [`seal`](Self::seal) made, with the same `aad`.
    pub fn open(&self, sealed: &[u8], aad: &[u8]) -> Result<Vec<u8>> {
        let (format, rest) = sealed
            .split_first()
            .ok_or_else(|| Error::Sealed("empty".into()))?;
        if *format != SEALED_FORMAT_V1 {
            return Err(Error::Sealed(format!(
                "format byte {format:#04x}, expected {SEALED_FORMAT_V1:#04x} (not a sealed value?)"
            )));
        }
        if sealed.len() < SEALED_OVERHEAD {
            return Err(Error::Sealed(format!(
                "{} bytes, shorter than the {SEALED_OVERHEAD} bytes of header and tag",
                sealed.len()
            )));
        }
        let (id, rest) = rest.split_at(4);
        let id = u32::from_be_bytes(id.try_into().expect("split at 4"));
        let (nonce, rest) = rest.split_at(NONCE_LEN);
        let (ciphertext, tag) = rest.split_at(rest.len() - TAG_LEN);
        let mut plaintext = ciphertext.to_vec();
        let state = self.read();
        let key = state.keys.get(&id).ok_or(Error::UnknownDataKey { id })?;
        key.cipher
            .decrypt_in_place_detached(
                Nonce::from_slice(nonce),
                aad,
                &mut plaintext,
                Tag::from_slice(tag),
            )
            .map_err(|_| Error::Tampered { id })?;
        Ok(plaintext)
    }

    /// The id of the master key that wraps the key file at `path`, if the
    /// file is there and readable (for error messages: which key to find).
    pub fn master_key_id_of(path: &Path) -> Option<String> {
        let text = fs::read_to_string(path).ok()?;
        KeyFile::parse(&text).ok().map(|file| file.master_id)
    }

    /// The data key id a sealed value names, if it is one.
    pub fn key_id_of(sealed: &[u8]) -> Option<u32> {
        match sealed {
            [SEALED_FORMAT_V1, id @ ..] if sealed.len() >= SEALED_OVERHEAD => {
                Some(u32::from_be_bytes(id[..4].try_into().ok()?))
            }
            _ => None,
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, State> {
        // A panic while holding the lock cannot leave the state half
        // changed (it is swapped whole): ignore poisoning.
        self.state
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The current key ran out of reserved seals: reserve more in the key
    /// file, or rotate if it reached its limit.
    fn reserve_or_rotate(&self) -> Result<()> {
        let _persisting = lock(&self.persisting);
        let (key, keys) = {
            let state = self.read();
            (state.current.clone(), state.keys.clone())
        };
        let used = key.seals.load(Ordering::Relaxed);
        let reserved = key.reserved.load(Ordering::Acquire);
        if used < reserved {
            return Ok(()); // another thread reserved meanwhile
        }
        if used >= MAX_SEALS_PER_KEY {
            tracing::info!(
                key_id = key.id,
                "data key sealed its limit of values: rotating"
            );
            return self.rotate_locked();
        }
        let new_reserved = (used + RESERVATION_BLOCK).min(MAX_SEALS_PER_KEY);
        // The file records the reservation before any seal may use it.
        self.persist_with(&keys, key.id, Some((key.id, new_reserved)))?;
        key.reserved.store(new_reserved, Ordering::Release);
        Ok(())
    }

    /// Adds a new current key; the caller holds `persisting`.
    fn rotate_locked(&self) -> Result<()> {
        let mut keys = self.read().keys.clone();
        let id = keys
            .keys()
            .next_back()
            .copied()
            .unwrap_or(0)
            .checked_add(1)
            .ok_or_else(|| Error::Encryption("no data key id left".into()))?;
        let key = Arc::new(DataKey::generate(&self.master, id, now_ms()));
        key.reserved.store(RESERVATION_BLOCK, Ordering::Relaxed);
        keys.insert(id, key.clone());
        self.persist(&keys, id)?;
        let mut state = self
            .state
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        *state = State { keys, current: key };
        tracing::info!(key_id = id, path = %self.path.display(), "data key rotated");
        Ok(())
    }

    fn persist(&self, keys: &BTreeMap<u32, Arc<DataKey>>, current: u32) -> Result<()> {
        self.persist_with(keys, current, None)
    }

    /// Writes the key file; `override_reserved` replaces one key's
    /// reservation in what is written.
    fn persist_with(
        &self,
        keys: &BTreeMap<u32, Arc<DataKey>>,
        current: u32,
        override_reserved: Option<(u32, u64)>,
    ) -> Result<()> {
        let entries = keys
            .values()
            .map(|key| KeyEntry {
                id: key.id,
                created_at_ms: key.created_at_ms,
                reserved: match override_reserved {
                    Some((id, reserved)) if id == key.id => reserved,
                    _ => key.reserved.load(Ordering::Acquire),
                },
                wrapped: key.wrapped.clone(),
            })
            .collect();
        let file = KeyFile {
            master_id: self.master.id().to_owned(),
            current,
            keys: entries,
        };
        write_atomically(&self.path, file.render(&self.master).as_bytes())
    }
}

impl DataKey {
    fn new(id: u32, created_at_ms: u64, secret: &[u8; KEY_LEN], wrapped: Vec<u8>) -> Self {
        DataKey {
            id,
            created_at_ms,
            cipher: Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(secret)),
            wrapped,
            seals: AtomicU64::new(0),
            reserved: AtomicU64::new(0),
        }
    }

    fn generate(master: &MasterKey, id: u32, created_at_ms: u64) -> Self {
        let mut secret = Zeroizing::new([0u8; KEY_LEN]);
        rand::rng().fill_bytes(secret.as_mut_slice());
        let wrapped = wrap_key(master, id, &secret);
        DataKey::new(id, created_at_ms, &secret, wrapped)
    }

    fn seal(&self, plaintext: &[u8], aad: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(SEALED_OVERHEAD + plaintext.len());
        out.push(SEALED_FORMAT_V1);
        out.extend_from_slice(&self.id.to_be_bytes());
        let mut nonce = [0u8; NONCE_LEN];
        rand::rng().fill_bytes(&mut nonce);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(plaintext);
        let tag = self
            .cipher
            .encrypt_in_place_detached(Nonce::from_slice(&nonce), aad, &mut out[HEADER_LEN..])
            .expect("AES-GCM seals any value shorter than 64 GiB");
        out.extend_from_slice(&tag);
        out
    }
}

/// A data key wrapped by the master key: nonce, ciphertext, tag; the key id
/// is the associated data, so a wrapped key cannot pose as another.
fn wrap_key(master: &MasterKey, id: u32, secret: &[u8; KEY_LEN]) -> Vec<u8> {
    let mut nonce = [0u8; NONCE_LEN];
    rand::rng().fill_bytes(&mut nonce);
    let mut out = Vec::with_capacity(NONCE_LEN + KEY_LEN + TAG_LEN);
    out.extend_from_slice(&nonce);
    out.extend_from_slice(secret);
    let tag = master
        .cipher()
        .encrypt_in_place_detached(
            Nonce::from_slice(&nonce),
            &id.to_be_bytes(),
            &mut out[NONCE_LEN..],
        )
        .expect("AES-GCM wraps 32 bytes");
    out.extend_from_slice(&tag);
    out
}

fn unwrap_key(
    master: &MasterKey,
    id: u32,
    wrapped: &[u8],
) -> std::result::Result<Zeroizing<[u8; KEY_LEN]>, String> {
    if wrapped.len() != NONCE_LEN + KEY_LEN + TAG_LEN {
        return Err(format!("wrapped key of {} bytes", wrapped.len()));
    }
    let (nonce, rest) = wrapped.split_at(NONCE_LEN);
    let (ciphertext, tag) = rest.split_at(KEY_LEN);
    let mut secret = Zeroizing::new([0u8; KEY_LEN]);
    secret.copy_from_slice(ciphertext);
    master
        .cipher()
        .decrypt_in_place_detached(
            Nonce::from_slice(nonce),
            &id.to_be_bytes(),
            secret.as_mut_slice(),
            Tag::from_slice(tag),
        )
        .map_err(|_| "does not unwrap with the master key (damaged file?)".to_string())?;
    Ok(secret)
}

// ---------------------------------------------------------------------------
// Key file

/// The key file, one record per line:
///
/// ```text
/// zdb-data-keys 1
/// master <master key id>
/// current <data key id>
/// key <id> <created ms> <reserved seals> <wrapped key, hex>
/// mac <HMAC-SHA256 of every line above, hex>
/// ```
struct KeyFile {
    master_id: String,
    current: u32,
    keys: Vec<KeyEntry>,
}

struct KeyEntry {
    id: u32,
    created_at_ms: u64,
    reserved: u64,
    wrapped: Vec<u8>,
}

type HmacSha256 = Hmac<Sha256>;

impl KeyFile {
    fn render(&self, master: &MasterKey) -> String {
        let mut text = format!(
            "{KEY_FILE_HEADER}\nmaster {}\ncurrent {}\n",
            self.master_id, self.current
        );
        for key in &self.keys {
            text.push_str(&format!(
                "key {} {} {} {}\n",
                key.id,
                key.created_at_ms,
                key.reserved,
                encode_hex(&key.wrapped)
            ));
        }
        let mac = mac_of(master, text.as_bytes());
        text.push_str(&format!("mac {}\n", encode_hex(&mac)));
        text
    }

    /// Parses the file; the MAC is checked by [`verify`](Self::verify) once
    /// the master key it names is known.
    fn parse(text: &str) -> std::result::Result<KeyFile, String> {
        let mut lines = text.lines();
        if lines.next() != Some(KEY_FILE_HEADER) {
            return Err(format!("the first line is not {KEY_FILE_HEADER:?}"));
        }
        let mut master_id = None;
        let mut current = None;
        let mut keys = Vec::new();
        for (number, line) in lines.enumerate() {
            let number = number + 2;
            let fields: Vec<&str> = line.split_whitespace().collect();
            let bad = |what: &str| format!("line {number}: {what}");
            match fields.as_slice() {
                ["master", id] => master_id = Some(id.to_string()),
                ["current", id] => current = Some(id.parse().map_err(|_| bad("bad key id"))?),
                ["key", id, created, reserved, wrapped] => keys.push(KeyEntry {
                    id: id.parse().map_err(|_| bad("bad key id"))?,
                    created_at_ms: created.parse().map_err(|_| bad("bad creation time"))?,
                    reserved: reserved.parse().map_err(|_| bad("bad seal count"))?,
                    wrapped: decode_hex(wrapped).map_err(|_| bad("wrapped key is not hex"))?,
                }),
                ["mac", _] => {}
                [] => {}
                _ => return Err(bad("unknown record")),
            }
        }
        Ok(KeyFile {
            master_id: master_id.ok_or("no master line")?,
            current: current.ok_or("no current line")?,
            keys,
        })
    }

    /// Checks the MAC line against every line before it.
    fn verify(&self, text: &str, master: &MasterKey) -> std::result::Result<(), String> {
        let at = text
            .rfind("\nmac ")
            .ok_or("no mac line: the file is incomplete")?;
        let (covered, rest) = text.split_at(at + 1);
        let mac = rest
            .trim()
            .strip_prefix("mac ")
            .and_then(|hex| decode_hex(hex.trim()).ok())
            .ok_or("bad mac line")?;
        let mut check = file_mac(master);
        check.update(covered.as_bytes());
        check
            .verify_slice(&mac)
            .map_err(|_| "the key file was changed outside zdb (its MAC does not match)".into())
    }
}

fn file_mac(master: &MasterKey) -> HmacSha256 {
    <HmacSha256 as Mac>::new_from_slice(master.mac_key().as_slice())
        .expect("HMAC takes any key length")
}

fn mac_of(master: &MasterKey, bytes: &[u8]) -> Vec<u8> {
    let mut mac = file_mac(master);
    mac.update(bytes);
    mac.finalize().into_bytes().to_vec()
}

/// Replaces `path` with `bytes` so that a crash leaves the old file or the
/// new one, never a mix: temp file, fsync, rename, fsync of the directory.
fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    let write_error = |source| Error::Write {
        path: path.to_owned(),
        source,
    };
    let mut temp_name = path.as_os_str().to_owned();
    temp_name.push(".tmp");
    let temp = PathBuf::from(temp_name);
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&temp)
        .map_err(write_error)?;
    file.write_all(bytes).map_err(write_error)?;
    file.sync_all().map_err(write_error)?;
    drop(file);
    fs::rename(&temp, path).map_err(write_error)?;
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    fs::File::open(dir)
        .and_then(|dir| dir.sync_all())
        .map_err(write_error)
}

// ---------------------------------------------------------------------------
// Small helpers

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|since| since.as_millis() as u64)
        .unwrap_or(0)
}

fn lock(mutex: &Mutex<()>) -> std::sync::MutexGuard<'_, ()> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn encode_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        out.push(DIGITS[(byte >> 4) as usize] as char);
        out.push(DIGITS[(byte & 0xf) as usize] as char);
    }
    out
}

/// Decodes hex into `out` (exactly twice its length); Err: the position of
/// the first character that is not a hex digit.
fn decode_hex_into(text: &str, out: &mut [u8]) -> std::result::Result<(), usize> {
    let digits = text.as_bytes();
    if digits.len() != out.len() * 2 {
        return Err(digits.len().min(out.len() * 2));
    }
    let value = |at: usize| match digits[at] {
        digit @ b'0'..=b'9' => Ok(digit - b'0'),
        digit @ b'a'..=b'f' => Ok(digit - b'a' + 10),
        digit @ b'A'..=b'F' => Ok(digit - b'A' + 10),
        _ => Err(at),
    };
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = (value(2 * i)? << 4) | value(2 * i + 1)?;
    }
    Ok(())
}

fn decode_hex(text: &str) -> std::result::Result<Vec<u8>, usize> {
    if !text.len().is_multiple_of(2) {
        return Err(text.len());
    }
    let mut out = vec![0u8; text.len() / 2];
    decode_hex_into(text, &mut out)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key_file(dir: &tempfile::TempDir) -> PathBuf {
        dir.path().join("data-keys")
    }

    fn master() -> MasterKey {
        MasterKey::from_hex(&MasterKey::generate_hex()).unwrap()
    }

    fn same(key: &MasterKey) -> MasterKey {
        MasterKey::from_bytes(*key.bytes)
    }

    #[test]
    fn a_master_key_file_is_64_hex_characters() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("master.key");
        let hex = MasterKey::generate_hex();
        fs::write(&path, format!("  {}\n", hex.to_uppercase())).unwrap();
        let key = MasterKey::load(&path).unwrap();
        assert_eq!(key.id().len(), 16);
        assert_eq!(key.id(), MasterKey::from_hex(&hex).unwrap().id());
        assert!(
            !format!("{key:?}").contains(&hex[..16]),
            "Debug hides the key"
        );

        fs::write(&path, &hex[..62]).unwrap();
        let err = MasterKey::load(&path).unwrap_err();
        assert!(matches!(err, Error::BadFile { .. }), "{err}");
        assert!(
            err.to_string().contains("expected 64 hex characters"),
            "{err}"
        );
        fs::write(&path, format!("{}zz", &hex[..62])).unwrap();
        let err = MasterKey::load(&path).unwrap_err().to_string();
        assert!(err.contains("character 63 is not a hex digit"), "{err}");
        let err = MasterKey::load(&dir.path().join("missing")).unwrap_err();
        assert!(matches!(err, Error::Read { .. }), "{err}");
    }

    #[test]
    fn the_master_key_id_is_the_start_of_its_sha256() {
        let key = MasterKey::from_bytes([0u8; 32]);
        // sha256 of 32 zero bytes: 66687aadf862bd776c8fc18b8e9f8e20...
        assert_eq!(key.id(), "66687aadf862bd77");
    }

    #[test]
    fn sealed_values_open_and_hide_the_plaintext() {
        let dir = tempfile::tempdir().unwrap();
        let ring = KeyRing::open_or_create(&key_file(&dir), master(), None).unwrap();
        let plaintext = b"the secret value";
        let sealed = ring.seal(plaintext, b"key").unwrap();
        assert_eq!(sealed.len(), plaintext.len() + SEALED_OVERHEAD);
        assert!(!sealed.windows(6).any(|w| w == b"secret"));
        assert_eq!(ring.open(&sealed, b"key").unwrap(), plaintext);
        assert_ne!(ring.seal(plaintext, b"key").unwrap(), sealed, "fresh nonce");
        assert_eq!(KeyRing::key_id_of(&sealed), Some(1));
        assert_eq!(ring.open(&ring.seal(b"", b"").unwrap(), b"").unwrap(), b"");
    }

    #[test]
    fn tampered_or_moved_values_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let ring = KeyRing::open_or_create(&key_file(&dir), master(), None).unwrap();
        let sealed = ring.seal(b"value", b"key").unwrap();
        for at in [0, 1, 5, HEADER_LEN, sealed.len() - 1] {
            let mut bad = sealed.clone();
            bad[at] ^= 0x01;
            assert!(ring.open(&bad, b"key").is_err(), "flipped byte {at}");
        }
        let mut flipped = sealed.clone();
        flipped[HEADER_LEN] ^= 1;
        assert!(matches!(
            ring.open(&flipped, b"key"),
            Err(Error::Tampered { id: 1 })
        ));
        assert!(matches!(
            ring.open(&sealed, b"another key"),
            Err(Error::Tampered { .. })
        ));
        let mut unknown = sealed.clone();
        unknown[1..5].copy_from_slice(&9u32.to_be_bytes());
        assert!(matches!(
            ring.open(&unknown, b"key"),
            Err(Error::UnknownDataKey { id: 9 })
        ));
        assert!(matches!(
            ring.open(&sealed[..20], b"key"),
            Err(Error::Sealed(_))
        ));
        assert!(matches!(ring.open(b"", b"key"), Err(Error::Sealed(_))));
        assert!(matches!(
            ring.open(b"\x01plain value, not sealed at all", b"key"),
            Err(Error::Sealed(_))
        ));
    }

    #[test]
    fn a_reopened_ring_opens_what_it_sealed() {
        let dir = tempfile::tempdir().unwrap();
        let master = master();
        let ring = KeyRing::open_or_create(&key_file(&dir), same(&master), None).unwrap();
        let sealed = ring.seal(b"value", b"k").unwrap();
        let status = ring.status();
        drop(ring);
        let ring = KeyRing::open_or_create(&key_file(&dir), master, None).unwrap();
        assert_eq!(ring.status(), status);
        assert_eq!(ring.open(&sealed, b"k").unwrap(), b"value");
        let text = fs::read_to_string(key_file(&dir)).unwrap();
        assert!(text.starts_with(KEY_FILE_HEADER), "{text}");
        assert!(!dir.path().join("data-keys.tmp").exists());
    }

    #[test]
    fn a_wrong_master_key_is_refused_naming_both_keys() {
        let dir = tempfile::tempdir().unwrap();
        let right = master();
        let right_id = right.id().to_owned();
        drop(KeyRing::open_or_create(&key_file(&dir), right, None).unwrap());
        let wrong = master();
        let wrong_id = wrong.id().to_owned();
        let err = KeyRing::open_or_create(&key_file(&dir), wrong, None).unwrap_err();
        assert!(matches!(err, Error::WrongMasterKey { .. }), "{err}");
        let message = err.to_string();
        assert!(
            message.contains(&right_id) && message.contains(&wrong_id),
            "{message}"
        );
    }

    #[test]
    fn the_previous_master_key_lets_the_file_be_rewrapped() {
        let dir = tempfile::tempdir().unwrap();
        let old = master();
        let ring = KeyRing::open_or_create(&key_file(&dir), same(&old), None).unwrap();
        let sealed = ring.seal(b"value", b"k").unwrap();
        drop(ring);

        let new = master();
        let ring = KeyRing::open_or_create(&key_file(&dir), same(&new), Some(same(&old))).unwrap();
        assert_eq!(ring.master_key_id(), new.id());
        assert_eq!(ring.open(&sealed, b"k").unwrap(), b"value");
        drop(ring);
        // The file is the new key's now: the old one alone no longer opens
        // it, the new one alone does, and giving both again is harmless.
        assert!(matches!(
            KeyRing::open_or_create(&key_file(&dir), same(&old), None),
            Err(Error::WrongMasterKey { .. })
        ));
        let ring = KeyRing::open_or_create(&key_file(&dir), same(&new), None).unwrap();
        assert_eq!(ring.open(&sealed, b"k").unwrap(), b"value");
        drop(ring);
        let ring = KeyRing::open_or_create(&key_file(&dir), new, Some(old)).unwrap();
        assert_eq!(ring.open(&sealed, b"k").unwrap(), b"value");
    }

    #[test]
    fn rotation_keeps_old_values_readable() {
        let dir = tempfile::tempdir().unwrap();
        let master = master();
        let ring = KeyRing::open_or_create(&key_file(&dir), same(&master), None).unwrap();
        let old = ring.seal(b"old", b"k").unwrap();
        let status = ring.rotate().unwrap();
        assert_eq!(status.current_key_id, 2);
        assert_eq!(status.data_keys, 2);
        let new = ring.seal(b"new", b"k").unwrap();
        assert_eq!(KeyRing::key_id_of(&new), Some(2));
        assert_eq!(ring.open(&old, b"k").unwrap(), b"old");
        drop(ring);
        let ring = KeyRing::open_or_create(&key_file(&dir), master, None).unwrap();
        assert_eq!(ring.status().current_key_id, 2);
        assert_eq!(ring.open(&old, b"k").unwrap(), b"old");
        assert_eq!(ring.open(&new, b"k").unwrap(), b"new");
    }

    #[test]
    fn rotation_by_age() {
        let dir = tempfile::tempdir().unwrap();
        let ring = KeyRing::open_or_create(&key_file(&dir), master(), None).unwrap();
        let created = ring.status().current_key_created_at_ms;
        let day = Duration::from_secs(86_400);
        assert!(!ring.rotate_if_older(day, created + 1000).unwrap());
        assert!(ring
            .rotate_if_older(day, created + day.as_millis() as u64)
            .unwrap());
        assert_eq!(ring.status().current_key_id, 2);
    }

    #[test]
    fn a_key_rotates_after_its_seal_limit() {
        let dir = tempfile::tempdir().unwrap();
        let ring = KeyRing::open_or_create(&key_file(&dir), master(), None).unwrap();
        {
            let state = ring.read();
            state
                .current
                .seals
                .store(MAX_SEALS_PER_KEY - 1, Ordering::Relaxed);
            state
                .current
                .reserved
                .store(MAX_SEALS_PER_KEY, Ordering::Relaxed);
        }
        let last = ring.seal(b"a", b"").unwrap();
        let first = ring.seal(b"b", b"").unwrap();
        assert_eq!(KeyRing::key_id_of(&last), Some(1));
        assert_eq!(KeyRing::key_id_of(&first), Some(2));
        assert_eq!(ring.open(&last, b"").unwrap(), b"a");
    }

    #[test]
    fn seals_counted_before_a_crash_are_never_counted_again() {
        let dir = tempfile::tempdir().unwrap();
        let master = master();
        let ring = KeyRing::open_or_create(&key_file(&dir), same(&master), None).unwrap();
        // Use up the first reservation: the ring reserves another block in
        // the file before sealing past it.
        ring.read()
            .current
            .seals
            .store(RESERVATION_BLOCK, Ordering::Relaxed);
        ring.seal(b"x", b"").unwrap();
        let used = ring.read().current.seals.load(Ordering::Relaxed);
        // A crash now (no clean shutdown exists): the reopened ring counts
        // from the reservation in the file, above everything used.
        drop(ring);
        let ring = KeyRing::open_or_create(&key_file(&dir), master, None).unwrap();
        let state = ring.read();
        assert!(state.current.seals.load(Ordering::Relaxed) >= used);
        assert!(state.current.reserved.load(Ordering::Relaxed) > used);
        assert_eq!(state.current.id, 1);
    }

    #[test]
    fn an_edited_key_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let master = master();
        let ring = KeyRing::open_or_create(&key_file(&dir), same(&master), None).unwrap();
        ring.rotate().unwrap();
        drop(ring);
        let text = fs::read_to_string(key_file(&dir)).unwrap();
        fs::write(key_file(&dir), text.replace("current 2", "current 1")).unwrap();
        let err = KeyRing::open_or_create(&key_file(&dir), same(&master), None).unwrap_err();
        assert!(err.to_string().contains("MAC"), "{err}");
        fs::write(key_file(&dir), "something else").unwrap();
        let err = KeyRing::open_or_create(&key_file(&dir), master, None).unwrap_err();
        assert!(matches!(err, Error::BadFile { .. }), "{err}");
    }

    #[test]
    fn threads_seal_and_open_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let ring = Arc::new(KeyRing::open_or_create(&key_file(&dir), master(), None).unwrap());
        let handles: Vec<_> = (0..4)
            .map(|t| {
                let ring = ring.clone();
                std::thread::spawn(move || {
                    for i in 0..200 {
                        let value = format!("{t}-{i}");
                        let sealed = ring.seal(value.as_bytes(), b"k").unwrap();
                        if i == 100 && t == 0 {
                            ring.rotate().unwrap();
                        }
                        assert_eq!(ring.open(&sealed, b"k").unwrap(), value.as_bytes());
                    }
                })
            })
            .collect();
        for handle in handles {
            handle.join().unwrap();
        }
        assert_eq!(ring.status().data_keys, 2);
    }

    #[test]
    fn hex_round_trips() {
        let bytes: Vec<u8> = (0..=255).collect();
        assert_eq!(decode_hex(&encode_hex(&bytes)).unwrap(), bytes);
        assert_eq!(decode_hex("0"), Err(1));
        assert_eq!(decode_hex("0g"), Err(1));
    }
}
