//! A suite file as a YAML tree with a position on every node and key: parsed once, before any
//! variable is interpolated, so keys and allowed values always appear in errors as written.
//!
//! Aliases share the anchored node (nothing is copied); the expanded size of the document is
//! counted as it is built and capped (see [`Limits`]), so an alias bomb stops with a message
//! that names the limit, while a real suite that refers to one anchor thousands of times loads.

use std::collections::HashMap;
use std::fmt;
use std::rc::Rc;

use granit_parser::{ErrorKind, Event, Parser, ScalarStyle, ScanError, Span};

/// A position in a suite file, both 1-based.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default, Hash)]
pub struct Pos {
    pub line: u64,
    pub column: u64,
}

impl fmt::Display for Pos {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.column)
    }
}

/// How a scalar was written: plain scalars are typed the YAML way (`5432` is a number), quoted
/// and block scalars are always text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    Plain,
    Quoted,
    Block,
}

#[derive(Debug)]
pub struct Node {
    pub pos: Pos,
    /// Byte range of the node in the (line-ending normalised) source.
    pub range: (usize, usize),
    pub value: Value,
    /// Nodes in this subtree with aliases expanded (saturating).
    pub weight: u64,
}

#[derive(Debug)]
pub enum Value {
    Scalar { text: String, style: Style },
    Seq(Vec<Rc<Node>>),
    Map(Vec<Entry>),
}

#[derive(Debug)]
pub struct Entry {
    pub key: String,
    pub key_pos: Pos,
    pub value: Rc<Node>,
}

impl Node {
    /// The text of a scalar node.
    pub fn scalar(&self) -> Option<(&str, Style)> {
        match &self.value {
            Value::Scalar { text, style } => Some((text, *style)),
            _ => None,
        }
    }

    pub fn entries(&self) -> Option<&[Entry]> {
        match &self.value {
            Value::Map(entries) => Some(entries),
            _ => None,
        }
    }

    pub fn items(&self) -> Option<&[Rc<Node>]> {
        match &self.value {
            Value::Seq(items) => Some(items),
            _ => None,
        }
    }

    /// The value under `key` in a map node.
    pub fn get(&self, key: &str) -> Option<&Rc<Node>> {
        self.entries()?
            .iter()
            .find(|e| e.key == key)
            .map(|e| &e.value)
    }

    /// A YAML null: `~`, `null`, or nothing at all, written plain.
    pub fn is_null(&self) -> bool {
        matches!(self.scalar(), Some((text, Style::Plain)) if is_null_text(text))
    }

    /// Follows a dotted path (`connection.port`, `latency.1`) through maps and lists.
    pub fn path(&self, path: &str) -> Option<&Node> {
        let mut node = self;
        if path.is_empty() {
            return Some(node);
        }
        for part in path.split('.') {
            node = match &node.value {
                Value::Map(entries) => &entries.iter().find(|e| e.key == part)?.value,
                Value::Seq(items) => items.get(part.parse::<usize>().ok()?)?,
                Value::Scalar { .. } => return None,
            };
        }
        Some(node)
    }

    /// Every scalar in the subtree, aliases included, in document order.
    pub fn scalars<'n>(&'n self, out: &mut Vec<&'n Node>) {
        match &self.value {
            Value::Scalar { .. } => out.push(self),
            Value::Seq(items) => items.iter().for_each(|n| n.scalars(out)),
            Value::Map(entries) => entries.iter().for_each(|e| e.value.scalars(out)),
        }
    }

    /// How the node looks, for "found …" in messages.
    pub fn describe(&self) -> String {
        match &self.value {
            Value::Scalar { text, style } => {
                if *style == Style::Plain && is_null_text(text) {
                    "nothing (an empty value)".to_owned()
                } else {
                    format!("`{}`", crate::text::clip(text, 80))
                }
            }
            Value::Seq(_) => "a list".to_owned(),
            Value::Map(_) => "a map".to_owned(),
        }
    }
}

