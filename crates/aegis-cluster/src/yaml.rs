//! A fast reader of the YAML that kubectl (and `aegis snapshot`) writes: block mappings and
//! sequences, plain, single- and double-quoted scalars on one line, literal block scalars
//! (`|`, `|-`, `|+`), empty flow collections and comments. It turns one document into JSON text,
//! which serde_json then decodes into typed objects several times faster than a general YAML
//! parser does. Anything outside that subset — anchors, tags, folded or multi-line scalars,
//! non-empty flow collections, scalars whose type YAML reads differently from the plain cases
//! — makes it answer `None`, and the caller reads the document with the general parser, so the
//! result never depends on which reader ran.

use std::fmt::Write as _;

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

/// The JSON text of a YAML document in the subset, or `None`.
pub fn to_json(document: &str) -> Option<String> {
    let mut lines: Vec<Line<'_>> = Vec::new();
    for raw in document.lines() {
        if raw.contains('\t') {
            return None;
        }
        let text = raw.trim_start_matches(' ');
        let text = text.trim_end();
        if lines.is_empty() && (text == "---" || text.starts_with('%')) {
            return None;
        }
        lines.push(Line {
            indent: raw.len() - raw.trim_start_matches(' ').len(),
            text,
            raw,
        });
    }
    let mut reader = Reader {
        lines,
        at: 0,
        out: String::with_capacity(document.len()),
    };
    reader.skip_blank();
    let first = reader.lines.get(reader.at)?;
    if first.indent != 0 || first.text.starts_with("- ") || first.text == "-" {
        return None;
    }
    reader.mapping(0)?;
    reader.skip_blank();
    (reader.at == reader.lines.len()).then_some(reader.out)
}

