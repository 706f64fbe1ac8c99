//! RESP frames, apart from any I/O: replies written in the protocol the
//! client chose (RESP3 types fall back to their RESP2 forms, as Redis
//! writes them), requests read the way Redis reads them (multibulk arrays
//! of bulk strings, or inline lines as typed into telnet or redis-cli),
//! with the same limits and the same protocol error texts, and whole
//! frames of every type read back (replies, tests).
//!
//! Parsing keeps no state between calls: each call walks only the header
//! lines of the frame at the front of the buffer and jumps over bulk data
//! by its length, so a large value arriving in many reads costs O(headers)
//! per read, and nothing is copied or allocated until the frame is whole.

use bytes::{Buf, BufMut, Bytes, BytesMut};

/// One RESP value. RESP3 types are written in RESP2 form to a RESP2 client.
#[derive(Debug, Clone, PartialEq)]
pub enum Frame {
    /// `+OK`
    Simple(String),
    /// `-ERR ...`: the text without the leading `-`, starting with the
    /// error kind (`ERR`, `WRONGTYPE`, ...).
    Error(String),
    /// `:1`
    Integer(i64),
    /// `$3\r\nfoo`
    Bulk(Bytes),
    /// RESP2 `$-1`, RESP3 `_`.
    Null,
    /// RESP2 `*-1` (EXEC aborted by WATCH), RESP3 `_`.
    NullArray,
    /// `*N`
    Array(Vec<Frame>),
    /// RESP3 `%N`; RESP2 a flat array of 2N.
    Map(Vec<(Frame, Frame)>),
    /// RESP3 `~N`; RESP2 an array.
    Set(Vec<Frame>),
    /// RESP3 `,1.5`; RESP2 the same text as a bulk string.
    Double(f64),
    /// RESP3 `#t` / `#f`; RESP2 the integer 1 / 0.
    Boolean(bool),
    /// RESP3 `=N\r\ntxt:...` (INFO, CLIENT INFO); RESP2 a bulk string. Holds
    /// the text without its `txt:` format prefix.
    Verbatim(String),
}

impl Frame {
    /// `+OK`
    pub fn ok() -> Frame {
        Frame::Simple("OK".into())
    }

    /// An error reply; the text starts with its kind: `"ERR syntax error"`.
    pub fn error(kind_and_text: impl Into<String>) -> Frame {
        Frame::Error(kind_and_text.into())
    }

    /// A bulk string.
    pub fn bulk(data: impl Into<Bytes>) -> Frame {
        Frame::Bulk(data.into())
    }
}

/// The protocol a client speaks: RESP2 until it switches with `HELLO 3`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Protocol {
    #[default]
    Resp2,
    Resp3,
}

/// What one request may hold; past these the connection answers a
/// protocol error and closes, as Redis does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameLimits {
    /// The largest bulk string argument (Redis `proto-max-bulk-len`).
    pub max_bulk_bytes: usize,
    /// The most arguments in one request, the command name included.
    pub max_arguments: usize,
    /// The longest inline request, and the longest `*N` or `$N` line.
    pub max_inline_bytes: usize,
}

impl Default for FrameLimits {
    /// Redis's own limits.
    fn default() -> Self {
        FrameLimits {
            max_bulk_bytes: 512 * 1024 * 1024,
            max_arguments: 1024 * 1024,
            max_inline_bytes: 64 * 1024,
        }
    }
}

/// Bytes that are not RESP. Fatal for the connection: after one, the
/// stream can no longer be split into requests.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// The text is Redis's own where it has one ("Protocol error: ...").
    #[error("{0}")]
    Protocol(String),
}

impl FrameError {
    /// The reply to send before closing: `-ERR <text>`, as Redis answers.
    pub fn to_reply(&self) -> Frame {
        match self {
            FrameError::Protocol(text) => Frame::Error(format!("ERR {text}")),
        }
    }
}

fn protocol_error(text: impl Into<String>) -> FrameError {
    FrameError::Protocol(text.into())
}

const INVALID_MULTIBULK: &str = "Protocol error: invalid multibulk length";
const INVALID_BULK: &str = "Protocol error: invalid bulk length";
const TOO_BIG_MULTIBULK: &str = "Protocol error: too big mbulk count string";
const TOO_BIG_BULK: &str = "Protocol error: too big bulk count string";
const TOO_BIG_INLINE: &str = "Protocol error: too big inline request";
const UNBALANCED_QUOTES: &str = "Protocol error: unbalanced quotes in request";
// Redis skips the two bytes after bulk data without looking; we check them,
// since anything else there means the lengths and the data disagree.
const MISSING_CRLF: &str = "Protocol error: bulk data not followed by CRLF";

const CRLF: &[u8] = b"\r\n";

// ---------------------------------------------------------------------------
// Writing

/// Appends `frame` to `out` in `protocol`'s wire format.
pub fn encode(frame: &Frame, protocol: Protocol, out: &mut BytesMut) {
    let resp3 = protocol == Protocol::Resp3;
    match frame {
        Frame::Simple(text) => put_line(out, b'+', text),
        Frame::Error(text) => put_line(out, b'-', text),
        Frame::Integer(n) => put_number(out, b':', *n < 0, n.unsigned_abs()),
        Frame::Bulk(data) => put_bulk(out, data),
        Frame::Null | Frame::NullArray if resp3 => out.put_slice(b"_\r\n"),
        Frame::Null => out.put_slice(b"$-1\r\n"),
        Frame::NullArray => out.put_slice(b"*-1\r\n"),
        Frame::Array(items) => {
            put_len(out, b'*', items.len());
            for item in items {
                encode(item, protocol, out);
            }
        }
        Frame::Map(pairs) => {
            if resp3 {
                put_len(out, b'%', pairs.len());
            } else {
                put_len(out, b'*', pairs.len() * 2);
            }
            for (key, value) in pairs {
                encode(key, protocol, out);
                encode(value, protocol, out);
            }
        }
        Frame::Set(items) => {
            put_len(out, if resp3 { b'~' } else { b'*' }, items.len());
            for item in items {
                encode(item, protocol, out);
            }
        }
        Frame::Double(d) => {
            let text = format_double(*d);
            if resp3 {
                out.put_u8(b',');
                out.put_slice(text.as_bytes());
                out.put_slice(CRLF);
            } else {
                put_bulk(out, text.as_bytes());
            }
        }
        Frame::Boolean(b) if resp3 => out.put_slice(if *b { b"#t\r\n" } else { b"#f\r\n" }),
        Frame::Boolean(b) => put_len(out, b':', usize::from(*b)),
        Frame::Verbatim(text) if resp3 => {
            put_len(out, b'=', text.len() + 4);
            out.put_slice(b"txt:");
            out.put_slice(text.as_bytes());
            out.put_slice(CRLF);
        }
        Frame::Verbatim(text) => put_bulk(out, text.as_bytes()),
    }
}

