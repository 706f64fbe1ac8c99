//! Everything the operator can fail with.

/// An error of one reconcile, of leader election, or of the operator's setup.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),

    /// A call the API server refused, with what it was for.
    #[error("cannot {action}: {message}")]
    Refused { action: String, message: String },

    #[error("zdb admin API: {0}")]
    Admin(String),

    #[error("cannot serialize {what}: {source}")]
    Serialize {
        what: &'static str,
        source: serde_json::Error,
    },

    /// Adding or removing the finalizer failed, or the pass inside it did.
    #[error("{0}")]
    Finalizer(Box<kube::runtime::finalizer::Error<Error>>),

    #[error("the ZdbCluster has no {0}")]
    MissingObjectField(&'static str),

    /// A spec the CRD's rules should have refused (an older CRD, say).
    #[error("invalid spec: {0}")]
    InvalidSpec(String),

    /// A certificate could not be made, read or checked.
    #[error("{what}: {source}")]
    Pki {
        what: String,
        source: zdb_security::Error,
    },

    /// A Secret the cluster needs is not there.
    #[error("Secret {secret} ({purpose}) does not exist: {remedy}")]
    SecretMissing {
        secret: String,
        purpose: &'static str,
        remedy: String,
    },

    /// A Secret the cluster needs lacks keys, or holds what cannot be used.
    #[error("Secret {secret} ({purpose}): {problem}")]
    SecretInvalid {
        secret: String,
        purpose: &'static str,
        problem: String,
    },

    #[error("lost the leader lease {0}")]
    LostLease(String),

    #[error("cannot serve HTTP on {address}: {source}")]
    Http {
        address: String,
        source: std::io::Error,
    },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
