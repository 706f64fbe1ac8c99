//! Hybrid timestamps, as the oracle hands them out and versions carry them:
//! milliseconds since the Unix epoch in the upper 46 bits, a logical
//! counter in the lower 18 (262,144 timestamps per millisecond).

pub const LOGICAL_BITS: u32 = 18;
const LOGICAL_MASK: u64 = (1 << LOGICAL_BITS) - 1;

pub fn compose(physical_ms: u64, logical: u64) -> u64 {
    (physical_ms << LOGICAL_BITS) | (logical & LOGICAL_MASK)
}

pub fn physical_ms(ts: u64) -> u64 {
    ts >> LOGICAL_BITS
}

pub fn logical(ts: u64) -> u64 {
    ts & LOGICAL_MASK
}

/// The first timestamp of millisecond `physical_ms`: every timestamp taken
/// at or after that wall-clock time is at or above it.
pub fn at_ms(physical_ms: u64) -> u64 {
    compose(physical_ms, 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_round_trip_and_order_follows_time() {
        let ts = compose(1_700_000_000_123, 42);
        assert_eq!(physical_ms(ts), 1_700_000_000_123);
        assert_eq!(logical(ts), 42);
        assert!(compose(5, LOGICAL_MASK) < compose(6, 0));
        assert!(at_ms(5) <= compose(5, 0));
    }
}