/// A simple string or error line. A CR or LF inside would end the line
/// early and desynchronize the client, so they become spaces (as Redis
/// does for error texts).
fn put_line(out: &mut BytesMut, prefix: u8, text: &str) {
    out.reserve(text.len() + 3);
    out.put_u8(prefix);
    let start = out.len();
    out.put_slice(text.as_bytes());
    for b in &mut out[start..] {
        if *b == b'\r' || *b == b'\n' {
            *b = b' ';
        }
    }
    out.put_slice(CRLF);
}

fn put_bulk(out: &mut BytesMut, data: &[u8]) {
    put_len(out, b'$', data.len());
    out.reserve(data.len() + 2);
    out.put_slice(data);
    out.put_slice(CRLF);
}

fn put_len(out: &mut BytesMut, prefix: u8, len: usize) {
    put_number(out, prefix, false, len as u64);
}

/// `<prefix>[-]<digits>\r\n`, formatted by hand: this runs for every
/// reply and every element of every array.
fn put_number(out: &mut BytesMut, prefix: u8, negative: bool, mut magnitude: u64) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (magnitude % 10) as u8;
        magnitude /= 10;
        if magnitude == 0 {
            break;
        }
    }
    out.reserve(digits.len() - at + 4);
    out.put_u8(prefix);
    if negative {
        out.put_u8(b'-');
    }
    out.put_slice(&digits[at..]);
    out.put_slice(CRLF);
}

/// A double as Redis 7.2+ writes it (`d2string`): `nan`, `inf`, `-inf`,
/// `0`, `-0`; integral values up to 2^62 as integers (`3`); others in
/// the shortest digits that read back to the same double, laid out as
/// Redis's `fpconv_dtoa` lays them out (`1.5`, `0.0001`, `1e+300`,
/// `1.5e-10`), so clients parsing Redis's replies parse ours.
fn format_double(d: f64) -> String {
    if d.is_nan() {
        return "nan".into();
    }
    if d.is_infinite() {
        return if d > 0.0 { "inf" } else { "-inf" }.into();
    }
    if d == 0.0 {
        return if d.is_sign_negative() { "-0" } else { "0" }.into();
    }
    // Redis's double2ll: within ±LLONG_MAX/2 an integral double prints as
    // the integer it is exactly.
    let limit = (i64::MAX / 2) as f64;
    if (-limit..=limit).contains(&d) && d.fract() == 0.0 {
        return (d as i64).to_string();
    }

    // `{:e}` gives the shortest round-trip digits: "1.2345e-7".
    let scientific = format!("{:e}", d.abs());
    let Some((mantissa, exponent)) = scientific.split_once('e') else {
        return scientific;
    };
    let Ok(exponent) = exponent.parse::<i32>() else {
        return scientific;
    };
    let digits: String = mantissa.chars().filter(|c| *c != '.').collect();
    let ndigits = digits.len() as i32;
    // The value is digits × 10^k.
    let k = exponent - (ndigits - 1);
    let exp = exponent.abs();

    let mut text = String::with_capacity(32);
    if d < 0.0 {
        text.push('-');
    }
    if k >= 0 && exp < ndigits + 7 {
        text.push_str(&digits);
        text.extend(std::iter::repeat_n('0', k as usize));
    } else if k < 0 && (k > -7 || exp < 4) {
        let point = ndigits + k;
        if point <= 0 {
            text.push_str("0.");
            text.extend(std::iter::repeat_n('0', (-point) as usize));
            text.push_str(&digits);
        } else {
            let (whole, fraction) = digits.split_at(point as usize);
            text.push_str(whole);
            text.push('.');
            text.push_str(fraction);
        }
    } else {
        let (first, rest) = digits.split_at(1);
        text.push_str(first);
        if !rest.is_empty() {
            text.push('.');
            text.push_str(rest);
        }
        text.push('e');
        text.push(if exponent < 0 { '-' } else { '+' });
        text.push_str(&exp.to_string());
    }
    text
}

// ---------------------------------------------------------------------------
// Reading requests

/// Takes one whole request off the front of `buf`: the command name and
/// its arguments. `Ok(None)` while the request is still arriving, with
/// nothing consumed. Empty requests (a blank inline line, `*0`, `*-1`)
/// are consumed and skipped, as Redis skips them, without a reply.
///
/// Bulk arguments share `buf`'s memory rather than being copied.
pub fn parse_request(
    buf: &mut BytesMut,
    limits: &FrameLimits,
) -> Result<Option<Vec<Bytes>>, FrameError> {
    loop {
        let Some(&first) = buf.first() else {
            return Ok(None);
        };
        // Like Redis: a request that does not start with '*' is inline.
        let request = if first == b'*' {
            take_multibulk(buf, limits)?
        } else {
            take_inline(buf, limits)?
        };
        match request {
            Some(args) if args.is_empty() => continue,
            other => return Ok(other),
        }
    }
}

fn take_multibulk(
    buf: &mut BytesMut,
    limits: &FrameLimits,
) -> Result<Option<Vec<Bytes>>, FrameError> {
    // Measure first: a request still arriving costs a walk over its header
    // lines, but no allocation and no copy.
    let mut count = 0;
    let Some(end) = walk_multibulk(buf, limits, |_, _| count += 1)? else {
        return Ok(None);
    };
    let request = buf.split_to(end).freeze();
    let mut args = Vec::with_capacity(count);
    walk_multibulk(&request, limits, |start, len| {
        args.push(request.slice(start..start + len));
    })?;
    Ok(Some(args))
}

