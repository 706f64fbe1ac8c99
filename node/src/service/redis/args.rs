//! A request's arguments, with the typed accessors commands parse them by
//! and Redis's own error texts for what does not parse.

use bytes::Bytes;

use super::frame::Frame;

/// A command's name (upper-cased) and its arguments, the name excluded.
#[derive(Debug, Clone)]
pub struct Args {
    pub name: String,
    /// The name as the client wrote it, for error texts.
    original: String,
    values: Vec<Bytes>,
}

/// A reply that ends the command early (a syntax or argument error).
pub type Parsed<T> = Result<T, Frame>;

pub fn not_an_integer() -> Frame {
    Frame::error("ERR value is not an integer or out of range")
}

pub fn syntax_error() -> Frame {
    Frame::error("ERR syntax error")
}

impl Args {
    /// `request` is the name and the arguments as the client sent them.
    pub fn new(mut request: Vec<Bytes>) -> Option<Args> {
        if request.is_empty() {
            return None;
        }
        let original = String::from_utf8_lossy(&request.remove(0)).into_owned();
        Some(Args {
            name: original.to_ascii_uppercase(),
            original,
            values: request,
        })
    }

    pub fn len(&self) -> usize {
        self.values.len()
    }

    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    pub fn all(&self) -> &[Bytes] {
        &self.values
    }

    pub fn bytes(&self, i: usize) -> &Bytes {
        &self.values[i]
    }

    pub fn key(&self, i: usize) -> Vec<u8> {
        self.values[i].to_vec()
    }

    /// Argument `i` upper-cased, for options and subcommands.
    pub fn word(&self, i: usize) -> String {
        String::from_utf8_lossy(&self.values[i]).to_ascii_uppercase()
    }

    pub fn integer(&self, i: usize) -> Parsed<i64> {
        crate::apply::update::parse_integer(&self.values[i]).ok_or_else(not_an_integer)
    }

    pub fn float(&self, i: usize) -> Parsed<f64> {
        crate::apply::update::parse_float(&self.values[i])
            .ok_or_else(|| Frame::error("ERR value is not a valid float"))
    }

    pub fn original_name(&self) -> &str {
        &self.original
    }

    /// The lowercase name Redis quotes in its error texts.
    pub fn lower_name(&self) -> String {
        self.name.to_ascii_lowercase()
    }

    pub fn wrong_arity(&self) -> Frame {
        Frame::error(format!(
            "ERR wrong number of arguments for '{}' command",
            self.lower_name()
        ))
    }
}
