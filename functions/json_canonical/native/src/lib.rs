//! RFC 8785 (JSON Canonicalization Scheme) of one JSON text, natively.
//!
//! An accelerator, never an authority: `canonicalize(doc)` returns the canonical
//! bytes, or `None` for anything it does not handle, and the pure-Python path in
//! `functions/json_canonical/canonical.py` then decides — it says where a document
//! is not I-JSON. So every refusal here is safe; only an accepted document must be
//! byte-exact, which the differential tests check against the Python path.
//!
//! Refused here (the Python path takes over): any parse error, nesting deeper than
//! serde_json's 128 levels, duplicate member names, integers beyond ±(2^53 − 1),
//! and integral floats so large that they may be integer literals beyond 64 bits
//! (serde_json reads those as floats; the Python path looks at the text).

use std::borrow::Cow;
use std::cell::Cell;
use std::cmp::Ordering;
use std::fmt;

use pyo3::prelude::*;
use pyo3::types::PyBytes;
use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};

const MAX_SAFE: u64 = (1 << 53) - 1;

enum Node<'a> {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(Cow<'a, str>),
    Arr(Vec<Node<'a>>),
    Obj(Vec<(Cow<'a, str>, Node<'a>)>),
}

thread_local! {
    // Set when a float may come from an integer literal beyond 64 bits.
    static HUGE: Cell<bool> = const { Cell::new(false) };
}

/// A string that borrows from the input when it has no escapes.
struct Text<'a>(Cow<'a, str>);

impl<'de> Deserialize<'de> for Text<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct TextVisitor;
        impl<'de> Visitor<'de> for TextVisitor {
            type Value = Text<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Text<'de>, E> {
                Ok(Text(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Text<'de>, E> {
                Ok(Text(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E>(self, v: String) -> Result<Text<'de>, E> {
                Ok(Text(Cow::Owned(v)))
            }
        }
        deserializer.deserialize_str(TextVisitor)
    }
}

impl<'de> Deserialize<'de> for Node<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(NodeVisitor)
    }
}

struct NodeVisitor;

impl<'de> Visitor<'de> for NodeVisitor {
    type Value = Node<'de>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_unit<E>(self) -> Result<Node<'de>, E> {
        Ok(Node::Null)
    }
    fn visit_bool<E>(self, v: bool) -> Result<Node<'de>, E> {
        Ok(Node::Bool(v))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Node<'de>, E> {
        if v > MAX_SAFE {
            return Err(E::custom("integer beyond 2^53 - 1"));
        }
        Ok(Node::Int(v as i64))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Node<'de>, E> {
        if v.unsigned_abs() > MAX_SAFE {
            return Err(E::custom("integer beyond 2^53 - 1"));
        }
        Ok(Node::Int(v))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Node<'de>, E> {
        // The Python path's bound (canonical._prepare): beyond it an integral float
        // may be an integer literal that serde_json read as a float.
        if v.fract() == 0.0 && !(-9.2e18 < v && v < 1.8e19) {
            HUGE.with(|h| h.set(true));
        }
        Ok(Node::Float(v))
    }
    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Node<'de>, E> {
        Ok(Node::Str(Cow::Borrowed(v)))
    }
    fn visit_str<E>(self, v: &str) -> Result<Node<'de>, E> {
        Ok(Node::Str(Cow::Owned(v.to_owned())))
    }
    fn visit_string<E>(self, v: String) -> Result<Node<'de>, E> {
        Ok(Node::Str(Cow::Owned(v)))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Node<'de>, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0));
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Node::Arr(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Node<'de>, A::Error> {
        let mut members: Vec<(Cow<'de, str>, Node<'de>)> = Vec::new();
        while let Some(Text(key)) = map.next_key()? {
            let value = map.next_value()?;
            members.push((key, value));
        }
        members.sort_unstable_by(|a, b| utf16_cmp(&a.0, &b.0));
        if members.windows(2).any(|w| w[0].0 == w[1].0) {
            return Err(de::Error::custom("duplicate member name"));
        }
        Ok(Node::Obj(members))
    }
}