pub fn is_null_text(text: &str) -> bool {
    matches!(text, "" | "~" | "null" | "Null" | "NULL")
}

/// Resource limits that real suites never meet.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Nodes in the document once aliases are expanded.
    pub max_nodes: u64,
}

/// Environment variable that raises [`Limits::max_nodes`].
pub const MAX_NODES_VAR: &str = "ATTEST_MAX_YAML_NODES";
/// Default of [`Limits::max_nodes`]: a 50,000-check suite with an anchor per check uses about
/// a tenth of it.
pub const DEFAULT_MAX_NODES: u64 = 10_000_000;

impl Default for Limits {
    fn default() -> Self {
        let max_nodes = std::env::var(MAX_NODES_VAR)
            .ok()
            .and_then(|v| v.trim().replace('_', "").parse().ok())
            .unwrap_or(DEFAULT_MAX_NODES);
        Limits { max_nodes }
    }
}

/// A problem found while reading the YAML itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyntaxError {
    pub pos: Pos,
    pub message: String,
}

/// A suite's text after decoding: UTF-8, with CRLF and lone CR line ends turned into LF so
/// that line and column numbers match what editors show.
pub fn decode(bytes: &[u8]) -> Result<String, SyntaxError> {
    let text = match std::str::from_utf8(bytes) {
        Ok(text) => text,
        Err(e) => {
            let valid = &bytes[..e.valid_up_to()];
            let valid = std::str::from_utf8(valid).unwrap_or_default();
            let line = valid.matches('\n').count() as u64 + 1;
            let column = valid.rsplit('\n').next().unwrap_or("").chars().count() as u64 + 1;
            let byte = bytes[e.valid_up_to()];
            return Err(SyntaxError {
                pos: Pos { line, column },
                message: format!(
                    "expected UTF-8 text, found the byte 0x{byte:02X}; save the file as UTF-8"
                ),
            });
        }
    };
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    if text.contains('\r') {
        Ok(text.replace("\r\n", "\n").replace('\r', "\n"))
    } else {
        Ok(text.to_owned())
    }
}

/// Parses one YAML document. `Ok(None)` for a file with no document (empty or comments only).
pub fn parse(text: &str, limits: Limits) -> Result<Option<Rc<Node>>, SyntaxError> {
    let options = granit_parser::options! { emit_comments: false, emit_anchor_events: true };
    let parser = Parser::new_from_str_with_options(text, options);
    let mut builder = Builder {
        text,
        limits,
        stack: Vec::new(),
        anchors: HashMap::new(),
        anchor_names: HashMap::new(),
        expanded: 0,
        root: None,
        documents: 0,
    };
    for event in parser {
        let (event, span) = event.map_err(|e| scan_error(text, &e))?;
        if builder.event(event, span)? {
            break;
        }
    }
    Ok(builder.root)
}

enum Frame {
    Seq {
        start: Span,
        anchor: usize,
        items: Vec<Rc<Node>>,
        weight: u64,
    },
    Map {
        start: Span,
        anchor: usize,
        entries: Vec<Entry>,
        /// Where each key sits in `entries`: a duplicate is found in constant time, so a map
        /// of 150,000 requirements loads in linear time, not quadratic.
        index: HashMap<String, usize>,
        merges: Vec<(Pos, Rc<Node>)>,
        key: Option<(String, Pos)>,
        weight: u64,
    },
}

struct Builder<'t> {
    text: &'t str,
    limits: Limits,
    stack: Vec<Frame>,
    anchors: HashMap<usize, Rc<Node>>,
    /// Anchor names by id, for messages.
    anchor_names: HashMap<usize, String>,
    expanded: u64,
    root: Option<Rc<Node>>,
    documents: usize,
}

fn pos_of(span: &Span) -> Pos {
    Pos {
        line: span.start.line() as u64,
        column: span.start.col() as u64 + 1,
    }
}

