//! Key choice: which of the existing records an operation touches.

use std::str::FromStr;

use rand::Rng;

/// YCSB's skew: a few keys get most of the traffic.
const ZIPFIAN_THETA: f64 = 0.99;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Distribution {
    Uniform,
    /// Zipfian over the records, hot keys scattered over the key space
    /// (YCSB's "scrambled zipfian").
    Zipfian,
    /// Zipfian over recency: the newest records are the hottest.
    Latest,
}

impl FromStr for Distribution {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "uniform" => Ok(Distribution::Uniform),
            "zipfian" => Ok(Distribution::Zipfian),
            "latest" => Ok(Distribution::Latest),
            other => Err(format!(
                "unknown distribution {other:?}; choose uniform, zipfian or latest"
            )),
        }
    }
}

impl std::fmt::Display for Distribution {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Distribution::Uniform => "uniform",
            Distribution::Zipfian => "zipfian",
            Distribution::Latest => "latest",
        })
    }
}

/// Draws record numbers in `[0, newest]`. The zipfian constants depend only
/// on the record count, so one chooser is computed once and shared.
#[derive(Debug, Clone)]
pub struct KeyChooser {
    distribution: Distribution,
    zipf: Zipf,
}

impl KeyChooser {
    pub fn new(distribution: Distribution, records: u64) -> Self {
        KeyChooser {
            distribution,
            zipf: Zipf::new(records.max(1), ZIPFIAN_THETA),
        }
    }

    /// A record number, given the newest record written so far (records
    /// inserted during the run widen the uniform and latest choices).
    pub fn next(&self, rng: &mut impl Rng, newest: u64) -> u64 {
        match self.distribution {
            Distribution::Uniform => rng.random_range(0..=newest),
            Distribution::Zipfian => scramble(self.zipf.next(rng)) % (newest + 1),
            Distribution::Latest => newest.saturating_sub(self.zipf.next(rng)),
        }
    }
}

/// Gray et al.'s zipfian generator, as in YCSB: rank 0 is the most popular.
#[derive(Debug, Clone)]
struct Zipf {
    items: f64,
    theta: f64,
    alpha: f64,
    zeta_n: f64,
    eta: f64,
}

impl Zipf {
    fn new(items: u64, theta: f64) -> Self {
        let zeta = |n: u64| (1..=n).map(|i| 1.0 / (i as f64).powf(theta)).sum::<f64>();
        let zeta_n = zeta(items);
        let zeta_2 = zeta(2);
        let items_f = items as f64;
        Zipf {
            items: items_f,
            theta,
            alpha: 1.0 / (1.0 - theta),
            zeta_n,
            eta: (1.0 - (2.0 / items_f).powf(1.0 - theta)) / (1.0 - zeta_2 / zeta_n),
        }
    }

    fn next(&self, rng: &mut impl Rng) -> u64 {
        let u: f64 = rng.random();
        let uz = u * self.zeta_n;
        if uz < 1.0 {
            return 0;
        }
        if uz < 1.0 + 0.5f64.powf(self.theta) {
            return 1;
        }
        let rank = (self.items * (self.eta * u - self.eta + 1.0).powf(self.alpha)) as u64;
        rank.min(self.items as u64 - 1)
    }
}

/// FNV-1a of the rank, so hot records are spread over the key space instead
/// of all sitting at its start (which would put them all in one range).
fn scramble(rank: u64) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in rank.to_le_bytes() {
        hash ^= byte as u64;
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn counts(distribution: Distribution, records: u64, draws: usize) -> Vec<u64> {
        let chooser = KeyChooser::new(distribution, records);
        let mut rng = rand::rngs::SmallRng::seed_from_u64(7);
        let mut counts = vec![0u64; records as usize];
        for _ in 0..draws {
            let key = chooser.next(&mut rng, records - 1);
            counts[key as usize] += 1;
        }
        counts
    }

    #[test]
    fn zipfian_concentrates_traffic_on_few_keys() {
        let mut counts = counts(Distribution::Zipfian, 1000, 100_000);
        counts.sort_unstable_by(|a, b| b.cmp(a));
        let top_ten: u64 = counts[..10].iter().sum();
        // With theta 0.99 over 1000 items the 10 hottest take about 39%.
        assert!(
            top_ten > 30_000 && top_ten < 50_000,
            "top ten got {top_ten}"
        );
    }

    #[test]
    fn uniform_spreads_traffic() {
        let counts = counts(Distribution::Uniform, 100, 100_000);
        assert!(
            counts.iter().all(|&c| (800..1200).contains(&c)),
            "{counts:?}"
        );
    }

    #[test]
    fn latest_favours_the_newest_records() {
        let counts = counts(Distribution::Latest, 1000, 100_000);
        assert!(
            counts[999] > counts[500] * 20,
            "{} vs {}",
            counts[999],
            counts[500]
        );
        assert!(counts[999] > 5_000);
    }
}
