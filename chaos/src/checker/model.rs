//! The sequential specification of one register (one key): what each
//! operation does to the value and what it must return.

use std::collections::HashMap;

use crate::history::{RegisterOp, RegisterReply, Value};

/// A register's value, interned: 0 is "absent", others index [`Values`].
pub type State = u32;
pub const ABSENT: State = 0;

/// Interns values so that states are small and cheap to hash.
#[derive(Default)]
pub struct Values {
    ids: HashMap<Value, State>,
}

impl Values {
    pub fn id(&mut self, value: &Option<Value>) -> State {
        match value {
            None => ABSENT,
            Some(bytes) => {
                let next = self.ids.len() as State + 1;
                *self.ids.entry(bytes.clone()).or_insert(next)
            }
        }
    }
}

/// An operation ready for checking: values interned, reply None when the
/// outcome is unknown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    Get {
        observed: State,
    },
    Put {
        value: State,
    },
    Delete,
    Cas {
        expected: State,
        new: State,
        /// (succeeded, previous) when known.
        reply: Option<(bool, State)>,
    },
}

impl Step {
    /// None when the operation cannot be checked (a read whose result is not
    /// known constrains nothing).
    pub fn new(
        op: &RegisterOp,
        reply: Option<&RegisterReply>,
        values: &mut Values,
    ) -> Option<Step> {
        Some(match (op, reply) {
            (RegisterOp::Get, Some(RegisterReply::Read(observed))) => Step::Get {
                observed: values.id(observed),
            },
            (RegisterOp::Get, _) => return None,
            (RegisterOp::Put(value), _) => Step::Put {
                value: values.id(&Some(value.clone())),
            },
            (RegisterOp::Delete, _) => Step::Delete,
            (RegisterOp::Cas { expected, new }, reply) => Step::Cas {
                expected: values.id(expected),
                new: values.id(&Some(new.clone())),
                reply: match reply {
                    Some(RegisterReply::Cas {
                        succeeded,
                        previous,
                    }) => Some((*succeeded, values.id(previous))),
                    _ => None,
                },
            },
        })
    }

    /// The value this step leaves when it takes effect (None for a read).
    pub fn written(self) -> Option<State> {
        match self {
            Step::Get { .. } => None,
            Step::Put { value } => Some(value),
            Step::Delete => Some(ABSENT),
            Step::Cas { new, .. } => Some(new),
        }
    }

    /// The values whose presence this step's outcome depends on or reports.
    pub fn seen(self) -> impl Iterator<Item = State> {
        let (first, second) = match self {
            Step::Get { observed } => (Some(observed), None),
            Step::Put { .. } | Step::Delete => (None, None),
            Step::Cas {
                expected, reply, ..
            } => (Some(expected), reply.map(|(_, previous)| previous)),
        };
        first.into_iter().chain(second)
    }

    /// The state after applying this step to `state`, or None if the step
    /// could not have returned what it returned from that state.
    pub fn apply(self, state: State) -> Option<State> {
        match self {
            Step::Get { observed } => (observed == state).then_some(state),
            Step::Put { value } => Some(value),
            Step::Delete => Some(ABSENT),
            Step::Cas {
                expected,
                new,
                reply,
            } => {
                let matches = state == expected;
                match reply {
                    Some((succeeded, previous)) => {
                        if succeeded != matches || previous != state {
                            return None;
                        }
                        Some(if succeeded { new } else { state })
                    }
                    None => Some(if matches { new } else { state }),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cas_must_agree_with_the_state() {
        let cas = Step::Cas {
            expected: 1,
            new: 2,
            reply: Some((true, 1)),
        };
        assert_eq!(cas.apply(1), Some(2));
        assert_eq!(cas.apply(3), None, "succeeded although the value differed");
        let failed = Step::Cas {
            expected: 1,
            new: 2,
            reply: Some((false, 3)),
        };
        assert_eq!(failed.apply(3), Some(3));
        assert_eq!(failed.apply(1), None, "failed although the value matched");
        assert_eq!(failed.apply(4), None, "reported another previous value");
        let unknown = Step::Cas {
            expected: 1,
            new: 2,
            reply: None,
        };
        assert_eq!(unknown.apply(1), Some(2));
        assert_eq!(unknown.apply(5), Some(5));
    }

    #[test]
    fn reads_see_the_state() {
        assert_eq!(Step::Get { observed: 4 }.apply(4), Some(4));
        assert_eq!(Step::Get { observed: 4 }.apply(ABSENT), None);
        assert_eq!(Step::Delete.apply(4), Some(ABSENT));
    }
}