/// Order of the UTF-16 code units, as RFC 8785 sorts member names.
///
/// UTF-8 byte order is code-point order, which is UTF-16 order except between a
/// character of U+E000–U+FFFF (lead byte 0xEE or 0xEF) and an astral one (0xF0
/// and up): only a first difference at such a lead byte needs the slow compare.
fn utf16_cmp(a: &str, b: &str) -> Ordering {
    let (x, y) = (a.as_bytes(), b.as_bytes());
    match x.iter().zip(y).position(|(p, q)| p != q) {
        None => x.len().cmp(&y.len()),
        Some(i) if x[i] < 0xEE && y[i] < 0xEE => x[i].cmp(&y[i]),
        Some(_) => a.encode_utf16().cmp(b.encode_utf16()),
    }
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// A string as ECMAScript's JSON.stringify writes it (RFC 8785 section 3.2.2.2).
fn write_str(s: &str, out: &mut Vec<u8>) {
    out.push(b'"');
    let bytes = s.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let escape: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0x08 => b"\\b",
            0x0c => b"\\f",
            0x00..=0x1f => &[],
            _ => continue,
        };
        out.extend_from_slice(&bytes[start..i]);
        if escape.is_empty() {
            out.extend_from_slice(b"\\u00");
            out.push(HEX[(b >> 4) as usize]);
            out.push(HEX[(b & 0xf) as usize]);
        } else {
            out.extend_from_slice(escape);
        }
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

fn emit(node: &Node, out: &mut Vec<u8>, numbers: &mut ryu_js::Buffer, ints: &mut itoa::Buffer) {
    match node {
        Node::Null => out.extend_from_slice(b"null"),
        Node::Bool(true) => out.extend_from_slice(b"true"),
        Node::Bool(false) => out.extend_from_slice(b"false"),
        Node::Int(i) => out.extend_from_slice(ints.format(*i).as_bytes()),
        // ECMAScript's Number::toString: shortest round-trip digits, -0 as "0".
        Node::Float(f) => out.extend_from_slice(numbers.format_finite(*f).as_bytes()),
        Node::Str(s) => write_str(s, out),
        Node::Arr(items) => {
            out.push(b'[');
            for (n, item) in items.iter().enumerate() {
                if n > 0 {
                    out.push(b',');
                }
                emit(item, out, numbers, ints);
            }
            out.push(b']');
        }
        Node::Obj(members) => {
            out.push(b'{');
            for (n, (key, value)) in members.iter().enumerate() {
                if n > 0 {
                    out.push(b',');
                }
                write_str(key, out);
                out.push(b':');
                emit(value, out, numbers, ints);
            }
            out.push(b'}');
        }
    }
}

/// Whether a run of 19+ digits may be an integer literal: one that starts a value
/// (after `:`, `,`, `[` or at the start, a sign and blanks allowed). A superset,
/// like `canonical._has_long_integer`; a run inside a string or a fraction only
/// costs a trip through the Python path.
fn has_long_integer(doc: &[u8]) -> bool {
    let mut run = 0;
    for (i, b) in doc.iter().enumerate() {
        if !b.is_ascii_digit() {
            run = 0;
            continue;
        }
        run += 1;
        if run == 19 {
            let mut start = i + 1 - run;
            while start > 0 && b"- \t\r\n".contains(&doc[start - 1]) {
                start -= 1;
            }
            if start == 0 || b":,[".contains(&doc[start - 1]) {
                return true;
            }
        }
    }
    false
}

fn canonical(doc: &[u8]) -> Option<Vec<u8>> {
    HUGE.with(|h| h.set(false));
    let tree: Node = serde_json::from_slice(doc).ok()?;
    if HUGE.with(|h| h.get()) && has_long_integer(doc) {
        return None;
    }
    let mut out = Vec::with_capacity(doc.len());
    emit(&tree, &mut out, &mut ryu_js::Buffer::new(), &mut itoa::Buffer::new());
    Some(out)
}

/// The RFC 8785 form of ``doc``, or None where the Python path must decide.
///
/// Runs without the GIL: other threads, the event loop's among them, keep going.
#[pyfunction]
fn canonicalize<'py>(py: Python<'py>, doc: &[u8]) -> Option<Bound<'py, PyBytes>> {
    let out = py.detach(|| canonical(doc))?;
    Some(PyBytes::new(py, &out))
}

#[pymodule]
fn _jcs(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(canonicalize, m)?)
}