fn byte_range(text: &str, span: &Span) -> (usize, usize) {
    let start = span.start.byte_offset().unwrap_or(0).min(text.len());
    let end = span
        .end
        .byte_offset()
        .unwrap_or(start)
        .clamp(start, text.len());
    (start, end)
}

impl Builder<'_> {
    /// Handles one event; `true` once the document is complete.
    fn event(&mut self, event: Event<'_>, span: Span) -> Result<bool, SyntaxError> {
        let is_map = matches!(event, Event::MappingStart(..));
        match event {
            Event::StreamStart => {}
            Event::Anchor(id, name) => {
                self.anchor_names.insert(id, name.into_owned());
            }
            Event::StreamEnd => return Ok(true),
            Event::DocumentStart(..) => {
                self.documents += 1;
                if self.documents > 1 && self.root.is_some() {
                    return Err(SyntaxError {
                        pos: pos_of(&span),
                        message: "expected one YAML document per suite file, found a second one (`---`) here; put each suite in its own file".into(),
                    });
                }
            }
            Event::DocumentEnd => {}
            Event::Alias(id) => {
                let Some(target) = self.anchors.get(&id).cloned() else {
                    let name = self.anchor_names.get(&id).cloned().unwrap_or_default();
                    return Err(SyntaxError {
                        pos: pos_of(&span),
                        message: format!(
                            "alias `*{name}` refers to a map or list that contains it; recursive structures cannot be checks"
                        ),
                    });
                };
                self.expanded = self.expanded.saturating_add(target.weight);
                self.check_budget(&span, true)?;
                self.push(target, &span)?;
            }
            Event::Scalar(text, style, anchor, tag) => {
                let mut style = match style {
                    ScalarStyle::Plain => Style::Plain,
                    ScalarStyle::SingleQuoted | ScalarStyle::DoubleQuoted => Style::Quoted,
                    ScalarStyle::Literal | ScalarStyle::Folded => Style::Block,
                };
                if let Some(tag) = tag {
                    if tag.is_yaml_core_schema_tag("str") {
                        style = Style::Quoted;
                    } else if !["int", "float", "bool", "null"]
                        .iter()
                        .any(|s| tag.is_yaml_core_schema_tag(s))
                    {
                        return Err(self.tag_error(&span, &tag.original()));
                    }
                }
                self.expanded = self.expanded.saturating_add(1);
                self.check_budget(&span, false)?;
                let node = Rc::new(Node {
                    pos: pos_of(&span),
                    range: byte_range(self.text, &span),
                    value: Value::Scalar {
                        text: text.into_owned(),
                        style,
                    },
                    weight: 1,
                });
                if anchor != 0 {
                    self.anchors.insert(anchor, node.clone());
                }
                self.push(node, &span)?;
            }
            Event::SequenceStart(_, anchor, tag) | Event::MappingStart(_, anchor, tag) => {
                if let Some(tag) = tag {
                    let core = if is_map { "map" } else { "seq" };
                    if !tag.is_yaml_core_schema_tag(core) {
                        return Err(self.tag_error(&span, &tag.original()));
                    }
                }
                if let Some(Frame::Map { key: None, .. }) = self.stack.last() {
                    return Err(SyntaxError {
                        pos: pos_of(&span),
                        message:
                            "expected a key (plain text) here, found a list or map used as a key"
                                .into(),
                    });
                }
                self.expanded = self.expanded.saturating_add(1);
                self.check_budget(&span, false)?;
                self.stack.push(if is_map {
                    Frame::Map {
                        start: span,
                        anchor,
                        entries: Vec::new(),
                        index: HashMap::new(),
                        merges: Vec::new(),
                        key: None,
                        weight: 1,
                    }
                } else {
                    Frame::Seq {
                        start: span,
                        anchor,
                        items: Vec::new(),
                        weight: 1,
                    }
                });
            }
            Event::SequenceEnd | Event::MappingEnd => {
                let frame = self.stack.pop().expect("balanced events");
                let (node, anchor) = match frame {
                    Frame::Seq {
                        start,
                        anchor,
                        items,
                        weight,
                    } => (
                        Node {
                            pos: pos_of(&start),
                            range: (
                                byte_range(self.text, &start).0,
                                byte_range(self.text, &span).1,
                            ),
                            value: Value::Seq(items),
                            weight,
                        },
                        anchor,
                    ),
                    Frame::Map {
                        start,
                        anchor,
                        mut entries,
                        mut index,
                        merges,
                        weight,
                        ..
                    } => {
                        let weight = merge(&mut entries, &mut index, merges, weight)?;
                        (
                            Node {
                                pos: pos_of(&start),
                                range: (
                                    byte_range(self.text, &start).0,
                                    byte_range(self.text, &span).1,
                                ),
                                value: Value::Map(entries),
                                weight,
                            },
                            anchor,
                        )
                    }
                };
                let node = Rc::new(node);
                if anchor != 0 {
                    self.anchors.insert(anchor, node.clone());
                }
                self.push(node, &span)?;
            }
            // Metadata this parser was not asked to emit.
            _ => {}
        }
        Ok(false)
    }

    fn tag_error(&self, span: &Span, tag: &str) -> SyntaxError {
        let pos = span
            .tag_start
            .map(|m| Pos {
                line: m.line() as u64,
                column: m.col() as u64 + 1,
            })
            .unwrap_or_else(|| pos_of(span));
        SyntaxError {
            pos,
            message: format!(
                "unknown YAML tag `{tag}`: suites use no tags (remove it; quote the value if the `!` belongs to it)"
            ),
        }
    }

    fn check_budget(&self, span: &Span, alias: bool) -> Result<(), SyntaxError> {
        if self.expanded <= self.limits.max_nodes {
            return Ok(());
        }
        let what = if alias {
            "this alias takes it"
        } else {
            "it gets"
        };
        Err(SyntaxError {
            pos: pos_of(span),
            message: format!(
                "the document expands to more than {} YAML nodes once its aliases are copied out, and {what} past the limit; the limit guards against alias bombs: if this suite is real, raise it with the environment variable {MAX_NODES_VAR}=N",
                self.limits.max_nodes
            ),
        })
    }

    /// Adds a finished node to its parent (or makes it the root).
    fn push(&mut self, node: Rc<Node>, span: &Span) -> Result<(), SyntaxError> {
        match self.stack.last_mut() {
            None => self.root = Some(node),
            Some(Frame::Seq { items, weight, .. }) => {
                *weight = weight.saturating_add(node.weight);
                items.push(node);
            }
            Some(Frame::Map {
                entries,
                index,
                merges,
                key,
                weight,
                ..
            }) => match key.take() {
                None => {
                    let Some((text, _)) = node.scalar() else {
                        return Err(SyntaxError {
                            pos: pos_of(span),
                            message: "expected a key (plain text) here, found a list or map used as a key".into(),
                        });
                    };
                    *key = Some((text.to_owned(), node.pos));
                }
                Some((name, key_pos)) => {
                    *weight = weight.saturating_add(node.weight).saturating_add(1);
                    if name == "<<" {
                        merges.push((key_pos, node));
                    } else if let Some(first) = index.get(&name).map(|&i| &entries[i]) {
                        return Err(SyntaxError {
                            pos: key_pos,
                            message: format!(
                                "key `{name}` appears twice in this map (first at line {}, column {}); keep one",
                                first.key_pos.line, first.key_pos.column
                            ),
                        });
                    } else {
                        index.insert(name.clone(), entries.len());
                        entries.push(Entry {
                            key: name,
                            key_pos,
                            value: node,
                        });
                    }
                }
            },
        }
        Ok(())
    }
}

