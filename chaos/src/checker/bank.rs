//! The bank checker: every successful snapshot read of the accounts sums to
//! the opening total, shows every account, and no balance below zero.

use super::Verdict;
use crate::history::BankRead;
use crate::workload::bank::{ACCOUNTS, OPENING_BALANCE};

pub fn check(reads: &[BankRead]) -> Verdict {
    let expected = ACCOUNTS as i64 * OPENING_BALANCE;
    let mut problems = Vec::new();
    let mut checked = 0;
    for read in reads {
        let Some(balances) = &read.balances else {
            continue;
        };
        checked += 1;
        let total: i64 = balances.iter().map(|(_, balance)| balance).sum();
        if balances.len() != ACCOUNTS || total != expected {
            problems.push(format!(
                "read by p{} at [{} .. {}] saw {} accounts totalling {total}, not {ACCOUNTS} totalling {expected}",
                read.process,
                read.invoked,
                read.completed,
                balances.len()
            ));
        }
        for (account, balance) in balances.iter().filter(|(_, balance)| *balance < 0) {
            problems.push(format!(
                "read by p{} at [{} .. {}] saw {account} at {balance}",
                read.process, read.invoked, read.completed
            ));
        }
    }
    if !problems.is_empty() {
        return Verdict::Fail(problems);
    }
    if checked == 0 {
        return Verdict::Inconclusive("no bank read succeeded".into());
    }
    Verdict::Pass
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(balances: Vec<i64>) -> BankRead {
        BankRead {
            process: 1,
            invoked: 0,
            completed: 1,
            balances: Some(
                balances
                    .into_iter()
                    .enumerate()
                    .map(|(i, b)| (format!("a{i}"), b))
                    .collect(),
            ),
        }
    }

    #[test]
    fn money_made_lost_or_overdrawn_fails() {
        let even = vec![OPENING_BALANCE; ACCOUNTS];
        assert_eq!(check(&[read(even.clone())]), Verdict::Pass);
        let mut moved = even.clone();
        moved[0] += 30;
        moved[1] -= 30;
        assert_eq!(check(&[read(moved.clone())]), Verdict::Pass);
        moved[2] -= 1;
        assert!(!check(&[read(moved)]).passed(), "money lost");
        let mut overdrawn = even.clone();
        overdrawn[0] = -10;
        overdrawn[1] += 110;
        assert!(!check(&[read(overdrawn)]).passed(), "below zero");
        assert!(
            !check(&[read(even[1..].to_vec())]).passed(),
            "an account missing"
        );
    }
}
