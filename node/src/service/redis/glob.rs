//! Redis's glob patterns (KEYS, SCAN MATCH): `*`, `?`, `[abc]`, `[^a]`,
//! `[a-z]` and `\` escapes, matched on bytes as Redis's `stringmatchlen`.

/// Whether `text` matches `pattern`.
pub fn matches(pattern: &[u8], text: &[u8]) -> bool {
    match pattern.split_first() {
        None => text.is_empty(),
        Some((b'*', rest)) => {
            // Runs of stars are one star.
            let rest = trim_stars(rest);
            if rest.is_empty() {
                return true;
            }
            (0..=text.len()).any(|skip| matches(rest, &text[skip..]))
        }
        Some((b'?', rest)) => !text.is_empty() && matches(rest, &text[1..]),
        Some((b'[', rest)) => {
            let Some((&first, tail)) = text.split_first() else {
                return false;
            };
            let (matched, after) = class(rest, first);
            matched && matches(after, tail)
        }
        Some((b'\\', rest)) if !rest.is_empty() => {
            text.first() == Some(&rest[0]) && matches(&rest[1..], &text[1..])
        }
        Some((&literal, rest)) => text.first() == Some(&literal) && matches(rest, &text[1..]),
    }
}

fn trim_stars(mut pattern: &[u8]) -> &[u8] {
    while let Some((b'*', rest)) = pattern.split_first() {
        pattern = rest;
    }
    pattern
}

/// Whether `byte` is in the class that `pattern` starts (after its `[`),
/// and the pattern after the class's `]`.
fn class(mut pattern: &[u8], byte: u8) -> (bool, &[u8]) {
    let negated = pattern.first() == Some(&b'^');
    if negated {
        pattern = &pattern[1..];
    }
    let mut found = false;
    loop {
        match pattern {
            [] => break,
            [b']', rest @ ..] => {
                pattern = rest;
                break;
            }
            [b'\\', escaped, rest @ ..] => {
                found |= *escaped == byte;
                pattern = rest;
            }
            [low, b'-', high, rest @ ..] if *high != b']' => {
                let (low, high) = if low <= high {
                    (*low, *high)
                } else {
                    (*high, *low)
                };
                found |= (low..=high).contains(&byte);
                pattern = rest;
            }
            [literal, rest @ ..] => {
                found |= *literal == byte;
                pattern = rest;
            }
        }
    }
    (found != negated, pattern)
}

/// The bytes every match starts with (the pattern up to its first special
/// character), so a scan can read only the keys that may match.
pub fn literal_prefix(pattern: &[u8]) -> Vec<u8> {
    let mut prefix = Vec::new();
    let mut rest = pattern;
    while let Some((&byte, tail)) = rest.split_first() {
        match byte {
            b'*' | b'?' | b'[' => break,
            b'\\' if !tail.is_empty() => {
                prefix.push(tail[0]);
                rest = &tail[1..];
            }
            _ => {
                prefix.push(byte);
                rest = tail;
            }
        }
    }
    prefix
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_match_as_redis_matches_them() {
        let cases: &[(&str, &str, bool)] = &[
            ("*", "anything", true),
            ("*", "", true),
            ("h?llo", "hello", true),
            ("h?llo", "hllo", false),
            ("h*llo", "heeeello", true),
            ("h[ae]llo", "hallo", true),
            ("h[ae]llo", "hillo", false),
            ("h[^e]llo", "hallo", true),
            ("h[^e]llo", "hello", false),
            ("h[a-b]llo", "hbllo", true),
            ("h[a-b]llo", "hcllo", false),
            ("a\\*b", "a*b", true),
            ("a\\*b", "axb", false),
            ("user:*:name", "user:42:name", true),
            ("user:*:name", "user:42:mail", false),
            ("**a", "ba", true),
        ];
        for (pattern, text, expected) in cases {
            assert_eq!(
                matches(pattern.as_bytes(), text.as_bytes()),
                *expected,
                "{pattern} {text}"
            );
        }
    }

    #[test]
    fn prefixes_bound_the_scan() {
        assert_eq!(literal_prefix(b"user:*"), b"user:");
        assert_eq!(literal_prefix(b"a\\*b*"), b"a*b");
        assert_eq!(literal_prefix(b"*"), b"");
        let end = crate::range::descriptor::prefix_end;
        assert_eq!(end(b"ab"), b"ac");
        assert_eq!(end(b"a\xff"), b"b");
        assert_eq!(end(b"\xff"), b"");
    }
}