struct Reader<'a> {
    lines: Vec<Line<'a>>,
    at: usize,
    out: String,
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

    /// A block mapping whose keys sit at `indent`.
    fn mapping(&mut self, indent: usize) -> Option<()> {
        self.out.push('{');
        let mut first = true;
        while let Some(line) = self.peek() {
            if line.indent < indent {
                break;
            }
            if line.indent > indent || line.text.starts_with("- ") || line.text == "-" {
                return None;
            }
            let (key, rest) = split_key(line.text)?;
            if !first {
                self.out.push(',');
            }
            first = false;
            write_string(&mut self.out, &key);
            self.out.push(':');
            self.at += 1;
            self.value_after(indent, rest)?;
        }
        self.out.push('}');
        Some(())
    }

    /// The value of a key at `indent` whose line continues with `rest`.
    fn value_after(&mut self, indent: usize, rest: &str) -> Option<()> {
        if rest.is_empty() {
            return match self.peek() {
                Some(next) if next.indent > indent => {
                    if next.text.starts_with("- ") || next.text == "-" {
                        self.sequence(next.indent)
                    } else {
                        self.mapping(next.indent)
                    }
                }
                // kubectl writes a mapping's sequences at the key's own indentation.
                Some(next)
                    if next.indent == indent
                        && (next.text.starts_with("- ") || next.text == "-") =>
                {
                    self.sequence(indent)
                }
                _ => {
                    self.out.push_str("null");
                    Some(())
                }
            };
        }
        if let Some(chomping) = rest.strip_prefix('|') {
            return self.literal(indent, chomping);
        }
        self.scalar(rest)?;
        // A deeper line after a scalar would continue it (a multi-line plain scalar).
        match self.peek() {
            Some(next) if next.indent > indent => None,
            _ => Some(()),
        }
    }

    /// A block sequence whose dashes sit at `indent`.
    fn sequence(&mut self, indent: usize) -> Option<()> {
        self.out.push('[');
        let mut first = true;
        while let Some(line) = self.peek() {
            if line.indent < indent || !(line.text.starts_with("- ") || line.text == "-") {
                if line.indent > indent {
                    return None;
                }
                break;
            }
            if line.indent > indent {
                return None;
            }
            if !first {
                self.out.push(',');
            }
            first = false;
            let rest = line.text.strip_prefix('-').unwrap_or_default().trim_start();
            let inner = indent + (line.text.len() - rest.len());
            if rest.is_empty() {
                self.at += 1;
                match self.peek() {
                    Some(next) if next.indent > indent => {
                        if next.text.starts_with("- ") || next.text == "-" {
                            self.sequence(next.indent)?;
                        } else {
                            self.mapping(next.indent)?;
                        }
                    }
                    _ => self.out.push_str("null"),
                }
            } else if rest.starts_with("- ") || rest == "-" {
                return None;
            } else if split_key(rest).is_some() {
                // `- key: value`: a mapping whose first key sits after the dash.
                self.lines[self.at] = Line {
                    indent: inner,
                    text: rest,
                    raw: line.raw,
                };
                self.mapping(inner)?;
            } else {
                self.at += 1;
                if rest.starts_with('|') {
                    return None;
                }
                self.scalar(rest)?;
                if self.peek().is_some_and(|next| next.indent > indent) {
                    return None;
                }
            }
        }
        self.out.push(']');
        Some(())
    }

    /// A literal block scalar of a key at `indent`; `header` is what follows the `|`.
    fn literal(&mut self, indent: usize, header: &str) -> Option<()> {
        let keep = match header {
            "" => None,
            "-" => Some(false),
            "+" => Some(true),
            _ => return None,
        };
        let mut content: Vec<&str> = Vec::new();
        let mut block_indent = None;
        while let Some(line) = self.lines.get(self.at) {
            if line.text.is_empty() {
                // Spaces beyond the block's indentation on a blank line would be content.
                if block_indent.is_some_and(|at| line.raw.len() > at) {
                    return None;
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
                return None;
            }
            content.push(&line.raw[at..]);
            self.at += 1;
        }
        block_indent?;
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
        write_string(&mut self.out, &text);
        Some(())
    }

    /// A scalar written on one line.
    fn scalar(&mut self, text: &str) -> Option<()> {
        if let Some(quoted) = text.strip_prefix('\'') {
            let (value, after) = single_quoted(quoted)?;
            trailing_ok(after)?;
            write_string(&mut self.out, &value);
            return Some(());
        }
        if let Some(quoted) = text.strip_prefix('"') {
            let (value, after) = double_quoted(quoted)?;
            trailing_ok(after)?;
            write_string(&mut self.out, &value);
            return Some(());
        }
        match text {
            "{}" => self.out.push_str("{}"),
            "[]" => self.out.push_str("[]"),
            _ => {
                let plain = plain(text)?;
                match plain {
                    Plain::Null => self.out.push_str("null"),
                    Plain::Literal(literal) => self.out.push_str(literal),
                    Plain::String(value) => write_string(&mut self.out, value),
                }
            }
        }
        Some(())
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
    if text.contains(" #") || text.contains(": ") || text.ends_with(':') {
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
fn split_key(text: &str) -> Option<(String, &str)> {
    let (key, after) = if let Some(quoted) = text.strip_prefix('"') {
        let (key, after) = double_quoted(quoted)?;
        (key, after)
    } else if let Some(quoted) = text.strip_prefix('\'') {
        let (key, after) = single_quoted(quoted)?;
        (key, after)
    } else {
        let colon = text
            .find(": ")
            .or_else(|| text.ends_with(':').then(|| text.len() - 1))?;
        let key = &text[..colon];
        if key.is_empty() || key.contains(" #") || "&*!|>%@`{[?-#".contains(key.chars().next()?) {
            return None;
        }
        (key.to_owned(), &text[colon..])
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
fn single_quoted(text: &str) -> Option<(String, &str)> {
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
            return Some((value, rest));
        }
    }
}

/// A double-quoted scalar closed on this line (after the opening quote).
fn double_quoted(text: &str) -> Option<(String, &str)> {
    let mut value = String::new();
    let mut chars = text.char_indices();
    while let Some((at, c)) = chars.next() {
        match c {
            '"' => return Some((value, &text[at + 1..])),
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

/// Writes `text` as a JSON string.
fn write_string(out: &mut String, text: &str) {
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if u32::from(c) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The reader's JSON, or `None`, beside serde_yaml's reading of the same text.
    fn both(text: &str) -> (Option<serde_json::Value>, serde_json::Value) {
        let fast = to_json(text).map(|json| {
            serde_json::from_str(&json).unwrap_or_else(|e| panic!("invalid JSON {json}: {e}"))
        });
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
            "- a\n- b\n",
            "a: |2\n   indented\n",
        ] {
            let (fast, _) = both(text);
            assert_eq!(fast, None, "{text:?}");
        }
    }
}
