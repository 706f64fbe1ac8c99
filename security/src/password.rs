//! Password hashes for username/password logins: argon2id with argon2's
//! default (OWASP-recommended) cost, stored as PHC strings
//! (`$argon2id$v=19$m=...,t=...,p=...$salt$hash`), which carry their own
//! parameters so that the cost can be raised later without breaking
//! existing hashes.
//!
//! Hashing and verifying cost tens of milliseconds of CPU on purpose: call
//! them off the async executor (`spawn_blocking`).

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;

use crate::{Error, Result};

/// Salt length in bytes (argon2's recommendation).
const SALT_LEN: usize = 16;

/// The argon2id PHC string of `password`, with a random salt.
pub fn hash(password: &str) -> Result<String> {
    let salt: [u8; SALT_LEN] = rand::random();
    hash_with_salt(password, &salt)
}

/// The argon2id PHC string of `password` with the given salt (8 to 48
/// bytes): deterministic, for tests and fixtures. Use [`hash`] otherwise.
pub fn hash_with_salt(password: &str, salt: &[u8]) -> Result<String> {
    if password.is_empty() {
        return Err(Error::Password("the password is empty".into()));
    }
    let salt =
        SaltString::encode_b64(salt).map_err(|err| Error::Password(format!("bad salt: {err}")))?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|hash| hash.to_string())
        .map_err(|err| Error::Password(err.to_string()))
}

/// Whether `password` matches the PHC string `phc` (false as well if `phc`
/// is not a valid hash). The comparison is constant-time (argon2's).
pub fn verify(password: &str, phc: &str) -> bool {
    let Ok(parsed) = PasswordHash::new(phc) else {
        return false;
    };
    Argon2::default()
        .verify_password(password.as_bytes(), &parsed)
        .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_then_verify() {
        let phc = hash("correct horse").unwrap();
        assert!(phc.starts_with("$argon2id$"), "{phc}");
        assert!(verify("correct horse", &phc));
        assert!(!verify("correct horsf", &phc));
        assert!(!verify("", &phc));
    }

    #[test]
    fn salts_are_random() {
        assert_ne!(hash("pw").unwrap(), hash("pw").unwrap());
    }

    #[test]
    fn fixed_salt_is_deterministic() {
        let salt = b"0123456789abcdef";
        let phc = hash_with_salt("pw", salt).unwrap();
        assert_eq!(phc, hash_with_salt("pw", salt).unwrap());
        assert!(verify("pw", &phc));
    }

    #[test]
    fn empty_password_refused() {
        assert!(matches!(hash(""), Err(Error::Password(_))));
    }

    #[test]
    fn garbage_hash_never_verifies() {
        assert!(!verify("pw", ""));
        assert!(!verify("pw", "not a phc string"));
        assert!(!verify("pw", "$argon2id$v=19$m=19456,t=2,p=1$bad$bad"));
    }
}
