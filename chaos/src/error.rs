/// Everything that can go wrong while running a chaos test (not the
/// verdicts: a failed check is a result, not an error).
#[derive(Debug, thiserror::Error)]
pub enum ChaosError {
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),

    #[error("zdb client: {0}")]
    Client(#[from] zdb_client::Error),

    #[error("zdb-node binary not found: {0}")]
    MissingBinary(String),

    #[error("timed out waiting for {0}")]
    Timeout(String),

    #[error("{0} stopped")]
    Stopped(&'static str),

    #[error("invalid setup: {0}")]
    Config(String),
}

pub type Result<T, E = ChaosError> = std::result::Result<T, E>;
