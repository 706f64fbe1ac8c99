//! `zdbctl txn`: a script of reads and writes run in one transaction.
//!
//! The script is parsed whole first ([`parse`], no I/O), so a typo on the
//! last line sends nothing; then it runs against the cluster, each command
//! printing its result as the data commands do (values raw on stdout, one
//! `KEY<TAB>VALUE` line per pair for scans, notes and errors on stderr).

use std::io::{IsTerminal, Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{anyhow, Context, Result};
use clap::{Args, ValueEnum};
use zdb_client::{Client, Error, Isolation, Transaction, TxnOptions};

/// The script format, shown after the options in `zdbctl txn --help`.
pub const SCRIPT_HELP: &str = "\
Script: one command per line; blank lines and lines starting with # are ignored.
  get KEY                 print KEY's value (\"not found\" on stderr if it has none)
  get-for-update KEY      the same, and lock KEY for writing until the transaction ends
  get-for-share KEY       the same, and lock KEY against writers until it ends
  put KEY VALUE           write KEY (VALUE is the rest of the line, spaces included); prints OK
  del KEY                 delete KEY; prints OK
  scan START END [LIMIT]  print KEY<TAB>VALUE for START <= key < END, at most LIMIT
                          (\"\" for START or END: no bound)
  commit                  commit; prints the commit timestamp (0 if nothing was written)
  rollback                discard every write; prints \"rolled back\"

The whole script runs in ONE transaction; its reads see its own writes, and
nothing is visible to others before it commits. commit or rollback ends it and
must be the last command; a script that ends without either commits at the end.
The script is checked whole before anything is sent.

Exit codes: 0 done; 3 aborted (a write conflict, serialization failure,
deadlock or lock wait timeout, or rolled back by the cluster): nothing was
applied, run the script again; 2 any other error.

Example:
  printf 'get-for-update stock\\nput stock 41\\ncommit\\n' | zdbctl txn";

#[derive(Args)]
pub struct TxnArgs {
    /// Isolation level of the transaction.
    #[arg(long, value_enum, default_value = "serializable")]
    isolation: IsolationArg,
    /// The script to run; `-` or none: read it from stdin.
    #[arg(value_name = "FILE")]
    file: Option<PathBuf>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum IsolationArg {
    /// As if committed transactions ran one at a time.
    Serializable,
    /// Snapshot isolation: the first committer wins a write-write conflict.
    Snapshot,
    /// Each read sees what was committed when it ran.
    ReadCommitted,
}

impl From<IsolationArg> for Isolation {
    fn from(isolation: IsolationArg) -> Self {
        match isolation {
            IsolationArg::Serializable => Isolation::Serializable,
            IsolationArg::Snapshot => Isolation::Snapshot,
            IsolationArg::ReadCommitted => Isolation::ReadCommitted,
        }
    }
}

// ---- Parsing --------------------------------------------------------------

/// Which lock a read takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lock {
    None,
    /// `get-for-update`: exclusive, as SELECT ... FOR UPDATE.
    ForUpdate,
    /// `get-for-share`: shared, as SELECT ... FOR SHARE.
    ForShare,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    Get {
        key: String,
        lock: Lock,
    },
    Put {
        key: String,
        value: String,
    },
    Del {
        key: String,
    },
    /// An empty `end` means no bound; `limit` 0 means all.
    Scan {
        start: String,
        end: String,
        limit: usize,
    },
    Commit,
    Rollback,
}

/// One command of a script.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// Where it is in the script, from 1.
    pub line: usize,
    /// The command as written, for messages.
    pub text: String,
    pub op: Op,
}

/// Why a script was refused; nothing was sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParseError {
    Line {
        line: usize,
        text: String,
        message: String,
    },
    /// Only blank lines and comments.
    Empty,
}

impl std::fmt::Display for ParseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ParseError::Line {
                line,
                text,
                message,
            } => write!(
                f,
                "line {line} ({text}): {message}; nothing was sent: fix the script and run it again"
            ),
            ParseError::Empty => write!(
                f,
                "the script has no commands (only blank lines and comments); nothing was sent"
            ),
        }
    }
}

impl std::error::Error for ParseError {}

const COMMANDS: &str = "get, get-for-update, get-for-share, put, del, scan, commit, rollback";

fn usage(command: &str) -> &'static str {
    match command {
        "get" => "get KEY",
        "get-for-update" => "get-for-update KEY",
        "get-for-share" => "get-for-share KEY",
        "put" => "put KEY VALUE",
        "del" => "del KEY",
        "scan" => "scan START END [LIMIT]",
        "commit" => "commit",
        "rollback" => "rollback",
        _ => "",
    }
}

/// `text` split at its first run of whitespace: the first word and what
/// follows it (leading whitespace removed, the rest as written).
fn first_word(text: &str) -> (&str, &str) {
    match text.find(char::is_whitespace) {
        Some(at) => (&text[..at], text[at..].trim_start()),
        None => (text, ""),
    }
}