/// Walks the multibulk request at the front of `buf` (`*N` then N bulk
/// strings), calling `on_arg` with each argument's offset and length.
/// Returns the request's length, or None while it is incomplete.
fn walk_multibulk(
    buf: &[u8],
    limits: &FrameLimits,
    mut on_arg: impl FnMut(usize, usize),
) -> Result<Option<usize>, FrameError> {
    let Some((count, mut pos)) = header(buf, 1, limits, TOO_BIG_MULTIBULK, INVALID_MULTIBULK)?
    else {
        return Ok(None);
    };
    // Redis reads `*0` and `*-N` as an empty request.
    let Ok(count) = usize::try_from(count) else {
        return Ok(Some(pos));
    };
    if count > limits.max_arguments {
        return Err(protocol_error(INVALID_MULTIBULK));
    }
    for _ in 0..count {
        match buf.get(pos) {
            None => return Ok(None),
            Some(b'$') => {}
            Some(&other) => {
                return Err(protocol_error(format!(
                    "Protocol error: expected '$', got '{}'",
                    printable(other)
                )))
            }
        }
        let Some((len, start)) = header(buf, pos + 1, limits, TOO_BIG_BULK, INVALID_BULK)? else {
            return Ok(None);
        };
        let len = usize::try_from(len)
            .ok()
            .filter(|&len| len <= limits.max_bulk_bytes)
            .ok_or_else(|| protocol_error(INVALID_BULK))?;
        let Some(end) = bulk_end(buf, start, len)? else {
            return Ok(None);
        };
        on_arg(start, len);
        pos = end;
    }
    Ok(Some(pos))
}

/// The number on the `*N` or `$N` line starting at `start`, and where the
/// next line begins; None while the line is incomplete.
fn header(
    buf: &[u8],
    start: usize,
    limits: &FrameLimits,
    too_long: &str,
    invalid: &str,
) -> Result<Option<(i64, usize)>, FrameError> {
    match find_line(buf, start, limits.max_inline_bytes) {
        Line::Whole { text, next } => match parse_i64(text) {
            Some(n) => Ok(Some((n, next))),
            None => Err(protocol_error(invalid)),
        },
        Line::Partial => Ok(None),
        Line::TooLong => Err(protocol_error(too_long)),
        Line::BadEnd => Err(protocol_error(invalid)),
    }
}

/// Where the bulk data of `len` bytes at `start` and its CRLF end; None
/// while they are still arriving.
fn bulk_end(buf: &[u8], start: usize, len: usize) -> Result<Option<usize>, FrameError> {
    let Some(end) = start
        .checked_add(len)
        .and_then(|data_end| data_end.checked_add(2))
    else {
        return Err(protocol_error(INVALID_BULK));
    };
    match buf.get(end - 2..end) {
        None => Ok(None),
        Some(trailer) if trailer == CRLF => Ok(Some(end)),
        Some(_) => Err(protocol_error(MISSING_CRLF)),
    }
}

/// An inline request: one line of words, ended by LF or CRLF.
fn take_inline(buf: &mut BytesMut, limits: &FrameLimits) -> Result<Option<Vec<Bytes>>, FrameError> {
    let max = limits.max_inline_bytes;
    let window = &buf[..buf.len().min(max.saturating_add(2))];
    let Some(newline) = window.iter().position(|&b| b == b'\n') else {
        // Fail as soon as the line is sure to be too long, rather than
        // buffering without bound while waiting for its end.
        let seen = window.strip_suffix(b"\r").unwrap_or(window);
        if seen.len() > max {
            return Err(protocol_error(TOO_BIG_INLINE));
        }
        return Ok(None);
    };
    let line = &buf[..newline];
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    if line.len() > max {
        return Err(protocol_error(TOO_BIG_INLINE));
    }
    let args = split_args(line).ok_or_else(|| protocol_error(UNBALANCED_QUOTES))?;
    buf.advance(newline + 1);
    Ok(Some(args))
}

/// Splits an inline line into words the way Redis and redis-cli do
/// (`sdssplitargs`), so what works typed into redis-cli works here:
/// words separated by blanks; "double quotes" with `\n \r \t \b \a \xHH`
/// and `\<char>` escapes; 'single quotes' with only `\'`; a quote may open
/// mid-word (`a"b c"` is `ab c`) but must close at a blank or the end.
/// None for unbalanced quotes.
fn split_args(line: &[u8]) -> Option<Vec<Bytes>> {
    let mut args = Vec::new();
    let mut i = 0;
    loop {
        while line.get(i).is_some_and(|&b| is_blank(b)) {
            i += 1;
        }
        if i >= line.len() {
            return Some(args);
        }
        let mut word = Vec::new();
        let mut quote: Option<u8> = None;
        loop {
            let Some(&b) = line.get(i) else {
                if quote.is_some() {
                    return None;
                }
                break;
            };
            let next = line.get(i + 1).copied();
            match quote {
                None if is_blank(b) => break,
                None => {
                    if b == b'"' || b == b'\'' {
                        quote = Some(b);
                    } else {
                        word.push(b);
                    }
                    i += 1;
                }
                Some(b'"') => {
                    if let Some(byte) = hex_escape(line, i) {
                        word.push(byte);
                        i += 4;
                    } else if let (b'\\', Some(escaped)) = (b, next) {
                        word.push(match escaped {
                            b'n' => b'\n',
                            b'r' => b'\r',
                            b't' => b'\t',
                            b'b' => 0x08,
                            b'a' => 0x07,
                            other => other,
                        });
                        i += 2;
                    } else if b == b'"' {
                        if next.is_some_and(|n| !is_blank(n)) {
                            return None;
                        }
                        i += 1;
                        break;
                    } else {
                        word.push(b);
                        i += 1;
                    }
                }
                Some(_) => {
                    if b == b'\\' && next == Some(b'\'') {
                        word.push(b'\'');
                        i += 2;
                    } else if b == b'\'' {
                        if next.is_some_and(|n| !is_blank(n)) {
                            return None;
                        }
                        i += 1;
                        break;
                    } else {
                        word.push(b);
                        i += 1;
                    }
                }
            }
        }
        args.push(Bytes::from(word));
    }
}

/// C's `isspace`, which is what separates inline words in Redis.
fn is_blank(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c)
}

/// The byte written `\xHH` at `line[i..]`, if that is what is there.
fn hex_escape(line: &[u8], i: usize) -> Option<u8> {
    let Some(&[b'\\', b'x', high, low]) = line.get(i..i + 4) else {
        return None;
    };
    let digit = |b: u8| (b as char).to_digit(16);
    Some((digit(high)? * 16 + digit(low)?) as u8)
}

/// A byte for an error text: itself when printable, escaped otherwise
/// (the text must stay a valid one-line string).
fn printable(b: u8) -> String {
    if b.is_ascii_graphic() || b == b' ' {
        char::from(b).to_string()
    } else {
        format!("\\x{b:02x}")
    }
}