/// YAML merge keys (`<<: *defaults`): keys of the merged maps that the map does not set itself.
fn merge(
    entries: &mut Vec<Entry>,
    index: &mut HashMap<String, usize>,
    merges: Vec<(Pos, Rc<Node>)>,
    weight: u64,
) -> Result<u64, SyntaxError> {
    let mut weight = weight;
    for (pos, value) in merges {
        let sources: Vec<&Node> = match &value.value {
            Value::Map(_) => vec![&value],
            Value::Seq(items) if items.iter().all(|i| i.entries().is_some()) => {
                items.iter().map(|i| &**i).collect()
            }
            _ => {
                return Err(SyntaxError {
                    pos,
                    message: format!(
                        "expected a map or a list of maps after the merge key `<<`, found {}",
                        value.describe()
                    ),
                })
            }
        };
        for source in sources {
            for entry in source.entries().unwrap_or_default() {
                if !index.contains_key(&entry.key) {
                    index.insert(entry.key.clone(), entries.len());
                    weight = weight.saturating_add(entry.value.weight).saturating_add(1);
                    entries.push(Entry {
                        key: entry.key.clone(),
                        key_pos: entry.key_pos,
                        value: entry.value.clone(),
                    });
                }
            }
        }
    }
    Ok(weight)
}