/// A KEY, START or END as written; `""` stands for the empty string.
fn word(word: &str) -> String {
    if word == "\"\"" {
        String::new()
    } else {
        word.to_owned()
    }
}

/// Parses a whole script, refusing it at the first line that is not a
/// command of the script language (unknown, wrong arity, a bad LIMIT, or
/// anything after `commit` / `rollback`).
pub fn parse(script: &str) -> Result<Vec<Step>, ParseError> {
    let mut steps: Vec<Step> = Vec::new();
    for (index, raw) in script.lines().enumerate() {
        let line = index + 1;
        let text = raw.trim_start();
        if text.is_empty() || text.starts_with('#') {
            continue;
        }
        let refuse = |message: String| ParseError::Line {
            line,
            text: text.trim_end().to_owned(),
            message,
        };
        if let Some(last) = steps.last() {
            if matches!(last.op, Op::Commit | Op::Rollback) {
                return Err(refuse(format!(
                    "the transaction already ended with `{}` on line {}: one script runs one \
                     transaction; remove this line and the ones after it, or run them as another script",
                    last.text, last.line
                )));
            }
        }
        let (command, rest) = first_word(text);
        let arity = || {
            refuse(format!(
                "wrong number of arguments: write `{}`",
                usage(command)
            ))
        };
        let op = match command {
            "put" => {
                let (key, value) = first_word(rest);
                if key.is_empty() || value.is_empty() {
                    return Err(arity());
                }
                Op::Put {
                    key: word(key),
                    value: value.to_owned(),
                }
            }
            "get" | "get-for-update" | "get-for-share" | "del" | "scan" | "commit" | "rollback" => {
                let args: Vec<&str> = rest.split_whitespace().collect();
                match (command, args.as_slice()) {
                    ("get", [key]) => Op::Get {
                        key: word(key),
                        lock: Lock::None,
                    },
                    ("get-for-update", [key]) => Op::Get {
                        key: word(key),
                        lock: Lock::ForUpdate,
                    },
                    ("get-for-share", [key]) => Op::Get {
                        key: word(key),
                        lock: Lock::ForShare,
                    },
                    ("del", [key]) => Op::Del { key: word(key) },
                    ("scan", [start, end]) => Op::Scan {
                        start: word(start),
                        end: word(end),
                        limit: 0,
                    },
                    ("scan", [start, end, limit]) => Op::Scan {
                        start: word(start),
                        end: word(end),
                        limit: limit.parse().map_err(|_| {
                            refuse(format!(
                                "LIMIT must be a whole number, not {limit:?}: write `{}`",
                                usage(command)
                            ))
                        })?,
                    },
                    ("commit", []) => Op::Commit,
                    ("rollback", []) => Op::Rollback,
                    _ => return Err(arity()),
                }
            }
            _ => {
                return Err(refuse(format!(
                    "unknown command {command:?}; the commands are {COMMANDS}"
                )))
            }
        };
        if let Op::Get { key, .. } | Op::Put { key, .. } | Op::Del { key } = &op {
            if key.is_empty() {
                return Err(refuse("a KEY cannot be empty".to_owned()));
            }
        }
        steps.push(Step {
            line,
            text: text.trim_end().to_owned(),
            op,
        });
    }
    if steps.is_empty() {
        return Err(ParseError::Empty);
    }
    Ok(steps)
}

// ---- Running --------------------------------------------------------------

/// Exit code of a transaction aborted by a conflict: running it again may
/// succeed.
const ABORTED: u8 = 3;

/// Where a failure happened, for its message.
fn location(step: Option<&Step>) -> String {
    match step {
        Some(step) => format!("line {} ({})", step.line, step.text),
        None => "end of script (commit: the script has no commit or rollback)".to_owned(),
    }
}

/// Whether `error` aborted the transaction in a way running it again may
/// fix: a conflict (write conflict, serialization failure, deadlock, a
/// rollback by someone else), a lock wait timeout, a coordinator that lost
/// it, or a refusal that applied nothing.
fn can_run_again(error: &Error) -> bool {
    error.is_retryable_txn_error()
}

/// Reads the script from `file`, or stdin for none or `-`.
fn read_script(file: Option<&std::path::Path>) -> Result<String> {
    match file {
        Some(path) if path.as_os_str() != "-" => std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the script {}", path.display())),
        _ => {
            let mut stdin = std::io::stdin();
            if stdin.is_terminal() {
                eprintln!("reading the transaction script from stdin; end it with Ctrl-D");
            }
            let mut script = String::new();
            stdin
                .read_to_string(&mut script)
                .context("cannot read the script from stdin")?;
            Ok(script)
        }
    }
}

