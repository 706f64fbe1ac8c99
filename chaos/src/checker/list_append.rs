//! Elle's list-append checker, for serializable transactions. Each list's
//! order is taken from its longest read (every read must be a prefix of
//! it); then every committed transaction (or one of unknown outcome whose
//! element someone read) is a node of a dependency graph:
//!
//! - ww: T1 appended the element right before T2's in a list;
//! - wr: T2 read a list whose last element T1 appended;
//! - rw: T1 read a list that T2's append extended next.
//!
//! Serializability forbids any cycle. Also caught on the way: reads of
//! elements from aborted transactions (G1a), elements nobody appended,
//! duplicates, and acknowledged appends missing from the final lists.

use std::collections::{BTreeMap, HashMap, HashSet};

use super::Verdict;
use crate::history::{Micro, Outcome, TxnCall};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Edge {
    Ww,
    Wr,
    Rw,
}

pub fn check(calls: &[TxnCall]) -> Verdict {
    let mut problems = Vec::new();
    // element -> index of the transaction that appended it
    let mut writer: HashMap<u64, usize> = HashMap::new();
    for (index, call) in calls.iter().enumerate() {
        for op in &call.ops {
            if let Micro::Append { element, .. } = op {
                writer.insert(*element, index);
            }
        }
    }
    let orders = match list_orders(calls, &mut problems) {
        Some(orders) => orders,
        None => return Verdict::Fail(problems),
    };
    let committed = |index: usize| matches!(calls[index].outcome, Outcome::Ok(_));
    let mut observed: HashSet<usize> = HashSet::new();
    for (key, order) in &orders {
        for element in order {
            match writer.get(element) {
                None => problems.push(format!("{key}: element {element} was never appended")),
                Some(&index) if matches!(calls[index].outcome, Outcome::Failed(_)) => problems
                    .push(format!(
                        "{key}: element {element} of an aborted transaction was read (G1a): {:?}",
                        calls[index].ops
                    )),
                Some(&index) => {
                    observed.insert(index);
                }
            }
        }
    }
    // Acknowledged appends must be in the final lists (the longest reads).
    for (index, call) in calls.iter().enumerate().filter(|(i, _)| committed(*i)) {
        for op in &call.ops {
            if let Micro::Append { key, element } = op {
                let present = orders.get(key).is_some_and(|order| order.contains(element));
                if !present {
                    problems.push(format!(
                        "{key}: acknowledged append of {element} (transaction {index}) is lost"
                    ));
                }
            }
        }
    }
    if !problems.is_empty() {
        return Verdict::Fail(problems);
    }
    let nodes: HashSet<usize> = (0..calls.len())
        .filter(|&i| committed(i) || observed.contains(&i))
        .collect();
    let edges = dependencies(calls, &orders, &writer, &nodes);
    match find_cycle(&nodes, &edges) {
        Some(cycle) => Verdict::Fail(vec![describe(calls, &cycle, &edges)]),
        None => Verdict::Pass,
    }
}

/// Each key's order, from its longest committed read; None (with the
/// problems recorded) when two reads disagree or a list repeats an element.
fn list_orders(
    calls: &[TxnCall],
    problems: &mut Vec<String>,
) -> Option<BTreeMap<String, Vec<u64>>> {
    let mut orders: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    let reads = || {
        calls
            .iter()
            .filter(|call| matches!(call.outcome, Outcome::Ok(_)))
            .flat_map(|call| call.ops.iter())
            .filter_map(|op| match op {
                Micro::Read {
                    key,
                    list: Some(list),
                } => Some((key, list)),
                _ => None,
            })
    };
    for (key, list) in reads() {
        let longest = orders.entry(key.clone()).or_default();
        if list.len() > longest.len() {
            *longest = list.clone();
        }
    }
    for (key, list) in reads() {
        let order = &orders[key];
        if !order.starts_with(list) {
            let at = list
                .iter()
                .zip(order)
                .position(|(a, b)| a != b)
                .unwrap_or(order.len());
            problems.push(format!(
                "{key}: two reads disagree on the list's order at position {at}: one has {:?}, \
                 the longest {:?} ({} and {} elements)",
                list.get(at),
                order.get(at),
                list.len(),
                order.len()
            ));
        }
    }
    for (key, order) in &orders {
        let distinct: HashSet<&u64> = order.iter().collect();
        if distinct.len() != order.len() {
            problems.push(format!("{key}: an element appears twice in {order:?}"));
        }
    }
    problems.is_empty().then_some(orders)
}

type Edges = BTreeMap<(usize, usize), Edge>;

fn dependencies(
    calls: &[TxnCall],
    orders: &BTreeMap<String, Vec<u64>>,
    writer: &HashMap<u64, usize>,
    nodes: &HashSet<usize>,
) -> Edges {
    let mut edges = Edges::new();
    let mut add = |from: usize, to: usize, edge: Edge| {
        if from != to && nodes.contains(&from) && nodes.contains(&to) {
            edges.entry((from, to)).or_insert(edge);
        }
    };
    for order in orders.values() {
        for pair in order.windows(2) {
            if let (Some(&a), Some(&b)) = (writer.get(&pair[0]), writer.get(&pair[1])) {
                add(a, b, Edge::Ww);
            }
        }
    }
    for (reader, call) in calls.iter().enumerate() {
        if !matches!(call.outcome, Outcome::Ok(_)) {
            continue;
        }
        for op in &call.ops {
            let Micro::Read {
                key,
                list: Some(list),
            } = op
            else {
                continue;
            };
            if let Some(&last_writer) = list.last().and_then(|last| writer.get(last)) {
                add(last_writer, reader, Edge::Wr);
            }
            let next = orders.get(key).and_then(|order| order.get(list.len()));
            if let Some(&next_writer) = next.and_then(|next| writer.get(next)) {
                add(reader, next_writer, Edge::Rw);
            }
        }
    }
    edges
}