/// A scanner or parser error as `what was expected, what was found`, with a hint where one
/// mistake is common.
fn scan_error(text: &str, error: &ScanError) -> SyntaxError {
    let marker = error.marker();
    let pos = Pos {
        line: marker.line() as u64,
        column: marker.col() as u64 + 1,
    };
    let line_text = text
        .lines()
        .nth(pos.line.saturating_sub(1) as usize)
        .unwrap_or("");
    let message = match error.kind() {
        ErrorKind::UnknownAnchor => {
            let name = alias_name_at(line_text, pos.column);
            format!("alias `*{name}` refers to no anchor; define it earlier with `&{name}` (anchors must come before their aliases)")
        }
        ErrorKind::RecursionLimitExceeded => "expected at most 255 nested lists or maps, found more; this limit guards against malicious input and is not configurable".into(),
        ErrorKind::TabInIndentation
        | ErrorKind::TabInBlockIndentation
        | ErrorKind::TabNotAllowed
        | ErrorKind::TabInPlainScalar
        | ErrorKind::TabAtBlockScalarStart => {
            // The scanner may stop at the scalar before the tab: point at the tab itself.
            let from = marker.byte_offset().unwrap_or(0).min(text.len());
            let pos = text[from..].find('\t').map_or(pos, |i| offset_pos(text, from + i));
            return SyntaxError {
                pos,
                message: "expected spaces for indentation, found a tab; YAML indents with spaces only".into(),
            };
        }
        ErrorKind::UnclosedFlowCollection { open } => {
            let close = if *open == '[' { ']' } else { '}' };
            format!("expected `{close}` to close this `{open}`, found the end of the file")
        }
        ErrorKind::UnclosedQuotedScalar => "expected the closing quote of this string, found the end of the file".into(),
        other => {
            let mut message = format!("invalid YAML: {other}");
            if let Some(hint) = flow_interpolation_hint(line_text) {
                message.push_str(&hint);
            }
            message
        }
    };
    SyntaxError { pos, message }
}

fn offset_pos(text: &str, offset: usize) -> Pos {
    let before = &text[..offset];
    let line = before.matches('\n').count() as u64 + 1;
    let column = before.rsplit('\n').next().unwrap_or("").chars().count() as u64 + 1;
    Pos { line, column }
}

fn alias_name_at(line: &str, column: u64) -> String {
    let start = line
        .char_indices()
        .nth(column.saturating_sub(1) as usize)
        .map_or(0, |(i, _)| i);
    let rest = line[start..].trim_start_matches('*');
    rest.chars()
        .take_while(|c| !c.is_whitespace() && !",]}".contains(*c))
        .collect()
}