pub async fn run(client: &Client, args: TxnArgs) -> Result<ExitCode> {
    let script = read_script(args.file.as_deref())?;
    let steps = parse(&script)?;
    let mut txn = client
        .begin(TxnOptions::new(args.isolation.into()))
        .await
        .map_err(|err| {
            anyhow!(
                "could not begin a transaction: {err}; nothing was sent: check the cluster \
                 (zdbctl status) and run the script again"
            )
        })?;
    let mut out = std::io::stdout().lock();
    let (body, end) = match steps.split_last() {
        Some((last, body)) if matches!(last.op, Op::Commit | Op::Rollback) => (body, Some(last)),
        _ => (steps.as_slice(), None),
    };
    for step in body {
        if let Err(err) = apply(&mut txn, step, &mut out).await {
            return Ok(failed(txn, Some(step), err).await);
        }
    }
    match end {
        Some(step) if step.op == Op::Rollback => match txn.rollback().await {
            Ok(()) => {
                writeln!(out, "rolled back")?;
                Ok(ExitCode::SUCCESS)
            }
            Err(err) => {
                eprintln!("error: {}: {err}", location(Some(step)));
                eprintln!(
                    "the transaction was not committed; its locks expire by themselves within seconds"
                );
                Ok(ExitCode::from(2))
            }
        },
        step => match txn.commit().await {
            Ok(commit_ts) => {
                writeln!(out, "{commit_ts}")?;
                Ok(ExitCode::SUCCESS)
            }
            Err(err) => {
                eprintln!("error: {}: {err}", location(step));
                if matches!(err, Error::OutcomeUnknown(_)) {
                    eprintln!(
                        "the commit may or may not have been applied: read the keys the script \
                         writes to find out before running it again"
                    );
                    Ok(ExitCode::from(2))
                } else {
                    Ok(explain_not_committed(&err))
                }
            }
        },
    }
}

/// One command before the end of the transaction; its result on `out`.
async fn apply(txn: &mut Transaction, step: &Step, out: &mut impl Write) -> Result<()> {
    match &step.op {
        Op::Get { key, lock } => {
            let value = match lock {
                Lock::None => txn.get(key.as_str()).await?,
                Lock::ForUpdate => txn.get_for_update(key.as_str()).await?,
                Lock::ForShare => txn.get_for_share(key.as_str()).await?,
            };
            match value {
                Some(value) => {
                    out.write_all(&value)?;
                    writeln!(out)?;
                }
                None => {
                    out.flush()?;
                    eprintln!("{}: not found", location(Some(step)));
                }
            }
        }
        Op::Put { key, value } => {
            txn.put(key.as_str(), value.as_str()).await?;
            writeln!(out, "OK")?;
        }
        Op::Del { key } => {
            txn.delete(key.as_str()).await?;
            writeln!(out, "OK")?;
        }
        Op::Scan { start, end, limit } => {
            for pair in txn.scan(start.as_str(), end.as_str(), *limit).await? {
                out.write_all(&pair.key)?;
                out.write_all(b"\t")?;
                out.write_all(&pair.value)?;
                writeln!(out)?;
            }
        }
        Op::Commit | Op::Rollback => unreachable!("parse puts them last only"),
    }
    Ok(())
}

/// A command failed before the end: the transaction is rolled back (its
/// locks released) and the failure explained.
async fn failed(txn: Transaction, step: Option<&Step>, err: anyhow::Error) -> ExitCode {
    let rolled_back = txn.rollback().await.is_ok();
    eprintln!("error: {}: {err:#}", location(step));
    match err.downcast_ref::<Error>() {
        Some(err) if can_run_again(err) => explain_not_committed(err),
        _ => {
            if rolled_back {
                eprintln!(
                    "the transaction was rolled back: nothing of it was applied; fix the cause and \
                     run the script again"
                );
            } else {
                eprintln!(
                    "the transaction was not committed: nothing of it was applied (its locks \
                     expire by themselves within seconds); fix the cause and run the script again"
                );
            }
            ExitCode::from(2)
        }
    }
}

