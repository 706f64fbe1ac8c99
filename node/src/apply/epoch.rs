//! Which part of a range's epoch each kind of command must match when it
//! applies, and which part it bumps: the one table the apply delegate, the
//! proposers and the tests share (after TiKV's `admin_cmd_epoch_lookup`).
//!
//! `version` moves when the range's span changes (a split), `conf_ver` when
//! its members change. A command touching user keys only cares that the span
//! it was routed by still holds: a membership change in between does not
//! make it wrong. A split or a membership change was decided on the range as
//! it was, so it checks both.

use zdb_proto::v1::{command, Command, CommandHeader, RangeEpoch};

/// What a replicated command is, as far as epochs are concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommandKind {
    /// Puts and deletes of user keys (Put, Delete, BatchWrite).
    Write,
    CompareAndSwap,
    /// A read-modify-write of one key (increments, conditional sets, ...).
    Update,
    /// Tombstones for every key of a span.
    DeleteRange,
    /// Removal of expired keys, proposed by the leader's TTL sweep, and of
    /// keys a cache range's leader evicts.
    Expire,
    /// A transaction's prewrite, locks, commit, rollback or keep-alive on
    /// the range's keys.
    Txn,
    Split,
    /// A membership change proposed by an admin call.
    ChangeMembership,
    /// The entry Raft appends by itself to leave a joint configuration.
    LeaveJoint,
    /// The meta range's system keyspace (routing table, registry, id
    /// counters): it lives outside every range's span, so no split or
    /// membership change can make such a command land in the wrong place.
    System,
}

/// One row of the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EpochRule {
    pub checks_version: bool,
    pub checks_conf_ver: bool,
    pub bumps_version: bool,
    pub bumps_conf_ver: bool,
}

impl CommandKind {
    pub fn of(command: &Command) -> Option<CommandKind> {
        Some(match command.kind.as_ref()? {
            command::Kind::Write(_) => CommandKind::Write,
            command::Kind::Cas(_) => CommandKind::CompareAndSwap,
            command::Kind::Update(_) => CommandKind::Update,
            command::Kind::DeleteRange(_) => CommandKind::DeleteRange,
            command::Kind::Expire(_) => CommandKind::Expire,
            command::Kind::Split(_) => CommandKind::Split,
            command::Kind::TxnPrewrite(_)
            | command::Kind::TxnLock(_)
            | command::Kind::TxnCommit(_)
            | command::Kind::TxnRollback(_)
            | command::Kind::TxnKeepAlive(_) => CommandKind::Txn,
            command::Kind::MetaUpdate(_)
            | command::Kind::AllocateRangeId(_)
            | command::Kind::RegisterNode(_)
            | command::Kind::SetNodeState(_)
            | command::Kind::SetNodeZone(_)
            | command::Kind::ExtendOracleWindow(_)
            | command::Kind::SetGcSafePoint(_)
            | command::Kind::SetGcLifeTime(_)
            | command::Kind::Security(_)
            | command::Kind::SetCachePolicy(_) => CommandKind::System,
            command::Kind::Evict(_) => CommandKind::Expire,
        })
    }

    pub fn rule(self) -> EpochRule {
        let rule = |checks_version, checks_conf_ver, bumps_version, bumps_conf_ver| EpochRule {
            checks_version,
            checks_conf_ver,
            bumps_version,
            bumps_conf_ver,
        };
        match self {
            CommandKind::Write
            | CommandKind::CompareAndSwap
            | CommandKind::Update
            | CommandKind::DeleteRange
            | CommandKind::Expire
            | CommandKind::Txn => rule(true, false, false, false),
            CommandKind::Split => rule(true, true, true, false),
            CommandKind::ChangeMembership => rule(true, true, false, true),
            CommandKind::LeaveJoint => rule(false, false, false, true),
            CommandKind::System => rule(false, false, false, false),
        }
    }

    /// Whether a command of this kind, proposed under `header`, may apply to
    /// the range `range_id` at epoch `current`. A command that checks any
    /// part of the epoch and carries no header (or another range's) is
    /// refused: it cannot prove where it was routed.
    pub fn admits(
        self,
        header: Option<&CommandHeader>,
        range_id: u64,
        current: Option<&RangeEpoch>,
    ) -> bool {
        let rule = self.rule();
        if !rule.checks_version && !rule.checks_conf_ver {
            return true;
        }
        let Some(header) = header.filter(|header| header.range_id == range_id) else {
            return false;
        };
        let proposed = header.epoch.unwrap_or_default();
        let current = current.copied().unwrap_or_default();
        (!rule.checks_version || proposed.version == current.version)
            && (!rule.checks_conf_ver || proposed.conf_ver == current.conf_ver)
    }
}

/// The epoch after a command of `kind` applied.
pub fn bumped(kind: CommandKind, epoch: Option<RangeEpoch>) -> RangeEpoch {
    let rule = kind.rule();
    let mut epoch = epoch.unwrap_or_default();
    epoch.version += rule.bumps_version as u64;
    epoch.conf_ver += rule.bumps_conf_ver as u64;
    epoch
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(range_id: u64, conf_ver: u64, version: u64) -> CommandHeader {
        CommandHeader {
            range_id,
            epoch: Some(RangeEpoch { conf_ver, version }),
        }
    }

    const CURRENT: RangeEpoch = RangeEpoch {
        conf_ver: 3,
        version: 5,
    };

    #[test]
    fn writes_survive_membership_changes_but_not_splits() {
        let write = CommandKind::Write;
        assert!(write.admits(Some(&header(7, 3, 5)), 7, Some(&CURRENT)));
        assert!(write.admits(Some(&header(7, 2, 5)), 7, Some(&CURRENT)));
        assert!(!write.admits(Some(&header(7, 3, 4)), 7, Some(&CURRENT)));
        assert!(!write.admits(Some(&header(8, 3, 5)), 7, Some(&CURRENT)));
        assert!(!write.admits(None, 7, Some(&CURRENT)));
    }

    #[test]
    fn splits_and_membership_changes_check_both_parts() {
        for kind in [CommandKind::Split, CommandKind::ChangeMembership] {
            assert!(kind.admits(Some(&header(7, 3, 5)), 7, Some(&CURRENT)));
            assert!(!kind.admits(Some(&header(7, 2, 5)), 7, Some(&CURRENT)));
            assert!(!kind.admits(Some(&header(7, 3, 4)), 7, Some(&CURRENT)));
        }
    }

    #[test]
    fn system_commands_and_leaving_joint_check_nothing() {
        for kind in [CommandKind::System, CommandKind::LeaveJoint] {
            assert!(kind.admits(None, 1, Some(&CURRENT)));
        }
    }

    #[test]
    fn each_kind_bumps_what_the_table_says() {
        assert_eq!(
            bumped(CommandKind::Split, Some(CURRENT)),
            RangeEpoch {
                conf_ver: 3,
                version: 6
            }
        );
        assert_eq!(
            bumped(CommandKind::ChangeMembership, Some(CURRENT)),
            RangeEpoch {
                conf_ver: 4,
                version: 5
            }
        );
        assert_eq!(bumped(CommandKind::Write, Some(CURRENT)), CURRENT);
    }
}
