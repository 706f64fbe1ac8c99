//! Key spans as `role grant` and `role revoke` name them, and as `role
//! list` shows them. A permission covers `[start, end)`; an empty end means
//! every key from start on.

/// The span of every key that starts with `prefix`: `[prefix, prefix with
/// its last byte raised by one)`. Trailing 0xff bytes carry over (`a\xff`
/// ends at `b`); a prefix of only 0xff bytes, or an empty one, has no end.
pub fn prefix_span(prefix: &[u8]) -> (Vec<u8>, Vec<u8>) {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return (prefix.to_vec(), end);
        }
    }
    (prefix.to_vec(), Vec::new())
}

/// `[start, end)` with the keys quoted and escaped as ASCII; an empty end
/// shows as `end`.
pub fn describe(start: &[u8], end: &[u8]) -> String {
    let end = match end.is_empty() {
        true => "end".to_owned(),
        false => quoted(end),
    };
    format!("[{}, {end})", quoted(start))
}

fn quoted(key: &[u8]) -> String {
    format!("\"{}\"", key.escape_ascii())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_prefix_ends_after_its_last_key() {
        assert_eq!(prefix_span(b"a/"), (b"a/".to_vec(), b"a0".to_vec()));
        assert_eq!(prefix_span(b"a"), (b"a".to_vec(), b"b".to_vec()));
        assert_eq!(prefix_span(b"a\xff"), (b"a\xff".to_vec(), b"b".to_vec()));
        assert_eq!(
            prefix_span(b"a\xfe\xff\xff"),
            (b"a\xfe\xff\xff".to_vec(), b"a\xff".to_vec())
        );
    }

    #[test]
    fn a_prefix_without_a_next_key_has_no_end() {
        assert_eq!(prefix_span(b""), (Vec::new(), Vec::new()));
        assert_eq!(prefix_span(b"\xff"), (b"\xff".to_vec(), Vec::new()));
        assert_eq!(prefix_span(b"\xff\xff"), (b"\xff\xff".to_vec(), Vec::new()));
    }

    #[test]
    fn every_key_with_the_prefix_is_inside_and_no_other() {
        for prefix in [&b"a/"[..], b"a\xff", b"\x00", b"z\xff\xff"] {
            let (start, end) = prefix_span(prefix);
            let inside = |key: &[u8]| key >= &start[..] && (end.is_empty() || key < &end[..]);
            for suffix in [&b""[..], b"\x00", b"x", b"\xff\xff\xff"] {
                let key = [prefix, suffix].concat();
                assert!(inside(&key), "{key:?} in {prefix:?}");
            }
            let mut after = end.clone();
            after.push(0);
            assert!(!inside(&end) && !inside(&after), "{prefix:?}");
        }
    }

    #[test]
    fn spans_show_escaped() {
        assert_eq!(describe(b"a/", b"a0"), r#"["a/", "a0")"#);
        assert_eq!(describe(b"", b""), r#"["", end)"#);
        assert_eq!(describe(b"\xff\n", b""), r#"["\xff\n", end)"#);
    }
}
