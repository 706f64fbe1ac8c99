use std::path::PathBuf;

/// Everything that can go wrong in this crate.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {reason}")]
    BadFile { path: PathBuf, reason: String },
    /// A file that would be written already exists and overwriting was not
    /// asked for (certificates and keys are never replaced by accident).
    #[error("{path} already exists")]
    Exists { path: PathBuf },
    #[error("TLS configuration: {0}")]
    Tls(String),
    #[error("certificate: {0}")]
    Certificate(String),
    #[error("password: {0}")]
    Password(String),
    #[error("token: {0}")]
    Token(String),
    #[error("encryption: {0}")]
    Encryption(String),
    /// The data key file was wrapped by another master key than the one given.
    #[error(
        "{path} is wrapped by master key {file_key}, but this node was given master key \
         {given}{}: start it with the master key file it was encrypted with (after a master \
         key change, pass the old one as the previous key)",
        previous.as_ref().map(|id| format!(" (previous key {id})")).unwrap_or_default()
    )]
    WrongMasterKey {
        path: PathBuf,
        file_key: String,
        given: String,
        previous: Option<String>,
    },
    /// Bytes that are not a sealed value (too short, another format).
    #[error("sealed value: {0}")]
    Sealed(String),
    #[error("sealed value names data key {id}, which the key file does not hold")]
    UnknownDataKey { id: u32 },
    /// The authentication tag does not match: the bytes were changed, or
    /// were sealed for another storage key.
    #[error("sealed value (data key {id}) fails authentication: damaged or moved")]
    Tampered { id: u32 },
}

pub type Result<T> = std::result::Result<T, Error>;
