//! Eviction policies by the names Redis gives them (`maxmemory-policy`),
//! for every tool that shows or reads one.

use crate::v1::EvictionPolicy;

const ALL: [EvictionPolicy; 4] = [
    EvictionPolicy::Noeviction,
    EvictionPolicy::AllkeysLru,
    EvictionPolicy::AllkeysLfu,
    EvictionPolicy::VolatileTtl,
];

impl EvictionPolicy {
    pub fn redis_name(self) -> &'static str {
        match self {
            EvictionPolicy::Noeviction => "noeviction",
            EvictionPolicy::AllkeysLru => "allkeys-lru",
            EvictionPolicy::AllkeysLfu => "allkeys-lfu",
            EvictionPolicy::VolatileTtl => "volatile-ttl",
        }
    }

    /// The policy Redis names `name` (any case).
    pub fn from_redis_name(name: &str) -> Option<Self> {
        ALL.into_iter()
            .find(|policy| policy.redis_name().eq_ignore_ascii_case(name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_read_back() {
        for policy in ALL {
            assert_eq!(
                EvictionPolicy::from_redis_name(policy.redis_name()),
                Some(policy)
            );
        }
        assert_eq!(
            EvictionPolicy::from_redis_name("ALLKEYS-LRU"),
            Some(EvictionPolicy::AllkeysLru)
        );
        assert_eq!(EvictionPolicy::from_redis_name("sometimes"), None);
    }
}