/// A decimal as Redis's `string2ll` reads one: an optional '-', digits
/// without leading zeros (but "0"), nothing else, no overflow.
fn parse_i64(text: &[u8]) -> Option<i64> {
    let (negative, digits) = match text.strip_prefix(b"-") {
        Some(digits) => (true, digits),
        None => (false, text),
    };
    match digits {
        [] => return None,
        [b'0'] if !negative => return Some(0),
        [b'0', ..] => return None,
        _ => {}
    }
    // Accumulate downwards, since i64::MIN has no positive counterpart.
    let mut value: i64 = 0;
    for &d in digits {
        if !d.is_ascii_digit() {
            return None;
        }
        value = value.checked_mul(10)?.checked_sub(i64::from(d - b'0'))?;
    }
    if negative {
        Some(value)
    } else {
        value.checked_neg()
    }
}

enum Line<'a> {
    /// The line's text (without CRLF), and where the next line begins.
    Whole { text: &'a [u8], next: usize },
    /// No CR yet.
    Partial,
    /// No CR within the limit.
    TooLong,
    /// A CR not followed by LF.
    BadEnd,
}

/// The CRLF-ended line starting at `start`, looking no further than `max`
/// bytes for its end so that a peer cannot make us scan without bound.
fn find_line(buf: &[u8], start: usize, max: usize) -> Line<'_> {
    let rest = buf.get(start..).unwrap_or_default();
    let window = &rest[..rest.len().min(max.saturating_add(1))];
    match window.iter().position(|&b| b == b'\r') {
        Some(cr) => match rest.get(cr + 1) {
            Some(b'\n') => Line::Whole {
                text: &rest[..cr],
                next: start + cr + 2,
            },
            Some(_) => Line::BadEnd,
            None => Line::Partial,
        },
        None if rest.len() > max => Line::TooLong,
        None => Line::Partial,
    }
}

// ---------------------------------------------------------------------------
// Reading whole frames (replies, tests)

/// Deeper nesting than any reply needs; bounds the recursion a peer can
/// make us do.
const MAX_DEPTH: usize = 128;

/// Takes one whole frame of any type off the front of `buf`; `Ok(None)`
/// while it is still arriving, with nothing consumed. RESP3 `_` reads as
/// [`Frame::Null`]; a verbatim string's format prefix is dropped.
pub fn parse_frame(buf: &mut BytesMut) -> Result<Option<Frame>, FrameError> {
    // Measure first, so a frame still arriving is neither copied nor built.
    let Some(end) = frame_end(buf, 0, 0)? else {
        return Ok(None);
    };
    let src = buf.split_to(end).freeze();
    let (frame, _) = build_frame(&src, 0)?;
    Ok(Some(frame))
}

/// Where the frame at `pos` ends; None while incomplete. Checks structure
/// only; the contents of scalars are checked when the frame is built.
fn frame_end(buf: &[u8], pos: usize, depth: usize) -> Result<Option<usize>, FrameError> {
    let Some(&kind) = buf.get(pos) else {
        return Ok(None);
    };
    let Some((line, next)) = reply_line(buf, pos + 1)? else {
        return Ok(None);
    };
    match kind {
        b'+' | b'-' | b':' | b'_' | b',' | b'#' => Ok(Some(next)),
        b'$' | b'=' => match reply_len(line, kind == b'$', INVALID_BULK)? {
            None => Ok(Some(next)),
            Some(len) => bulk_end(buf, next, len),
        },
        b'*' | b'~' | b'%' => {
            let Some(count) = element_count(kind, line)? else {
                return Ok(Some(next));
            };
            if depth >= MAX_DEPTH {
                return Err(protocol_error("Protocol error: frames nested too deeply"));
            }
            let mut pos = next;
            for _ in 0..count {
                match frame_end(buf, pos, depth + 1)? {
                    Some(end) => pos = end,
                    None => return Ok(None),
                }
            }
            Ok(Some(pos))
        }
        other => Err(protocol_error(format!(
            "Protocol error: unknown frame type '{}'",
            printable(other)
        ))),
    }
}

/// Builds the frame at `pos` of `src`, which [`frame_end`] has measured.
fn build_frame(src: &Bytes, pos: usize) -> Result<(Frame, usize), FrameError> {
    // Measured already, so running out here would be a bug of ours; it
    // is still an error rather than a panic.
    let truncated = || protocol_error("Protocol error: truncated frame");
    let kind = *src.get(pos).ok_or_else(truncated)?;
    let (line, next) = reply_line(src, pos + 1)?.ok_or_else(truncated)?;
    let scalar = |frame| Ok((frame, next));
    match kind {
        // Lossy: a reply's text may quote a binary key, and failing the
        // whole frame over it would help no one.
        b'+' => scalar(Frame::Simple(String::from_utf8_lossy(line).into_owned())),
        b'-' => scalar(Frame::Error(String::from_utf8_lossy(line).into_owned())),
        b':' => match parse_i64(line) {
            Some(n) => scalar(Frame::Integer(n)),
            None => Err(protocol_error("Protocol error: invalid integer")),
        },
        b'_' if line.is_empty() => scalar(Frame::Null),
        b'_' => Err(protocol_error("Protocol error: invalid null")),
        b',' => match std::str::from_utf8(line)
            .ok()
            .and_then(|t| t.parse::<f64>().ok())
        {
            Some(d) => scalar(Frame::Double(d)),
            None => Err(protocol_error("Protocol error: invalid double")),
        },
        b'#' => match line {
            b"t" => scalar(Frame::Boolean(true)),
            b"f" => scalar(Frame::Boolean(false)),
            _ => Err(protocol_error("Protocol error: invalid boolean")),
        },
        b'$' | b'=' => {
            let Some(len) = reply_len(line, kind == b'$', INVALID_BULK)? else {
                return scalar(Frame::Null);
            };
            let end = bulk_end(src, next, len)?.ok_or_else(truncated)?;
            let data = src.slice(next..next + len);
            if kind == b'$' {
                return Ok((Frame::Bulk(data), end));
            }
            match data.get(3) {
                Some(b':') => {
                    let text = String::from_utf8_lossy(&data[4..]).into_owned();
                    Ok((Frame::Verbatim(text), end))
                }
                _ => Err(protocol_error("Protocol error: invalid verbatim string")),
            }
        }
        b'*' | b'~' | b'%' => {
            let Some(count) = element_count(kind, line)? else {
                return scalar(Frame::NullArray);
            };
            let mut items = Vec::with_capacity(count);
            let mut pos = next;
            for _ in 0..count {
                let (item, end) = build_frame(src, pos)?;
                items.push(item);
                pos = end;
            }
            let frame = match kind {
                b'*' => Frame::Array(items),
                b'~' => Frame::Set(items),
                _ => {
                    let mut items = items.into_iter();
                    let mut pairs = Vec::with_capacity(count / 2);
                    while let (Some(key), Some(value)) = (items.next(), items.next()) {
                        pairs.push((key, value));
                    }
                    Frame::Map(pairs)
                }
            };
            Ok((frame, pos))
        }
        other => Err(protocol_error(format!(
            "Protocol error: unknown frame type '{}'",
            printable(other)
        ))),
    }
}

