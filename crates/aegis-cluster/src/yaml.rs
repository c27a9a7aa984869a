//! A fast reader of the YAML that kubectl (and `aegis snapshot`) writes: block mappings and
//! sequences, plain, single- and double-quoted scalars on one line, literal block scalars
//! (`|`, `|-`, `|+`), empty flow collections and comments. It is a serde deserializer: objects
//! are decoded straight from the text into their typed form, several times faster than a general
//! YAML parser and with no intermediate tree. Anything outside that subset — anchors, tags,
//! folded or multi-line scalars, non-empty flow collections, scalars whose type YAML reads
//! differently from the plain cases — and any value the target type refuses make it answer
//! `None`, and the caller reads the document with the general parser (whose error then names
//! the problem), so the result never depends on which reader ran.

use std::borrow::Cow;
use std::fmt;

use serde::de::value::CowStrDeserializer;
use serde::de::{
    self, DeserializeOwned, DeserializeSeed, Deserializer, IntoDeserializer, MapAccess, SeqAccess,
    Visitor,
};

/// One line: its indentation and its text after it.
#[derive(Debug, Clone, Copy)]
struct Line<'a> {
    indent: usize,
    text: &'a str,
    /// The whole line, for block scalars.
    raw: &'a str,
}

impl Line<'_> {
    /// A line that carries nothing: blank, or a comment.
    fn is_blank(&self) -> bool {
        self.text.is_empty() || self.text.starts_with('#')
    }
}

/// Decodes a YAML document in the subset into `T`, or `None`.
pub fn from_str<T: DeserializeOwned>(document: &str) -> Option<T> {
    decode(lines(document, false)?)
}

/// Decodes one item of a List as kubectl writes it (`- ` before its first line, every other
/// line indented by two spaces) without re-indenting its text, or `None`.
pub fn from_item<T: DeserializeOwned>(item: &str) -> Option<T> {
    decode(lines(item, true)?)
}

/// The lines of a document; for a List item, with the item's own indentation taken off.
fn lines(document: &str, item: bool) -> Option<Vec<Line<'_>>> {
    // A tab may be indentation, which this reader does not follow.
    if document.contains('\t') {
        return None;
    }
    let mut lines: Vec<Line<'_>> = Vec::with_capacity(document.len() / 24);
    for (number, raw) in document.lines().enumerate() {
        let raw = if !item {
            raw
        } else if number == 0 {
            raw.strip_prefix("- ")?
        } else if let Some(inner) = raw.strip_prefix("  ") {
            inner
        } else if raw.trim().is_empty() {
            ""
        } else {
            return None;
        };
        let text = raw.trim_start_matches(' ');
        let indent = raw.len() - text.len();
        let text = text.trim_end();
        if lines.is_empty() && (text == "---" || text.starts_with('%')) {
            return None;
        }
        lines.push(Line { indent, text, raw });
    }
    Some(lines)
}

fn decode<T: DeserializeOwned>(lines: Vec<Line<'_>>) -> Option<T> {
    let mut reader = Reader { lines, at: 0 };
    let first = reader.peek()?;
    if first.indent != 0 || is_dash(first.text) {
        return None;
    }
    let value = T::deserialize(Node {
        reader: &mut reader,
        value: Value::Mapping(0),
        owner: 0,
    })
    .ok()?;
    reader.skip_blank();
    (reader.at == reader.lines.len()).then_some(value)
}

/// Why the fast reading stopped: outside the subset, or refused by the target type.
#[derive(Debug)]
struct Stop(String);

impl fmt::Display for Stop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Stop {}

impl de::Error for Stop {
    fn custom<T: fmt::Display>(message: T) -> Self {
        Self(message.to_string())
    }
}

fn outside() -> Stop {
    Stop("outside the subset the fast reader covers".to_owned())
}

fn is_dash(text: &str) -> bool {
    text.starts_with("- ") || text == "-"
}

struct Reader<'a> {
    lines: Vec<Line<'a>>,
    at: usize,
}

impl<'a> Reader<'a> {
    fn skip_blank(&mut self) {
        while self.lines.get(self.at).is_some_and(Line::is_blank) {
            self.at += 1;
        }
    }