/// What to do after an error that left nothing of the transaction behind.
fn explain_not_committed(err: &Error) -> ExitCode {
    if can_run_again(err) {
        eprintln!(
            "the transaction was not committed and nothing of it was applied; it can be run \
             again: run the script again"
        );
        ExitCode::from(ABORTED)
    } else {
        eprintln!(
            "the transaction was not committed: nothing of it was applied; fix the cause and run \
             the script again"
        );
        ExitCode::from(2)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ops(script: &str) -> Vec<Op> {
        parse(script)
            .unwrap()
            .into_iter()
            .map(|step| step.op)
            .collect()
    }

    fn refused_at(script: &str) -> (usize, String) {
        match parse(script) {
            Err(ParseError::Line { line, message, .. }) => (line, message),
            other => panic!("not refused at a line: {other:?}"),
        }
    }

    #[test]
    fn every_command_parses() {
        let script = "\
# move one unit
  # indented comment

get-for-update stock
get-for-share price
get note
put stock 41
put note  two  words, tabs\tand # kept 
del old
scan a z
scan \"\" \"\" 10
commit
";
        assert_eq!(
            ops(script),
            [
                Op::Get {
                    key: "stock".into(),
                    lock: Lock::ForUpdate
                },
                Op::Get {
                    key: "price".into(),
                    lock: Lock::ForShare
                },
                Op::Get {
                    key: "note".into(),
                    lock: Lock::None
                },
                Op::Put {
                    key: "stock".into(),
                    value: "41".into()
                },
                Op::Put {
                    key: "note".into(),
                    value: "two  words, tabs\tand # kept ".into()
                },
                Op::Del { key: "old".into() },
                Op::Scan {
                    start: "a".into(),
                    end: "z".into(),
                    limit: 0
                },
                Op::Scan {
                    start: "".into(),
                    end: "".into(),
                    limit: 10
                },
                Op::Commit,
            ]
        );
    }

    #[test]
    fn steps_keep_their_line_numbers_and_text() {
        let steps = parse("# header\n\n  put k v  \r\nrollback\r\n").unwrap();
        assert_eq!(steps.len(), 2);
        assert_eq!((steps[0].line, steps[0].text.as_str()), (3, "put k v"));
        assert_eq!(
            steps[0].op,
            Op::Put {
                key: "k".into(),
                value: "v  ".into()
            }
        );
        assert_eq!((steps[1].line, steps[1].op.clone()), (4, Op::Rollback));
    }

    #[test]
    fn a_script_without_an_end_parses_without_one() {
        assert_eq!(
            ops("put a 1\nput b 2"),
            [
                Op::Put {
                    key: "a".into(),
                    value: "1".into()
                },
                Op::Put {
                    key: "b".into(),
                    value: "2".into()
                },
            ]
        );
    }

    #[test]
    fn unknown_commands_are_refused_with_their_line() {
        let (line, message) = refused_at("put a 1\ngett a\ncommit\n");
        assert_eq!(line, 2);
        assert!(message.contains("unknown command \"gett\""), "{message}");
        assert!(message.contains(COMMANDS), "{message}");
        // Case matters, as in the data commands.
        assert_eq!(refused_at("PUT a 1").0, 1);
    }

    #[test]
    fn wrong_arity_is_refused_with_the_usage() {
        for (script, usage) in [
            ("get", "get KEY"),
            ("get a b", "get KEY"),
            ("get-for-update", "get-for-update KEY"),
            ("get-for-share a b", "get-for-share KEY"),
            ("put", "put KEY VALUE"),
            ("put a", "put KEY VALUE"),
            ("put a   ", "put KEY VALUE"),
            ("del", "del KEY"),
            ("del a b", "del KEY"),
            ("scan a", "scan START END [LIMIT]"),
            ("scan a b 1 2", "scan START END [LIMIT]"),
            ("commit now", "commit"),
            ("rollback 1", "rollback"),
        ] {
            let (line, message) = refused_at(&format!("# first\n{script}\n"));
            assert_eq!(line, 2, "{script}");
            assert!(
                message.contains(&format!("`{usage}`")),
                "{script}: {message}"
            );
        }
    }

    #[test]
    fn empty_keys_are_refused() {
        for script in ["get \"\"", "get-for-update \"\"", "put \"\" v", "del \"\""] {
            let (line, message) = refused_at(script);
            assert_eq!(line, 1, "{script}");
            assert!(message.contains("cannot be empty"), "{script}: {message}");
        }
    }

    #[test]
    fn a_bad_limit_is_refused() {
        let (line, message) = refused_at("scan a b ten");
        assert_eq!(line, 1);
        assert!(message.contains("\"ten\""), "{message}");
        assert_eq!(refused_at("scan a b -1").0, 1);
    }

    #[test]
    fn nothing_may_follow_the_end() {
        let (line, message) = refused_at("put a 1\ncommit\n# fine\n\nget a\n");
        assert_eq!(line, 5);
        assert!(message.contains("`commit` on line 2"), "{message}");
        assert_eq!(refused_at("rollback\ncommit").0, 2);
    }

    #[test]
    fn an_empty_script_is_refused() {
        assert_eq!(parse(""), Err(ParseError::Empty));
        assert_eq!(parse("# nothing\n\n   \n"), Err(ParseError::Empty));
    }

    #[test]
    fn parse_errors_name_the_line_and_the_command() {
        let error = parse("put a 1\nput b\n").unwrap_err().to_string();
        assert!(error.starts_with("line 2 (put b): "), "{error}");
        assert!(error.contains("nothing was sent"), "{error}");
    }
}