/// A reply's header line; replies come from peers we chose, so no limit.
fn reply_line(buf: &[u8], start: usize) -> Result<Option<(&[u8], usize)>, FrameError> {
    match find_line(buf, start, usize::MAX) {
        Line::Whole { text, next } => Ok(Some((text, next))),
        Line::Partial | Line::TooLong => Ok(None),
        Line::BadEnd => Err(protocol_error("Protocol error: expected CRLF")),
    }
}

/// A length line: Some(len), or None for `-1` where a null is allowed.
fn reply_len(line: &[u8], nullable: bool, invalid: &str) -> Result<Option<usize>, FrameError> {
    match parse_i64(line) {
        Some(-1) if nullable => Ok(None),
        Some(n) => usize::try_from(n)
            .map(Some)
            .map_err(|_| protocol_error(invalid)),
        None => Err(protocol_error(invalid)),
    }
}

/// How many frames follow an aggregate's header (a map's pairs count
/// twice); None for RESP2's null array.
fn element_count(kind: u8, line: &[u8]) -> Result<Option<usize>, FrameError> {
    let Some(len) = reply_len(line, kind == b'*', INVALID_MULTIBULK)? else {
        return Ok(None);
    };
    if kind == b'%' {
        len.checked_mul(2)
            .map(Some)
            .ok_or_else(|| protocol_error(INVALID_MULTIBULK))
    } else {
        Ok(Some(len))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encoded(frame: &Frame, protocol: Protocol) -> Vec<u8> {
        let mut out = BytesMut::new();
        encode(frame, protocol, &mut out);
        out.to_vec()
    }

    fn both(frame: &Frame) -> (Vec<u8>, Vec<u8>) {
        (
            encoded(frame, Protocol::Resp2),
            encoded(frame, Protocol::Resp3),
        )
    }

    fn bulk(s: &str) -> Frame {
        Frame::bulk(Bytes::copy_from_slice(s.as_bytes()))
    }

    /// Parses exactly one frame from `bytes`, all of them.
    fn parse_one(bytes: &[u8]) -> Result<Frame, FrameError> {
        let mut buf = BytesMut::from(bytes);
        let frame = parse_frame(&mut buf)?.expect("whole frame");
        assert!(buf.is_empty(), "left over: {buf:?}");
        Ok(frame)
    }

    fn requests(bytes: &[u8]) -> Result<Vec<Vec<Bytes>>, FrameError> {
        requests_with(bytes, &FrameLimits::default())
    }

    fn requests_with(bytes: &[u8], limits: &FrameLimits) -> Result<Vec<Vec<Bytes>>, FrameError> {
        let mut buf = BytesMut::from(bytes);
        let mut out = Vec::new();
        while let Some(request) = parse_request(&mut buf, limits)? {
            out.push(request);
        }
        Ok(out)
    }

    fn args(words: &[&str]) -> Vec<Bytes> {
        words
            .iter()
            .map(|w| Bytes::copy_from_slice(w.as_bytes()))
            .collect()
    }

    fn protocol_err(text: &str) -> FrameError {
        FrameError::Protocol(text.into())
    }

    fn every_frame() -> Vec<Frame> {
        vec![
            Frame::ok(),
            Frame::Simple(String::new()),
            Frame::error("ERR unknown command 'FOO'"),
            Frame::Integer(0),
            Frame::Integer(-1),
            Frame::Integer(i64::MAX),
            Frame::Integer(i64::MIN),
            bulk("foo"),
            bulk(""),
            Frame::bulk(Bytes::from_static(b"\r\n\0\xff binary")),
            Frame::Null,
            Frame::NullArray,
            Frame::Array(vec![]),
            Frame::Array(vec![bulk("a"), Frame::Integer(2), Frame::Null]),
            Frame::Array(vec![
                Frame::Array(vec![bulk("nested")]),
                Frame::Array(vec![]),
            ]),
            Frame::Map(vec![]),
            Frame::Map(vec![
                (bulk("server"), bulk("zdb")),
                (bulk("proto"), Frame::Integer(3)),
            ]),
            Frame::Set(vec![bulk("x"), bulk("y")]),
            Frame::Double(1.5),
            Frame::Double(-3.0),
            Frame::Double(f64::INFINITY),
            Frame::Double(f64::NEG_INFINITY),
            Frame::Double(0.1),
            Frame::Double(1e300),
            Frame::Boolean(true),
            Frame::Boolean(false),
            Frame::Verbatim("# Server\r\nzdb_version:1\r\n".into()),
            Frame::Verbatim(String::new()),
        ]
    }

    /// What a RESP2 client sees of `frame`.
    fn downgraded(frame: &Frame) -> Frame {
        match frame {
            Frame::Map(pairs) => Frame::Array(
                pairs
                    .iter()
                    .flat_map(|(k, v)| [downgraded(k), downgraded(v)])
                    .collect(),
            ),
            Frame::Set(items) | Frame::Array(items) => {
                Frame::Array(items.iter().map(downgraded).collect())
            }
            Frame::Double(d) => bulk(&format_double(*d)),
            Frame::Boolean(b) => Frame::Integer(i64::from(*b)),
            Frame::Verbatim(text) => bulk(text),
            other => other.clone(),
        }
    }

    // --- writing ---------------------------------------------------------

    #[test]
    fn scalars_are_written_exactly() {
        let same =
            |frame: Frame, wire: &[u8]| assert_eq!(both(&frame), (wire.to_vec(), wire.to_vec()));
        same(Frame::ok(), b"+OK\r\n");
        same(Frame::error("ERR bad"), b"-ERR bad\r\n");
        same(Frame::Integer(42), b":42\r\n");
        same(Frame::Integer(-7), b":-7\r\n");
        same(Frame::Integer(i64::MIN), b":-9223372036854775808\r\n");
        same(bulk("foo"), b"$3\r\nfoo\r\n");
        same(bulk(""), b"$0\r\n\r\n");
        same(
            Frame::Array(vec![bulk("a"), Frame::Integer(1)]),
            b"*2\r\n$1\r\na\r\n:1\r\n",
        );
        same(Frame::Array(vec![]), b"*0\r\n");
    }

    #[test]
    fn simple_strings_and_errors_have_cr_and_lf_replaced() {
        assert_eq!(
            encoded(&Frame::Simple("a\r\nb".into()), Protocol::Resp3),
            b"+a  b\r\n"
        );
        assert_eq!(
            encoded(&Frame::error("ERR line one\nline two\r"), Protocol::Resp2),
            b"-ERR line one line two \r\n"
        );
        // Bulk strings are binary safe and keep theirs.
        assert_eq!(
            encoded(&bulk("a\r\nb"), Protocol::Resp2),
            b"$4\r\na\r\nb\r\n"
        );
    }

    #[test]
    fn nulls_per_protocol() {
        assert_eq!(both(&Frame::Null), (b"$-1\r\n".to_vec(), b"_\r\n".to_vec()));
        assert_eq!(
            both(&Frame::NullArray),
            (b"*-1\r\n".to_vec(), b"_\r\n".to_vec())
        );
    }

    #[test]
    fn maps_and_sets_per_protocol() {
        let map = Frame::Map(vec![
            (bulk("k"), Frame::Integer(1)),
            (bulk("j"), Frame::Null),
        ]);
        assert_eq!(
            both(&map),
            (
                b"*4\r\n$1\r\nk\r\n:1\r\n$1\r\nj\r\n$-1\r\n".to_vec(),
                b"%2\r\n$1\r\nk\r\n:1\r\n$1\r\nj\r\n_\r\n".to_vec()
            )
        );
        let set = Frame::Set(vec![bulk("x")]);
        assert_eq!(
            both(&set),
            (b"*1\r\n$1\r\nx\r\n".to_vec(), b"~1\r\n$1\r\nx\r\n".to_vec())
        );
    }

    #[test]
    fn booleans_doubles_and_verbatim_per_protocol() {
        assert_eq!(
            both(&Frame::Boolean(true)),
            (b":1\r\n".to_vec(), b"#t\r\n".to_vec())
        );
        assert_eq!(
            both(&Frame::Boolean(false)),
            (b":0\r\n".to_vec(), b"#f\r\n".to_vec())
        );
        assert_eq!(
            both(&Frame::Double(1.5)),
            (b"$3\r\n1.5\r\n".to_vec(), b",1.5\r\n".to_vec())
        );
        assert_eq!(
            both(&Frame::Double(3.0)),
            (b"$1\r\n3\r\n".to_vec(), b",3\r\n".to_vec())
        );
        assert_eq!(
            both(&Frame::Double(f64::NEG_INFINITY)),
            (b"$4\r\n-inf\r\n".to_vec(), b",-inf\r\n".to_vec())
        );
        assert_eq!(
            both(&Frame::Double(f64::NAN)),
            (b"$3\r\nnan\r\n".to_vec(), b",nan\r\n".to_vec())
        );
        assert_eq!(
            both(&Frame::Verbatim("a:1".into())),
            (b"$3\r\na:1\r\n".to_vec(), b"=7\r\ntxt:a:1\r\n".to_vec())
        );
    }

    #[test]
    fn doubles_are_formatted_like_redis() {
        let cases: &[(f64, &str)] = &[
            (1.5, "1.5"),
            (3.0, "3"),
            (-3.0, "-3"),
            (0.0, "0"),
            (-0.0, "-0"),
            (0.1, "0.1"),
            (-2.5, "-2.5"),
            (123.456, "123.456"),
            (0.0001, "0.0001"),
            (0.000001, "0.000001"),
            (1e-7, "1e-7"),
            (1.5e-10, "1.5e-10"),
            (1234.5678901, "1234.5678901"),
            // fpconv's layout, quirks included: 5 whole digits and 9
            // decimals goes scientific.
            (12345.678901234, "1.2345678901234e+4"),
            (4611686018427387904.0, "4611686018427387904"),
            (1e19, "1e+19"),
            (1.2345678901234568e20, "123456789012345680000"),
            (1e22, "1e+22"),
            (1e300, "1e+300"),
            (-1e300, "-1e+300"),
            (f64::MAX, "1.7976931348623157e+308"),
            (5e-324, "5e-324"),
            (f64::INFINITY, "inf"),
            (f64::NEG_INFINITY, "-inf"),
            (f64::NAN, "nan"),
        ];
        for &(d, text) in cases {
            assert_eq!(format_double(d), text, "{d:e}");
            if d.is_finite() {
                assert_eq!(text.parse::<f64>().ok(), Some(d), "{text} reads back");
            }
        }
    }

    // --- whole frames ----------------------------------------------------

    #[test]
    fn every_frame_round_trips_in_resp3() {
        for frame in every_frame() {
            let expected = match &frame {
                // RESP3 has one null.
                Frame::NullArray => Frame::Null,
                other => other.clone(),
            };
            assert_eq!(parse_one(&encoded(&frame, Protocol::Resp3)), Ok(expected));
        }
    }

    #[test]
    fn every_frame_round_trips_in_resp2_as_its_downgrade() {
        for frame in every_frame() {
            assert_eq!(
                parse_one(&encoded(&frame, Protocol::Resp2)),
                Ok(downgraded(&frame)),
                "{frame:?}"
            );
        }
    }

    #[test]
    fn nan_round_trips_in_resp3() {
        match parse_one(&encoded(&Frame::Double(f64::NAN), Protocol::Resp3)) {
            Ok(Frame::Double(d)) => assert!(d.is_nan()),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn parse_frame_waits_for_the_whole_frame_and_consumes_nothing() {
        for frame in every_frame() {
            for protocol in [Protocol::Resp2, Protocol::Resp3] {
                let wire = encoded(&frame, protocol);
                for cut in 0..wire.len() {
                    let mut buf = BytesMut::from(&wire[..cut]);
                    assert_eq!(parse_frame(&mut buf), Ok(None), "{frame:?} cut at {cut}");
                    assert_eq!(&buf[..], &wire[..cut]);
                }
            }
        }
    }

    #[test]
    fn parse_frame_takes_one_frame_at_a_time() {
        let mut buf = BytesMut::from(&b"+OK\r\n:1\r\n$1\r\nx\r\n"[..]);
        assert_eq!(parse_frame(&mut buf), Ok(Some(Frame::ok())));
        assert_eq!(parse_frame(&mut buf), Ok(Some(Frame::Integer(1))));
        assert_eq!(parse_frame(&mut buf), Ok(Some(bulk("x"))));
        assert_eq!(parse_frame(&mut buf), Ok(None));
    }

    #[test]
    fn parse_frame_rejects_malformed_frames() {
        for wire in [
            &b"?what\r\n"[..],
            b":12a\r\n",
            b":\r\n",
            b"$-2\r\n",
            b"$x\r\n",
            b"$3\r\nfooXY",
            b"*-2\r\n",
            b"~-1\r\n",
            b"#x\r\n",
            b",one\r\n",
            b"_x\r\n",
            b"=3\r\ntxt\r\n",
            b"+OK\rX",
        ] {
            let mut buf = BytesMut::from(wire);
            assert!(
                matches!(parse_frame(&mut buf), Err(FrameError::Protocol(_))),
                "{:?}",
                String::from_utf8_lossy(wire)
            );
        }
    }

    #[test]
    fn parse_frame_bounds_nesting() {
        let mut wire = b"*1\r\n".repeat(MAX_DEPTH + 1);
        wire.extend_from_slice(b":1\r\n");
        let mut buf = BytesMut::from(&wire[..]);
        assert!(parse_frame(&mut buf).is_err());
    }

    // --- requests --------------------------------------------------------

    const PIPELINE: &[u8] = b"*1\r\n$4\r\nPING\r\n\
        *3\r\n$3\r\nSET\r\n$3\r\nkey\r\n$12\r\nhello\r\nworld\r\n\
        *2\r\n$3\r\nGET\r\n$3\r\nkey\r\n";

    fn pipeline_requests() -> Vec<Vec<Bytes>> {
        vec![
            args(&["PING"]),
            args(&["SET", "key", "hello\r\nworld"]),
            args(&["GET", "key"]),
        ]
    }

    #[test]
    fn multibulk_requests_parse() {
        assert_eq!(requests(PIPELINE), Ok(pipeline_requests()));
    }

    #[test]
    fn pipeline_fed_one_byte_at_a_time() {
        let limits = FrameLimits::default();
        let mut buf = BytesMut::new();
        let mut out = Vec::new();
        for &b in PIPELINE {
            buf.put_u8(b);
            while let Some(request) = parse_request(&mut buf, &limits).expect("valid") {
                out.push(request);
            }
        }
        assert_eq!(out, pipeline_requests());
        assert!(buf.is_empty());
    }

    #[test]
    fn pipeline_split_at_every_byte_boundary() {
        let limits = FrameLimits::default();
        for cut in 0..=PIPELINE.len() {
            let mut buf = BytesMut::from(&PIPELINE[..cut]);
            let mut out = Vec::new();
            while let Some(request) = parse_request(&mut buf, &limits).expect("valid") {
                out.push(request);
            }
            buf.extend_from_slice(&PIPELINE[cut..]);
            while let Some(request) = parse_request(&mut buf, &limits).expect("valid") {
                out.push(request);
            }
            assert_eq!(out, pipeline_requests(), "cut at {cut}");
            assert!(buf.is_empty());
        }
    }

    #[test]
    fn incomplete_request_consumes_nothing() {
        let limits = FrameLimits::default();
        let whole = b"*2\r\n$3\r\nGET\r\n$3\r\nkey\r\n";
        for cut in 0..whole.len() {
            let mut buf = BytesMut::from(&whole[..cut]);
            assert_eq!(parse_request(&mut buf, &limits), Ok(None), "cut at {cut}");
            assert_eq!(&buf[..], &whole[..cut]);
        }
    }

    #[test]
    fn bulk_arguments_share_the_buffer() {
        let limits = FrameLimits::default();
        let value = vec![b'v'; 100_000];
        let mut wire = b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$100000\r\n".to_vec();
        let data_at = wire.len();
        wire.extend_from_slice(&value);
        wire.extend_from_slice(b"\r\n");

        // A partially received value: nothing taken, nothing moved.
        let mut buf = BytesMut::with_capacity(wire.len());
        buf.extend_from_slice(&wire[..wire.len() - 10]);
        let base = buf.as_ptr();
        assert_eq!(parse_request(&mut buf, &limits), Ok(None));
        assert_eq!(buf.as_ptr(), base);

        buf.extend_from_slice(&wire[wire.len() - 10..]);
        let request = parse_request(&mut buf, &limits)
            .expect("valid")
            .expect("whole");
        assert_eq!(request[2], value);
        assert_eq!(request[2].as_ptr(), base.wrapping_add(data_at));
    }

    #[test]
    fn inline_commands() {
        assert_eq!(requests(b"PING\r\n"), Ok(vec![args(&["PING"])]));
        assert_eq!(requests(b"PING\n"), Ok(vec![args(&["PING"])]));
        assert_eq!(
            requests(b"  SET   key\tvalue  \r\nGET key\n"),
            Ok(vec![args(&["SET", "key", "value"]), args(&["GET", "key"])])
        );
        // The line is not complete until its LF.
        assert_eq!(requests(b"PING"), Ok(vec![]));
        assert_eq!(requests(b"PING\r"), Ok(vec![]));
    }

    #[test]
    fn inline_commands_with_quotes() {
        assert_eq!(
            requests(b"SET \"hello world\" 'it''s'\r\n"),
            Err(protocol_err(UNBALANCED_QUOTES)),
            "a closing quote must end the word"
        );
        assert_eq!(
            requests(b"SET \"hello world\" 'it\\'s'\r\n"),
            Ok(vec![args(&["SET", "hello world", "it's"])])
        );
        assert_eq!(
            requests(b"SET k \"a\\nb\\tc\\x41\\x4a\\\"d\\\\e\\qf\"\r\n"),
            Ok(vec![args(&["SET", "k", "a\nb\tcAJ\"d\\eqf"])])
        );
        // Single quotes keep backslashes, except before a quote.
        assert_eq!(
            requests(b"ECHO 'a\\nb'\n"),
            Ok(vec![args(&["ECHO", "a\\nb"])])
        );
        // An invalid \x escape is a plain 'x'.
        assert_eq!(
            requests(b"ECHO \"\\xZZ\"\n"),
            Ok(vec![args(&["ECHO", "xZZ"])])
        );
        // A quote may open mid-word; empty quotes are an empty argument.
        assert_eq!(
            requests(b"ECHO ab\"c d\" \"\"\n"),
            Ok(vec![args(&["ECHO", "abc d", ""])])
        );
    }

    #[test]
    fn inline_unbalanced_quotes() {
        for wire in [
            &b"SET a \"foo\r\n"[..],
            b"SET a \"foo\"bar\r\n",
            b"SET a 'foo\n",
            b"ECHO \"ends\\\"\n",
        ] {
            assert_eq!(
                requests(wire),
                Err(protocol_err(UNBALANCED_QUOTES)),
                "{wire:?}"
            );
        }
    }

    #[test]
    fn empty_requests_are_skipped() {
        assert_eq!(
            requests(b"\r\n\n   \r\n*0\r\n*-1\r\nPING\r\n\r\n*1\r\n$4\r\nPING\r\n"),
            Ok(vec![args(&["PING"]), args(&["PING"])])
        );
        let mut buf = BytesMut::from(&b"\r\n\r\n*0\r\n"[..]);
        assert_eq!(parse_request(&mut buf, &FrameLimits::default()), Ok(None));
        assert!(buf.is_empty(), "skipped requests are consumed");
    }

    #[test]
    fn over_limit_lengths() {
        let limits = FrameLimits {
            max_bulk_bytes: 10,
            max_arguments: 3,
            max_inline_bytes: 16,
        };
        let check = |wire: &[u8], result: Result<Vec<Vec<Bytes>>, FrameError>| {
            assert_eq!(
                requests_with(wire, &limits),
                result,
                "{:?}",
                String::from_utf8_lossy(wire)
            );
        };
        check(
            b"*3\r\n$1\r\na\r\n$1\r\nb\r\n$10\r\n0123456789\r\n",
            Ok(vec![args(&["a", "b", "0123456789"])]),
        );
        check(b"*4\r\n", Err(protocol_err(INVALID_MULTIBULK)));
        check(b"*1\r\n$11\r\n", Err(protocol_err(INVALID_BULK)));
        check(
            b"*1\r\n$0000000000000000000000",
            Err(protocol_err(TOO_BIG_BULK)),
        );
        check(
            b"*0000000000000000000000",
            Err(protocol_err(TOO_BIG_MULTIBULK)),
        );
        // A header line at the limit still waits for its end.
        check(b"*000000000000000", Ok(vec![]));
        check(
            b"ECHO 0123456789a\r\n",
            Ok(vec![args(&["ECHO", "0123456789a"])]),
        );
        check(b"ECHO 0123456789ab\r\n", Err(protocol_err(TOO_BIG_INLINE)));
        check(b"ECHO 0123456789ab", Err(protocol_err(TOO_BIG_INLINE)));
        check(b"ECHO 0123456789a", Ok(vec![]));
    }

    #[test]
    fn negative_and_garbage_lengths() {
        let check = |wire: &[u8], result: Result<Vec<Vec<Bytes>>, FrameError>| {
            assert_eq!(
                requests(wire),
                result,
                "{:?}",
                String::from_utf8_lossy(wire)
            );
        };
        for wire in [
            &b"*abc\r\n"[..],
            b"*\r\n",
            b"*+1\r\n",
            b"*01\r\n",
            b"* 1\r\n",
            b"*1 \r\n",
            b"*1\rX",
        ] {
            check(wire, Err(protocol_err(INVALID_MULTIBULK)));
        }
        for wire in [
            &b"*1\r\n$-1\r\n"[..],
            b"*1\r\n$-3\r\n",
            b"*1\r\n$abc\r\n",
            b"*1\r\n$\r\n",
            b"*1\r\n$03\r\nfoo\r\n",
            b"*1\r\n$-0\r\n",
            b"*1\r\n$99999999999999999999\r\n",
            b"*1\r\n$3\rXfoo\r\n",
        ] {
            check(wire, Err(protocol_err(INVALID_BULK)));
        }
        // Like Redis: a negative count is an empty request, skipped.
        check(b"*-5\r\nPING\r\n", Ok(vec![args(&["PING"])]));
    }

    #[test]
    fn expected_dollar() {
        assert_eq!(
            requests(b"*1\r\n:1\r\n"),
            Err(protocol_err("Protocol error: expected '$', got ':'"))
        );
        assert_eq!(
            requests(b"*2\r\n$1\r\na\r\nx"),
            Err(protocol_err("Protocol error: expected '$', got 'x'"))
        );
        assert_eq!(
            requests(b"*1\r\n\x01"),
            Err(protocol_err("Protocol error: expected '$', got '\\x01'"))
        );
    }

    #[test]
    fn bulk_missing_its_crlf_trailer() {
        assert_eq!(
            requests(b"*1\r\n$3\r\nfooXY"),
            Err(protocol_err(MISSING_CRLF))
        );
        assert_eq!(
            requests(b"*1\r\n$3\r\nfoo\rX"),
            Err(protocol_err(MISSING_CRLF))
        );
        assert_eq!(requests(b"*1\r\n$3\r\nfoo\r"), Ok(vec![]));
    }

    #[test]
    fn requests_before_a_protocol_error_come_out_first() {
        let limits = FrameLimits::default();
        let mut buf = BytesMut::from(&b"PING\r\n*x\r\n"[..]);
        assert_eq!(parse_request(&mut buf, &limits), Ok(Some(args(&["PING"]))));
        assert_eq!(
            parse_request(&mut buf, &limits),
            Err(protocol_err(INVALID_MULTIBULK))
        );
    }

    #[test]
    fn protocol_errors_answer_err() {
        let reply = protocol_err(INVALID_BULK).to_reply();
        assert_eq!(
            encoded(&reply, Protocol::Resp2),
            b"-ERR Protocol error: invalid bulk length\r\n"
        );
    }

    #[test]
    fn strict_integers() {
        assert_eq!(parse_i64(b"0"), Some(0));
        assert_eq!(parse_i64(b"-1"), Some(-1));
        assert_eq!(parse_i64(b"9223372036854775807"), Some(i64::MAX));
        assert_eq!(parse_i64(b"-9223372036854775808"), Some(i64::MIN));
        for bad in [
            &b""[..],
            b"-",
            b"9223372036854775808",
            b"+1",
            b"01",
            b"-0",
            b"1.0",
            b" 1",
        ] {
            assert_eq!(parse_i64(bad), None, "{bad:?}");
        }
    }
}