    /// The next line that carries something, without consuming it.
    fn peek(&mut self) -> Option<Line<'a>> {
        self.skip_blank();
        self.lines.get(self.at).copied()
    }

    /// The number of items of the block sequence whose dashes sit at `indent` and which starts
    /// at the current line.
    fn items_ahead(&self, indent: usize) -> usize {
        let mut count = 0;
        for line in &self.lines[self.at..] {
            if line.is_blank() || line.indent > indent {
                continue;
            }
            if line.indent < indent || !is_dash(line.text) {
                break;
            }
            count += 1;
        }
        count
    }

    /// The value of a key at `indent` whose line continues with `rest`.
    fn value_after(&mut self, indent: usize, rest: &'a str) -> Value<'a> {
        if rest.is_empty() {
            return match self.peek() {
                Some(next) if next.indent > indent => {
                    if is_dash(next.text) {
                        Value::Sequence(next.indent)
                    } else {
                        Value::Mapping(next.indent)
                    }
                }
                // kubectl writes a mapping's sequences at the key's own indentation.
                Some(next) if next.indent == indent && is_dash(next.text) => {
                    Value::Sequence(indent)
                }
                _ => Value::Null,
            };
        }
        if let Some(header) = rest.strip_prefix('|') {
            return Value::Literal { indent, header };
        }
        Value::Scalar(rest)
    }

    /// The item of a sequence whose dashes sit at `indent`, on the current line.
    fn item(&mut self, indent: usize, line: Line<'a>) -> Result<Value<'a>, Stop> {
        let rest = line.text.strip_prefix('-').unwrap_or_default().trim_start();
        let inner = indent + (line.text.len() - rest.len());
        if rest.is_empty() {
            self.at += 1;
            return Ok(match self.peek() {
                Some(next) if next.indent > indent => {
                    if is_dash(next.text) {
                        Value::Sequence(next.indent)
                    } else {
                        Value::Mapping(next.indent)
                    }
                }
                _ => Value::Null,
            });
        }
        if is_dash(rest) || rest.starts_with('|') {
            return Err(outside());
        }
        if split_key(rest).is_some() {
            // `- key: value`: a mapping whose first key sits after the dash.
            self.lines[self.at] = Line {
                indent: inner,
                text: rest,
                raw: line.raw,
            };
            return Ok(Value::Mapping(inner));
        }
        self.at += 1;
        Ok(Value::Scalar(rest))
    }

    /// The text of a literal block scalar of a key at `indent`; `header` is what follows the
    /// `|`.
    fn literal(&mut self, indent: usize, header: &str) -> Result<String, Stop> {
        let keep = match header {
            "" => None,
            "-" => Some(false),
            "+" => Some(true),
            _ => return Err(outside()),
        };
        let mut content: Vec<&str> = Vec::new();
        let mut block_indent = None;
        while let Some(line) = self.lines.get(self.at) {
            if line.text.is_empty() {
                // Spaces beyond the block's indentation on a blank line would be content.
                if block_indent.is_some_and(|at| line.raw.len() > at) {
                    return Err(outside());
                }
                content.push("");
                self.at += 1;
                continue;
            }
            if line.indent <= indent {
                break;
            }
            let at = *block_indent.get_or_insert(line.indent);
            if line.indent < at {
                return Err(outside());
            }
            content.push(&line.raw[at..]);
            self.at += 1;
        }
        if block_indent.is_none() {
            return Err(outside());
        }
        // Blank lines after the content belong to the chomping, not the text.
        let trailing = content.iter().rev().take_while(|l| l.is_empty()).count();
        let body = &content[..content.len() - trailing];
        let mut text = body.join("\n");
        match keep {
            None => text.push('\n'),
            Some(false) => {}
            Some(true) => {
                text.push('\n');
                for _ in 0..trailing {
                    text.push('\n');
                }
            }
        }
        Ok(text)
    }
}

/// Where the reader stands: the value about to be read.
#[derive(Debug, Clone, Copy)]
enum Value<'a> {
    /// A block mapping whose keys sit at this indentation.
    Mapping(usize),
    /// A block sequence whose dashes sit at this indentation.
    Sequence(usize),
    /// Nothing after the key or dash.
    Null,
    /// A scalar written on one line.
    Scalar(&'a str),
    /// A literal block scalar of a key at `indent`.
    Literal { indent: usize, header: &'a str },
}

/// One value, deserialized where the reader stands. `owner` is the indentation of the key or
/// dash it belongs to: a deeper line after a scalar would continue it (a multi-line plain
/// scalar), which the reader does not cover.
struct Node<'r, 'a> {
    reader: &'r mut Reader<'a>,
    value: Value<'a>,
    owner: usize,
}

impl Node<'_, '_> {
    fn ends_here(&mut self) -> Result<(), Stop> {
        match self.reader.peek() {
            Some(next) if next.indent > self.owner => Err(outside()),
            _ => Ok(()),
        }
    }
}

impl<'de> Deserializer<'de> for Node<'_, 'de> {
    type Error = Stop;

    fn deserialize_any<V: Visitor<'de>>(mut self, visitor: V) -> Result<V::Value, Stop> {
        match self.value {
            Value::Mapping(indent) => visitor.visit_map(Entries {
                reader: self.reader,
                indent,
                rest: "",
            }),
            Value::Sequence(indent) => {
                let left = self.reader.items_ahead(indent);
                visitor.visit_seq(Items {
                    reader: self.reader,
                    indent,
                    left,
                })
            }
            Value::Null => visitor.visit_unit(),
            Value::Literal { indent, header } => {
                let text = self.reader.literal(indent, header)?;
                visitor.visit_string(text)
            }
            Value::Scalar(text) => {
                let value = scalar(text, visitor)?;
                self.ends_here()?;
                Ok(value)
            }
        }
    }

    fn deserialize_option<V: Visitor<'de>>(mut self, visitor: V) -> Result<V::Value, Stop> {
        match self.value {
            Value::Null => visitor.visit_none(),
            Value::Scalar(text) if matches!(plain(text), Some(Plain::Null)) => {
                self.ends_here()?;
                visitor.visit_none()
            }
            _ => visitor.visit_some(self),
        }
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Stop> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        mut self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Stop> {
        // A unit variant written as a string; other shapes go to the general parser.
        let Value::Scalar(text) = self.value else {
            return Err(outside());
        };
        let name = unquoted(text)?;
        self.ends_here()?;
        visitor.visit_enum(name.into_deserializer())
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf unit unit_struct seq tuple tuple_struct map struct identifier
        ignored_any
    }
}

/// The keys and values of a block mapping.
struct Entries<'r, 'a> {
    reader: &'r mut Reader<'a>,
    indent: usize,
    /// What followed the colon of the key just read.
    rest: &'a str,
}

impl<'de> MapAccess<'de> for Entries<'_, 'de> {
    type Error = Stop;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Stop> {
        let Some(line) = self.reader.peek() else {
            return Ok(None);
        };
        if line.indent < self.indent {
            return Ok(None);
        }
        if line.indent > self.indent || is_dash(line.text) {
            return Err(outside());
        }
        let (key, rest) = split_key(line.text).ok_or_else(outside)?;
        self.reader.at += 1;
        self.rest = rest;
        seed.deserialize(CowStrDeserializer::<Stop>::new(key))
            .map(Some)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, Stop> {
        let value = self.reader.value_after(self.indent, self.rest);
        seed.deserialize(Node {
            reader: self.reader,
            value,
            owner: self.indent,
        })
    }
}

/// The items of a block sequence.
struct Items<'r, 'a> {
    reader: &'r mut Reader<'a>,
    indent: usize,
    /// How many items are still to come, for the size hint that lets a `Vec` be allocated
    /// once at its final size.
    left: usize,
}

impl<'de> SeqAccess<'de> for Items<'_, 'de> {
    type Error = Stop;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, Stop> {
        let Some(line) = self.reader.peek() else {
            return Ok(None);
        };
        if line.indent < self.indent || !is_dash(line.text) {
            if line.indent > self.indent {
                return Err(outside());
            }
            return Ok(None);
        }
        if line.indent > self.indent {
            return Err(outside());
        }
        let value = self.reader.item(self.indent, line)?;
        self.left = self.left.saturating_sub(1);
        seed.deserialize(Node {
            reader: self.reader,
            value,
            owner: self.indent,
        })
        .map(Some)
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.left)
    }
}

/// `{}` and `[]`.
struct Empty;

impl<'de> MapAccess<'de> for Empty {
    type Error = Stop;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        _seed: K,
    ) -> Result<Option<K::Value>, Stop> {
        Ok(None)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, _seed: V) -> Result<V::Value, Stop> {
        Err(outside())
    }
}

