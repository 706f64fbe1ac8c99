//! Short-lived signed tokens, returned by a username/password login (like
//! etcd's `Authenticate`) so that a client proves its identity on later
//! requests without sending the password again and without the server
//! running argon2 on every request.
//!
//! A token is `base64url(claims) "." base64url(HMAC-SHA256(key, claims))`,
//! unpadded; the claims are packed as a version byte, `expires_at_ms` and
//! `generation` (u64 big-endian each), then the user name in UTF-8. The
//! `generation` is the user's credential generation at login: the server
//! bumps it when the user's password or roles change, and refuses tokens
//! carrying an older one.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::{Error, Result};

type HmacSha256 = Hmac<Sha256>;

/// The first byte of the encoded claims, so the format can change later.
const VERSION: u8 = 1;
/// Version byte plus two u64.
const HEADER_LEN: usize = 1 + 8 + 8;
const MAC_LEN: usize = 32;
/// Longer tokens are refused before decoding anything.
const MAX_TOKEN_LEN: usize = 4096;

/// The HMAC-SHA256 secret tokens are signed with. Every node of a cluster
/// must hold the same one to accept each other's tokens.
#[derive(Clone, PartialEq, Eq)]
pub struct TokenKey([u8; 32]);

impl TokenKey {
    /// A new random key (from the thread-local CSPRNG, seeded by the OS).
    pub fn generate() -> Self {
        TokenKey(rand::random())
    }

    /// The key from its 32 bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        let key: [u8; 32] = bytes
            .try_into()
            .map_err(|_| Error::Token(format!("a token key is 32 bytes, not {}", bytes.len())))?;
        Ok(TokenKey(key))
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    fn mac(&self) -> HmacSha256 {
        // HMAC accepts keys of any length, so this cannot fail.
        <HmacSha256 as Mac>::new_from_slice(&self.0).expect("HMAC takes any key length")
    }
}

impl std::fmt::Debug for TokenKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenKey(<redacted>)")
    }
}

/// What a token asserts: `user` logged in, until `expires_at_ms` (Unix
/// milliseconds), with credential generation `generation`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Claims {
    pub user: String,
    pub expires_at_ms: u64,
    pub generation: u64,
}

/// Why a token was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("malformed token")]
    Malformed,
    #[error("token signature does not match")]
    BadSignature,
    #[error("token expired")]
    Expired,
}

/// A token asserting `claims`, signed with `key`.
pub fn issue(key: &TokenKey, claims: &Claims) -> String {
    let payload = encode(claims);
    let mut mac = key.mac();
    mac.update(&payload);
    let tag = mac.finalize().into_bytes();
    format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(&payload),
        URL_SAFE_NO_PAD.encode(tag)
    )
}

/// The claims of `token` if `key` signed it and it has not expired at
/// `now_ms` (Unix milliseconds; a token is expired from `expires_at_ms` on).
/// The signature is checked (in constant time) before the claims are read.
pub fn verify(key: &TokenKey, token: &str, now_ms: u64) -> std::result::Result<Claims, TokenError> {
    if token.len() > MAX_TOKEN_LEN {
        return Err(TokenError::Malformed);
    }
    let (payload, tag) = token.split_once('.').ok_or(TokenError::Malformed)?;
    let payload = URL_SAFE_NO_PAD
        .decode(payload)
        .map_err(|_| TokenError::Malformed)?;
    let tag = URL_SAFE_NO_PAD
        .decode(tag)
        .map_err(|_| TokenError::Malformed)?;
    if tag.len() != MAC_LEN || payload.len() < HEADER_LEN || payload[0] != VERSION {
        return Err(TokenError::Malformed);
    }
    let mut mac = key.mac();
    mac.update(&payload);
    mac.verify_slice(&tag)
        .map_err(|_| TokenError::BadSignature)?;
    let claims = decode(&payload).ok_or(TokenError::Malformed)?;
    if now_ms >= claims.expires_at_ms {
        return Err(TokenError::Expired);
    }
    Ok(claims)
}

fn encode(claims: &Claims) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_LEN + claims.user.len());
    out.push(VERSION);
    out.extend_from_slice(&claims.expires_at_ms.to_be_bytes());
    out.extend_from_slice(&claims.generation.to_be_bytes());
    out.extend_from_slice(claims.user.as_bytes());
    out
}

fn decode(payload: &[u8]) -> Option<Claims> {
    let (&version, rest) = payload.split_first()?;
    if version != VERSION {
        return None;
    }
    let (expires, rest) = rest.split_first_chunk::<8>()?;
    let (generation, user) = rest.split_first_chunk::<8>()?;
    Some(Claims {
        user: String::from_utf8(user.to_vec()).ok()?,
        expires_at_ms: u64::from_be_bytes(*expires),
        generation: u64::from_be_bytes(*generation),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims() -> Claims {
        Claims {
            user: "alice".into(),
            expires_at_ms: 2_000,
            generation: 7,
        }
    }

    #[test]
    fn round_trip() {
        let key = TokenKey::generate();
        let token = issue(&key, &claims());
        assert!(!token.contains(['+', '/', '=']), "{token}");
        assert_eq!(verify(&key, &token, 1_999), Ok(claims()));
    }

    #[test]
    fn expired() {
        let key = TokenKey::generate();
        let token = issue(&key, &claims());
        assert_eq!(verify(&key, &token, 2_000), Err(TokenError::Expired));
        assert_eq!(verify(&key, &token, u64::MAX), Err(TokenError::Expired));
    }

    #[test]
    fn tampered_user_is_bad_signature() {
        let key = TokenKey::generate();
        let token = issue(&key, &claims());
        let (_, tag) = token.split_once('.').unwrap();
        let forged = Claims {
            user: "root".into(),
            ..claims()
        };
        let forged_payload = URL_SAFE_NO_PAD.encode(encode(&forged));
        let forged = format!("{forged_payload}.{tag}");
        assert_eq!(verify(&key, &forged, 0), Err(TokenError::BadSignature));
    }

    #[test]
    fn other_key_is_bad_signature() {
        let token = issue(&TokenKey::generate(), &claims());
        assert_eq!(
            verify(&TokenKey::generate(), &token, 0),
            Err(TokenError::BadSignature)
        );
    }

    #[test]
    fn garbage_is_malformed() {
        let key = TokenKey::generate();
        for token in ["", ".", "abc", "a.b.c", "!!!.???", "AAAA.AAAA"] {
            assert_eq!(
                verify(&key, token, 0),
                Err(TokenError::Malformed),
                "{token:?}"
            );
        }
        let long = "A".repeat(MAX_TOKEN_LEN + 1);
        assert_eq!(verify(&key, &long, 0), Err(TokenError::Malformed));
    }

    #[test]
    fn key_from_bytes() {
        let key = TokenKey::generate();
        assert_eq!(TokenKey::from_bytes(key.as_bytes()).unwrap(), key);
        assert!(TokenKey::from_bytes(&[0; 31]).is_err());
        assert_eq!(format!("{key:?}"), "TokenKey(<redacted>)");
    }
}