/// `{host: ${pg_host}}`: inside `{…}` or `[…]` the braces of an unquoted `${name}` end the
/// collection early; the fix is quotes.
fn flow_interpolation_hint(line: &str) -> Option<String> {
    let reference = line.find("${")?;
    let before = &line[..reference];
    let in_flow = before.contains('{') || before.contains('[');
    let quoted = before.ends_with('"') || before.ends_with('\'');
    (in_flow && !quoted).then(|| {
        let end = line[reference..]
            .find('}')
            .map_or(line.len(), |e| reference + e + 1);
        let var = &line[reference..end];
        format!(" (inside `{{…}}` or `[…]`, write `${{…}}` in quotes: `\"{var}\"`)")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree(text: &str) -> Rc<Node> {
        parse(text, Limits { max_nodes: 1000 }).unwrap().unwrap()
    }

    #[test]
    fn positions_are_one_based() {
        let root = tree("a: 1\nb:\n  c: x\n");
        let b = root.get("b").unwrap();
        assert_eq!(b.pos, Pos { line: 3, column: 3 });
        assert_eq!(
            root.entries().unwrap()[1].key_pos,
            Pos { line: 2, column: 1 }
        );
        assert_eq!(b.get("c").unwrap().pos, Pos { line: 3, column: 6 });
    }

    #[test]
    fn aliases_share_and_merges_fill_in() {
        let root = tree("a: &x {h: 1, p: 2}\nb: *x\nc:\n  <<: *x\n  p: 3\n");
        assert!(Rc::ptr_eq(root.get("a").unwrap(), root.get("b").unwrap()));
        let c = root.get("c").unwrap();
        assert_eq!(c.get("p").unwrap().scalar().unwrap().0, "3");
        assert_eq!(c.get("h").unwrap().scalar().unwrap().0, "1");
    }

    #[test]
    fn alias_bombs_stop_at_the_limit_with_its_name() {
        let bomb = "a: &a [x, x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\nc: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]\n";
        let err = parse(bomb, Limits { max_nodes: 1000 }).unwrap_err();
        assert!(err.message.contains(MAX_NODES_VAR), "{}", err.message);
        assert_eq!(err.pos.line, 3);
    }

    #[test]
    fn many_aliases_to_one_anchor_are_fine() {
        let mut text = String::from("base: &s {host: h, port: 1}\nlist:\n");
        for _ in 0..500 {
            text.push_str("  - *s\n");
        }
        assert!(parse(&text, Limits::default()).is_ok());
    }

    #[test]
    fn duplicate_keys_tags_and_second_documents_are_errors() {
        let err = parse("a: 1\nb: 2\na: 3\n", Limits::default()).unwrap_err();
        assert_eq!(err.pos, Pos { line: 3, column: 1 });
        assert!(err.message.contains("`a` appears twice"), "{}", err.message);
        let err = parse("a: !custom 1\n", Limits::default()).unwrap_err();
        assert!(err.message.contains("`!custom`"), "{}", err.message);
        assert_eq!(err.pos, Pos { line: 1, column: 4 });
        let err = parse("a: 1\n---\nb: 2\n", Limits::default()).unwrap_err();
        assert_eq!(err.pos.line, 2);
        let err = parse("a: *nope\n", Limits::default()).unwrap_err();
        assert!(err.message.contains("`*nope`"), "{}", err.message);
    }

    #[test]
    fn line_ends_and_encoding() {
        assert_eq!(decode(b"a: 1\r\nb: 2\rc: 3").unwrap(), "a: 1\nb: 2\nc: 3");
        let err = decode(b"a: 1\nb: \xff\n").unwrap_err();
        assert_eq!(err.pos, Pos { line: 2, column: 4 });
    }

    #[test]
    fn unquoted_interpolation_in_flow_maps_suggests_quotes() {
        let err = parse("c: {host: ${pg_host}}\n", Limits::default()).unwrap_err();
        assert!(err.message.contains("\"${pg_host}\""), "{}", err.message);
    }
}
