//! Security primitives shared by nodes, clients, zdbctl and the operator:
//!
//! - [`tls`]: rustls server and client configurations built from PEM files
//!   and rebuilt when the files change (certificate rotation without a
//!   restart), the identity a peer's certificate names, and a connector
//!   that dials TLS for tonic channels.
//! - [`pki`]: a cluster CA and the node and client certificates it issues.
//! - [`password`]: argon2 password hashes.
//! - [`token`]: short-lived signed tokens a password login returns.
//! - [`encryption`]: AES-256-GCM data keys wrapped by a master key, for
//!   encryption at rest.

pub mod encryption;
pub mod error;
pub mod password;
pub mod pki;
pub mod tls;
pub mod token;

pub use error::{Error, Result};
