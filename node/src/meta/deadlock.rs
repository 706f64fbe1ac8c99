//! The cluster's wait-for graph, kept by the meta range's leader (as TiKV
//! keeps its deadlock detector on one node): every transaction that waits
//! for a lock records an edge to the lock's holder; an edge that would
//! close a cycle is refused with the cycle, and its waiter aborts. A
//! transaction waits for one lock at a time, so each waiter has one edge.
//! Edges of waiters that vanished (their node died) fade after a while.

use std::collections::HashMap;
use std::time::{Duration, Instant};

/// How long an edge lasts without being recorded again.
const EDGE_LIFETIME: Duration = Duration::from_secs(10);

#[derive(Debug, Default)]
pub struct WaitForGraph {
    /// waiter -> (holder, key, when recorded)
    edges: HashMap<u64, (u64, Vec<u8>, Instant)>,
}

impl WaitForGraph {
    /// Records that `waiter` waits for `holder`, unless that closes a
    /// cycle: then the cycle, starting with `waiter`.
    pub fn wait(&mut self, waiter: u64, holder: u64, key: &[u8], now: Instant) -> Option<Vec<u64>> {
        self.edges
            .retain(|_, (_, _, at)| now.duration_since(*at) < EDGE_LIFETIME);
        let mut cycle = vec![waiter];
        let mut next = holder;
        while cycle.len() <= self.edges.len() + 1 {
            if next == waiter {
                return Some(cycle);
            }
            cycle.push(next);
            match self.edges.get(&next) {
                Some((holder, _, _)) => next = *holder,
                None => break,
            }
        }
        self.edges.insert(waiter, (holder, key.to_vec(), now));
        None
    }

    pub fn done(&mut self, waiter: u64) {
        self.edges.remove(&waiter);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_edge_closing_a_cycle_is_refused_with_the_cycle() {
        let now = Instant::now();
        let mut graph = WaitForGraph::default();
        assert_eq!(graph.wait(1, 2, b"b", now), None);
        assert_eq!(graph.wait(2, 3, b"c", now), None);
        assert_eq!(graph.wait(3, 1, b"a", now), Some(vec![3, 1, 2]));
        // Refused edges are not kept: 3 may wait for someone else.
        assert_eq!(graph.wait(3, 4, b"d", now), None);
        graph.done(1);
        assert_eq!(graph.wait(4, 3, b"c", now), Some(vec![4, 3]));
        assert_eq!(graph.wait(2, 1, b"a", now), None, "1 no longer waits");
    }

    #[test]
    fn edges_of_vanished_waiters_fade() {
        let then = Instant::now();
        let mut graph = WaitForGraph::default();
        assert_eq!(graph.wait(1, 2, b"b", then), None);
        let later = then + EDGE_LIFETIME + Duration::from_secs(1);
        assert_eq!(graph.wait(2, 1, b"a", later), None);
    }
}