impl<'de> SeqAccess<'de> for Empty {
    type Error = Stop;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        _seed: T,
    ) -> Result<Option<T::Value>, Stop> {
        Ok(None)
    }
}

/// The string a quoted or plain string scalar holds; anything else is outside.
fn unquoted(text: &str) -> Result<Cow<'_, str>, Stop> {
    if let Some(quoted) = text.strip_prefix('\'') {
        let (value, after) = single_quoted(quoted).ok_or_else(outside)?;
        trailing_ok(after).ok_or_else(outside)?;
        return Ok(value);
    }
    if let Some(quoted) = text.strip_prefix('"') {
        let (value, after) = double_quoted(quoted).ok_or_else(outside)?;
        trailing_ok(after).ok_or_else(outside)?;
        return Ok(value);
    }
    match plain(text) {
        Some(Plain::String(value)) => Ok(Cow::Borrowed(value)),
        _ => Err(outside()),
    }
}

/// A scalar written on one line, handed to `visitor` as JSON would hand it: strings, `null`,
/// booleans, integers (unsigned when not negative) and decimal fractions.
fn scalar<'de, V: Visitor<'de>>(text: &'de str, visitor: V) -> Result<V::Value, Stop> {
    if text.starts_with(['\'', '"']) {
        return match unquoted(text)? {
            Cow::Borrowed(value) => visitor.visit_borrowed_str(value),
            Cow::Owned(value) => visitor.visit_string(value),
        };
    }
    match text {
        "{}" => return visitor.visit_map(Empty),
        "[]" => return visitor.visit_seq(Empty),
        _ => {}
    }
    match plain(text).ok_or_else(outside)? {
        Plain::Null => visitor.visit_unit(),
        Plain::Literal("true") => visitor.visit_bool(true),
        Plain::Literal("false") => visitor.visit_bool(false),
        Plain::Literal(number) if number.contains('.') => {
            visitor.visit_f64(number.parse().map_err(|_| outside())?)
        }
        Plain::Literal(number) if number.starts_with('-') => {
            visitor.visit_i64(number.parse().map_err(|_| outside())?)
        }
        Plain::Literal(number) => visitor.visit_u64(number.parse().map_err(|_| outside())?),
        Plain::String(value) => visitor.visit_borrowed_str(value),
    }
}