/// A cycle of the graph, if any (iterative depth-first search).
fn find_cycle(nodes: &HashSet<usize>, edges: &Edges) -> Option<Vec<usize>> {
    let mut out: HashMap<usize, Vec<usize>> = HashMap::new();
    for &(from, to) in edges.keys() {
        out.entry(from).or_default().push(to);
    }
    // 0: unvisited, 1: on the stack, 2: done
    let mut state: HashMap<usize, u8> = HashMap::new();
    let mut roots: Vec<usize> = nodes.iter().copied().collect();
    roots.sort_unstable();
    for root in roots {
        if state.get(&root).copied().unwrap_or(0) != 0 {
            continue;
        }
        let mut stack: Vec<(usize, usize)> = vec![(root, 0)];
        state.insert(root, 1);
        while let Some(&mut (node, ref mut next)) = stack.last_mut() {
            let successors = out.get(&node).map(Vec::as_slice).unwrap_or_default();
            if *next < successors.len() {
                let successor = successors[*next];
                *next += 1;
                match state.get(&successor).copied().unwrap_or(0) {
                    0 => {
                        state.insert(successor, 1);
                        stack.push((successor, 0));
                    }
                    1 => {
                        let at = stack.iter().position(|(n, _)| *n == successor)?;
                        return Some(stack[at..].iter().map(|(n, _)| *n).collect());
                    }
                    _ => {}
                }
            } else {
                state.insert(node, 2);
                stack.pop();
            }
        }
    }
    None
}

fn describe(calls: &[TxnCall], cycle: &[usize], edges: &Edges) -> String {
    let mut text = String::from("a dependency cycle a serializable history cannot have:");
    for (i, &from) in cycle.iter().enumerate() {
        let to = cycle[(i + 1) % cycle.len()];
        let edge = edges.get(&(from, to)).copied();
        text.push_str(&format!(
            "\n  T{from} (p{} {:?}) -{edge:?}-> T{to}",
            calls[from].process, calls[from].ops
        ));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn txn(process: u64, ops: Vec<Micro>, outcome: Outcome<()>) -> TxnCall {
        TxnCall {
            process,
            ops,
            invoked: 0,
            completed: 1,
            outcome,
        }
    }

    fn append(key: &str, element: u64) -> Micro {
        Micro::Append {
            key: key.into(),
            element,
        }
    }

    fn read(key: &str, list: &[u64]) -> Micro {
        Micro::Read {
            key: key.into(),
            list: Some(list.to_vec()),
        }
    }

    #[test]
    fn a_serial_history_passes() {
        let calls = vec![
            txn(1, vec![append("x", 1), append("y", 2)], Outcome::Ok(())),
            txn(2, vec![read("x", &[1]), append("x", 3)], Outcome::Ok(())),
            txn(
                3,
                vec![read("x", &[1, 3]), read("y", &[2])],
                Outcome::Ok(()),
            ),
        ];
        assert_eq!(check(&calls), Verdict::Pass);
    }

    #[test]
    fn write_skew_is_a_cycle() {
        // Each read the other's key before the other appended to it.
        let calls = vec![
            txn(1, vec![read("x", &[]), append("y", 1)], Outcome::Ok(())),
            txn(2, vec![read("y", &[]), append("x", 2)], Outcome::Ok(())),
            txn(3, vec![read("x", &[2]), read("y", &[1])], Outcome::Ok(())),
        ];
        let verdict = check(&calls);
        assert!(!verdict.passed(), "{verdict}");
        assert!(format!("{verdict}").contains("Rw"));
    }

    #[test]
    fn aborted_reads_lost_appends_and_disagreeing_orders_fail() {
        let aborted = vec![
            txn(1, vec![append("x", 1)], Outcome::Failed("aborted".into())),
            txn(2, vec![read("x", &[1])], Outcome::Ok(())),
        ];
        assert!(format!("{}", check(&aborted)).contains("G1a"));
        let lost = vec![
            txn(1, vec![append("x", 1)], Outcome::Ok(())),
            txn(2, vec![append("x", 2)], Outcome::Ok(())),
            txn(3, vec![read("x", &[2])], Outcome::Ok(())),
        ];
        assert!(format!("{}", check(&lost)).contains("lost"));
        let disagree = vec![
            txn(1, vec![append("x", 1), append("x", 2)], Outcome::Ok(())),
            txn(2, vec![read("x", &[1, 2])], Outcome::Ok(())),
            txn(3, vec![read("x", &[2])], Outcome::Ok(())),
        ];
        assert!(format!("{}", check(&disagree)).contains("disagree"));
    }

    #[test]
    fn an_unknown_transaction_counts_only_when_observed() {
        let calls = vec![
            txn(1, vec![append("x", 1)], Outcome::Unknown("timeout".into())),
            txn(2, vec![append("x", 2)], Outcome::Unknown("timeout".into())),
            txn(3, vec![read("x", &[1])], Outcome::Ok(())),
        ];
        assert_eq!(check(&calls), Verdict::Pass);
    }
}
