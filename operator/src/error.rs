//! Everything the operator can fail with.

/// An error of one reconcile, of leader election, or of the operator's setup.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),

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

    #[error("lost the leader lease {0}")]
    LostLease(String),

    #[error("cannot serve HTTP on {address}: {source}")]
    Http {
        address: String,
        source: std::io::Error,
    },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
