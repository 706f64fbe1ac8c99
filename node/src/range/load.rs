//! Request rates of a replica, for node status and split decisions.

use std::time::Instant;

pub struct Load {
    reads: u64,
    writes: u64,
    sampled: (Instant, u64, u64),
    pub reads_per_second: f64,
    pub writes_per_second: f64,
}

impl Load {
    pub fn new(now: Instant) -> Self {
        Load {
            reads: 0,
            writes: 0,
            sampled: (now, 0, 0),
            reads_per_second: 0.0,
            writes_per_second: 0.0,
        }
    }

    pub fn read(&mut self) {
        self.reads += 1;
    }

    pub fn write(&mut self) {
        self.writes += 1;
    }

    /// Folds the counts since the last sample into the rates, about once a
    /// second; older seconds weigh less and less.
    pub fn sample(&mut self, now: Instant) {
        let (at, reads, writes) = self.sampled;
        let elapsed = now.duration_since(at).as_secs_f64();
        if elapsed < 1.0 {
            return;
        }
        let weight = 0.5;
        let rate = |now: u64, then: u64| (now - then) as f64 / elapsed;
        self.reads_per_second =
            weight * rate(self.reads, reads) + (1.0 - weight) * self.reads_per_second;
        self.writes_per_second =
            weight * rate(self.writes, writes) + (1.0 - weight) * self.writes_per_second;
        self.sampled = (now, self.reads, self.writes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn rates_follow_the_counts() {
        let start = Instant::now();
        let mut load = Load::new(start);
        for _ in 0..100 {
            load.write();
        }
        load.sample(start + Duration::from_millis(500));
        assert_eq!(load.writes_per_second, 0.0, "sampled at most once a second");
        load.sample(start + Duration::from_secs(1));
        assert_eq!(load.writes_per_second, 50.0);
        assert_eq!(load.reads_per_second, 0.0);
        load.sample(start + Duration::from_secs(2));
        assert_eq!(load.writes_per_second, 25.0);
    }
}
