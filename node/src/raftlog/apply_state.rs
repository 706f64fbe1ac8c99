use protobuf::Message as _;
use raft::eraftpb::ConfState;

use crate::error::{Error, Result};

/// What a range has applied and what it has dropped from its log.
/// Written in the same batch as the data it describes.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ApplyState {
    pub applied_index: u64,
    /// Last index removed from the log (by compaction or a snapshot).
    pub truncated_index: u64,
    pub truncated_term: u64,
    /// Membership as of `applied_index`.
    pub conf_state: ConfState,
}

impl ApplyState {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(64);
        out.extend_from_slice(&self.applied_index.to_be_bytes());
        out.extend_from_slice(&self.truncated_index.to_be_bytes());
        out.extend_from_slice(&self.truncated_term.to_be_bytes());
        out.extend_from_slice(
            &self
                .conf_state
                .write_to_bytes()
                .expect("encoding a ConfState cannot fail"),
        );
        out
    }

    pub fn decode(raw: &[u8]) -> Result<Self> {
        if raw.len() < 24 {
            return Err(Error::corruption(
                "apply state",
                format!("{} bytes", raw.len()),
            ));
        }
        let word =
            |i: usize| u64::from_be_bytes(raw[i * 8..i * 8 + 8].try_into().expect("8 bytes"));
        let conf_state = ConfState::parse_from_bytes(&raw[24..])
            .map_err(|err| Error::corruption("apply state conf state", err))?;
        Ok(ApplyState {
            applied_index: word(0),
            truncated_index: word(1),
            truncated_term: word(2),
            conf_state,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let state = ApplyState {
            applied_index: 9,
            truncated_index: 5,
            truncated_term: 2,
            conf_state: ConfState::from((vec![1, 2, 3], vec![4])),
        };
        assert_eq!(ApplyState::decode(&state.encode()).unwrap(), state);
        assert!(ApplyState::decode(b"short").is_err());
    }
}
