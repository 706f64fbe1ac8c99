//! The fate of each transaction, kept in its primary key's range under the
//! primary key and start timestamp: written when the primary commits or is
//! rolled back, so that a late prewrite or a second resolver finds it.

use prost::Message as _;
use zdb_proto::v1::StoredTxnRecord;

use crate::engine::{ReadView, CF_TXN};
use crate::error::{Error, Result};
use crate::mvcc::keys;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fate {
    Committed(u64),
    RolledBack,
}

pub fn record_key(primary: &[u8], start_ts: u64) -> Vec<u8> {
    keys::version_key(primary, start_ts)
}

pub fn encode(fate: Fate) -> Vec<u8> {
    match fate {
        Fate::Committed(commit_ts) => StoredTxnRecord {
            committed: true,
            commit_ts,
        },
        Fate::RolledBack => StoredTxnRecord::default(),
    }
    .encode_to_vec()
}

pub fn decode(raw: &[u8]) -> Result<Fate> {
    let record =
        StoredTxnRecord::decode(raw).map_err(|err| Error::corruption("transaction record", err))?;
    Ok(if record.committed {
        Fate::Committed(record.commit_ts)
    } else {
        Fate::RolledBack
    })
}

pub fn read(view: &impl ReadView, primary: &[u8], start_ts: u64) -> Result<Option<Fate>> {
    view.get(CF_TXN, &record_key(primary, start_ts))?
        .map(|raw| decode(&raw))
        .transpose()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fates_round_trip() {
        for fate in [Fate::Committed(7), Fate::RolledBack] {
            assert_eq!(decode(&encode(fate)).unwrap(), fate);
        }
    }
}