/// A plain scalar's meaning.
enum Plain<'a> {
    Null,
    /// JSON text as it stands: `true`, `false`, a number.
    Literal(&'a str),
    String(&'a str),
}

/// Reads a plain scalar, or `None` where YAML would read it some way this reader does not.
fn plain(text: &str) -> Option<Plain<'_>> {
    let mut chars = text.chars();
    let first = chars.next()?;
    if "&*!|>'\"%@`{}[],#".contains(first) {
        return None;
    }
    // `-`, `?` and `:` start a plain scalar only when something other than a space follows.
    if "-?:".contains(first) && chars.next().is_none_or(|c| c == ' ') {
        return None;
    }
    if text.ends_with(':') || holds_key_or_comment(text) {
        return None;
    }
    Some(match text {
        "null" | "~" => Plain::Null,
        "true" | "false" => Plain::Literal(text),
        "Null" | "NULL" | "True" | "TRUE" | "False" | "FALSE" => return None,
        _ if is_number(text) => Plain::Literal(text),
        _ if looks_numeric(text) => return None,
        _ if text.starts_with("<<") => return None,
        _ => Plain::String(text),
    })
}

/// Whether `text` holds `: ` (which would make it a key) or ` #` (a comment).
fn holds_key_or_comment(text: &str) -> bool {
    text.as_bytes()
        .windows(2)
        .any(|pair| matches!(pair, [b':', b' '] | [b' ', b'#']))
}

/// A number written the way JSON writes it too: an integer without leading zeros, or a
/// decimal fraction.
fn is_number(text: &str) -> bool {
    let digits = text.strip_prefix('-').unwrap_or(text);
    let (whole, fraction) = match digits.split_once('.') {
        Some((whole, fraction)) => (whole, Some(fraction)),
        None => (digits, None),
    };
    !whole.is_empty()
        && whole.bytes().all(|b| b.is_ascii_digit())
        && (whole == "0" || !whole.starts_with('0'))
        && fraction.is_none_or(|f| !f.is_empty() && f.bytes().all(|b| b.is_ascii_digit()))
}

