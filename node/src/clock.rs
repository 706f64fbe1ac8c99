//! Time as the store sees it: the monotonic clock for Raft ticks, leases and
//! load, and the wall clock stamped on commands (TTL decisions at apply use
//! the proposer's stamp). A test drives a manual clock instead.

use std::sync::OnceLock;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

pub trait Clock: Send + Sync {
    fn now(&self) -> Instant;
    /// Milliseconds since the Unix epoch.
    fn wall_ms(&self) -> u64;
}

pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Instant {
        Instant::now()
    }

    fn wall_ms(&self) -> u64 {
        wall_ms()
    }
}

/// Testing knob: `ZDB_TESTING_CLOCK_OFFSET_MS` shifts this node's wall
/// clock (by a signed number of ms), so that tests can run nodes whose
/// clocks disagree, as real machines' do.
pub const CLOCK_OFFSET_ENV: &str = "ZDB_TESTING_CLOCK_OFFSET_MS";

fn offset_ms() -> i64 {
    static OFFSET: OnceLock<i64> = OnceLock::new();
    *OFFSET.get_or_init(|| {
        std::env::var(CLOCK_OFFSET_ENV)
            .ok()
            .and_then(|offset| offset.parse().ok())
            .unwrap_or(0)
    })
}

pub fn wall_ms() -> u64 {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| elapsed.as_millis() as u64)
        .unwrap_or_default();
    now.saturating_add_signed(offset_ms())
}

#[cfg(test)]
pub use manual::ManualClock;

#[cfg(test)]
mod manual {
    use std::sync::{Arc, Mutex};
    use std::time::{Duration, Instant};

    /// A clock that moves only when told to; clones share it.
    #[derive(Clone)]
    pub struct ManualClock(Arc<Mutex<(Instant, u64)>>);

    impl Default for ManualClock {
        fn default() -> Self {
            ManualClock(Arc::new(Mutex::new((Instant::now(), 1_000_000))))
        }
    }

    impl ManualClock {
        pub fn advance(&self, by: Duration) {
            let mut time = self.0.lock().expect("clock lock");
            time.0 += by;
            time.1 += by.as_millis() as u64;
        }
    }

    impl super::Clock for ManualClock {
        fn now(&self) -> Instant {
            self.0.lock().expect("clock lock").0
        }

        fn wall_ms(&self) -> u64 {
            self.0.lock().expect("clock lock").1
        }
    }
}