/// Text YAML might read as a number or special value in a way [`is_number`] does not cover
/// (`+1`, `0x1F`, `1e3`, `.inf`, `012`, `nan`); an address like `10.0.0.1` or a version like
/// `1.27.2` is text to both.
fn looks_numeric(text: &str) -> bool {
    let body = text.trim_start_matches(['-', '+']);
    // Past its sign, every such form starts with a digit, a dot or an underscore, but for the
    // words Rust reads as floats.
    if !body
        .bytes()
        .next()
        .is_some_and(|b| b.is_ascii_digit() || b == b'.' || b == b'_')
    {
        return ["inf", "infinity", "nan"]
            .iter()
            .any(|word| body.eq_ignore_ascii_case(word));
    }
    text.parse::<f64>().is_ok()
        || body.starts_with('.')
        || [("0x", 16), ("0o", 8), ("0b", 2)]
            .iter()
            .any(|(prefix, radix)| {
                body.strip_prefix(prefix).is_some_and(|digits| {
                    !digits.is_empty() && digits.chars().all(|c| c.is_digit(*radix) || c == '_')
                })
            })
        || body.contains('_')
            && body
                .bytes()
                .all(|b| b.is_ascii_digit() || b == b'_' || b == b'.')
}

/// Splits `key: rest` (or `key:`); the key plain or quoted.
fn split_key(text: &str) -> Option<(Cow<'_, str>, &str)> {
    let (key, after) = if let Some(quoted) = text.strip_prefix('"') {
        double_quoted(quoted)?
    } else if let Some(quoted) = text.strip_prefix('\'') {
        single_quoted(quoted)?
    } else {
        let colon = text
            .find(": ")
            .or_else(|| text.ends_with(':').then(|| text.len() - 1))?;
        let key = &text[..colon];
        if key.is_empty() || key.contains(" #") || "&*!|>%@`{[?-#".contains(key.chars().next()?) {
            return None;
        }
        (Cow::Borrowed(key), &text[colon..])
    };
    let rest = after.strip_prefix(':')?;
    if !(rest.is_empty() || rest.starts_with(' ')) {
        return None;
    }
    let rest = rest.trim_start();
    // A comment after the colon leaves the value empty.
    let rest = if rest.starts_with('#') { "" } else { rest };
    Some((key, rest))
}

/// What may follow a closing quote: nothing, or a comment.
fn trailing_ok(after: &str) -> Option<()> {
    let after = after.trim_start();
    (after.is_empty() || after.starts_with('#')).then_some(())
}

/// A single-quoted scalar closed on this line (after the opening quote): its value and what
/// follows the closing quote.
fn single_quoted(text: &str) -> Option<(Cow<'_, str>, &str)> {
    let end = text.find('\'')?;
    if !text[end + 1..].starts_with('\'') {
        return Some((Cow::Borrowed(&text[..end]), &text[end + 1..]));
    }
    let mut value = String::new();
    let mut rest = text;
    loop {
        let end = rest.find('\'')?;
        value.push_str(&rest[..end]);
        rest = &rest[end + 1..];
        if let Some(more) = rest.strip_prefix('\'') {
            value.push('\'');
            rest = more;
        } else {
            return Some((Cow::Owned(value), rest));
        }
    }
}

/// A double-quoted scalar closed on this line (after the opening quote).
fn double_quoted(text: &str) -> Option<(Cow<'_, str>, &str)> {
    if let Some(end) = text.find(['"', '\\'])
        && text[end..].starts_with('"')
    {
        return Some((Cow::Borrowed(&text[..end]), &text[end + 1..]));
    }
    let mut value = String::new();
    let mut chars = text.char_indices();
    while let Some((at, c)) = chars.next() {
        match c {
            '"' => return Some((Cow::Owned(value), &text[at + 1..])),
            '\\' => {
                let (_, escape) = chars.next()?;
                match escape {
                    'n' => value.push('\n'),
                    't' => value.push('\t'),
                    'r' => value.push('\r'),
                    '0' => value.push('\0'),
                    '"' => value.push('"'),
                    '\\' => value.push('\\'),
                    '/' => value.push('/'),
                    ' ' => value.push(' '),
                    'u' | 'U' | 'x' => {
                        let width = match escape {
                            'x' => 2,
                            'u' => 4,
                            _ => 8,
                        };
                        let mut code = String::new();
                        for _ in 0..width {
                            code.push(chars.next()?.1);
                        }
                        value.push(char::from_u32(u32::from_str_radix(&code, 16).ok()?)?);
                    }
                    _ => return None,
                }
            }
            _ => value.push(c),
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The reader's JSON, or `None`, beside serde_yaml's reading of the same text.
    fn both(text: &str) -> (Option<serde_json::Value>, serde_json::Value) {
        let fast = from_str::<serde_json::Value>(text);
        let general: serde_json::Value = serde_yaml::from_str(text).expect("valid YAML");
        (fast, general)
    }

    #[test]
    fn kubectl_s_yaml_reads_as_the_general_parser_reads_it() {
        let text = r#"apiVersion: v1
kind: Pod
metadata:
  annotations:
    kubectl.kubernetes.io/last-applied-configuration: |
      {"apiVersion":"v1","kind":"Pod"}
    note: 'it''s here'
    quoted: "tab\there \"q\" \u00e9"
    empty: ""
  creationTimestamp: "2026-01-01T00:00:00Z"
  labels:
    app: web
    version: "1.0"
  name: web-0
  # a comment
  ownerReferences:
  - apiVersion: apps/v1
    blockOwnerDeletion: true
    controller: true
    kind: ReplicaSet
    name: web-5d8f
    uid: 0f6c1c1e-1111-2222-3333-444455556666
spec:
  containers:
  - args:
    - --port=8080
    - run
    command: []
    env:
    - name: MODE
      value: "true"
    - name: EMPTY
    image: nginx:1.27.2
    resources: {}
    ports:
    - containerPort: 8080
      protocol: TCP
  nodeSelector: {}
  script: |-
    line one

    line three
  kept: |+
    kept

  priority: 0
  weight: 1.5
  negative: -3
status:
  phase: Running
  startTime: null
  message: a plain sentence, with commas and a colon:inside
  podIP: 10.244.0.5
  tag: 1.27.2
  answer: yes
"#;
        let (fast, general) = both(text);
        assert_eq!(fast, Some(general));
    }

    #[test]
    fn a_list_item_reads_in_place_as_it_reads_re_indented() {
        let item = "- apiVersion: v1\n  kind: Pod\n  metadata:\n    name: web-0\n\n  spec:\n    containers:\n    - name: web\n      args:\n      - run\n      - --port=8080\n    - name: side\n      workingDir: |\n        /one\n\n        /two\n";
        let standalone = crate::objects::YamlItem(item).standalone();
        let general: serde_json::Value = serde_yaml::from_str(&standalone).expect("valid YAML");
        assert_eq!(from_item::<serde_json::Value>(item), Some(general.clone()));
        assert_eq!(from_str::<serde_json::Value>(&standalone), Some(general));
        let pod: k8s_openapi::api::core::v1::Pod = from_item(item).expect("a pod");
        let containers = &pod.spec.expect("spec").containers;
        assert_eq!(
            containers[0].args.as_deref(),
            Some(&["run".to_owned(), "--port=8080".to_owned()][..])
        );
        assert_eq!(containers[1].working_dir.as_deref(), Some("/one\n\n/two\n"));
        // A line outside the item's indentation is no item kubectl writes.
        assert_eq!(from_item::<serde_json::Value>("- a: 1\nb: 2\n"), None);
    }

    #[test]
    fn what_the_reader_does_not_cover_is_left_to_the_general_parser() {
        for text in [
            "a: &anchor 1\nb: *anchor\n",
            "a: !!str 1\n",
            "a: >\n  folded\n  text\n",
            "a: {b: 1}\n",
            "a: [1, 2]\n",
            "a: plain\n  continued\n",
            "a: \"open\n  quoted\"\n",
            "a: 0x1F\n",
            "a: 0b101\n",
            "a: 1e3\n",
            "a: 012\n",
            "a: True\n",
            "a: .inf\n",
            "a: nan\n",
            "a: +1\n",
            "a: -.inf\n",
            "a: Infinity\n",
            "a: -NaN\n",
            "a: 1_000\n",
            "a: text # a comment\n",
            "- a\n- b\n",
            "a: |2\n   indented\n",
        ] {
            let (fast, _) = both(text);
            assert_eq!(fast, None, "{text:?}");
        }
    }
}
