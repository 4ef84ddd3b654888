//! `${name}` in suite values, by docker-compose rules: `$$` is a literal dollar sign,
//! `${name:-fallback}` / `${name-fallback}` give a fallback when the variable is empty or unset
//! / unset, `${name:?message}` / `${name?message}` make it required with a message,
//! `${name:+other}` / `${name+other}` substitute `other` when it is set, and `$name` works too.
//!
//! Only YAML values are interpolated, never keys, and comments are not values: a `${x}` in a
//! comment is not a reference.

/// A piece of a value: literal text or a reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Token {
    Text(String),
    Var(Reference),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    pub name: String,
    /// Byte range of the whole reference (`${…}` or `$name`) in the text it came from.
    pub start: usize,
    pub end: usize,
    pub op: Option<(Op, Vec<Token>)>,
}

/// The docker-compose modifiers; `empty` is the `:` form (empty counts as unset).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Default { empty: bool },
    Required { empty: bool },
    Alternative { empty: bool },
}

/// A malformed reference, at a byte offset of the text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyntaxProblem {
    pub offset: usize,
    pub message: String,
}

fn is_name_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_'
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// Whether the text may hold a reference at all (cheap pre-check).
pub fn has_dollar(text: &str) -> bool {
    text.contains('$')
}

/// Splits a value into literal text and references.
pub fn tokens(text: &str) -> Result<Vec<Token>, SyntaxProblem> {
    let mut out = Vec::new();
    let end = parse_into(text, 0, text.len(), false, &mut out)?;
    debug_assert_eq!(end, text.len());
    Ok(out)
}

/// Parses `text[from..]`; inside a modifier's text (`nested`) stops at the matching `}`.
/// Returns where it stopped.
fn parse_into(
    text: &str,
    from: usize,
    limit: usize,
    nested: bool,
    out: &mut Vec<Token>,
) -> Result<usize, SyntaxProblem> {
    let mut literal = String::new();
    let mut i = from;
    let bytes = text.as_bytes();
    while i < limit {
        let c = text[i..].chars().next().expect("in bounds");
        if nested && c == '}' {
            flush(&mut literal, out);
            return Ok(i);
        }
        if c != '$' {
            literal.push(c);
            i += c.len_utf8();
            continue;
        }
        match bytes.get(i + 1) {
            Some(b'$') => {
                literal.push('$');
                i += 2;
            }
            Some(b'{') => {
                flush(&mut literal, out);
                let (reference, next) = braced(text, i, limit)?;
                out.push(Token::Var(reference));
                i = next;
            }
            Some(&b) if is_name_start(b as char) => {
                flush(&mut literal, out);
                let start = i;
                let mut end = i + 1;
                while end < limit && is_name_char(bytes[end] as char) {
                    end += 1;
                }
                out.push(Token::Var(Reference {
                    name: text[start + 1..end].to_owned(),
                    start,
                    end,
                    op: None,
                }));
                i = end;
            }
            // A `$` before anything else is just a dollar sign (`$5`, `a$`).
            _ => {
                literal.push('$');
                i += 1;
            }
        }
    }
    if nested {
        return Err(SyntaxProblem {
            offset: from,
            message: "expected `}` to close `${`, found the end of the value (write `$${` for a literal `${`)".into(),
        });
    }
    flush(&mut literal, out);
    Ok(i)
}

fn flush(literal: &mut String, out: &mut Vec<Token>) {
    if !literal.is_empty() {
        out.push(Token::Text(std::mem::take(literal)));
    }
}

/// `${name}`, `${name:-x}` … starting at the `$` at `start`.
fn braced(text: &str, start: usize, limit: usize) -> Result<(Reference, usize), SyntaxProblem> {
    let bytes = text.as_bytes();
    let name_start = start + 2;
    let mut i = name_start;
    while i < limit && is_name_char(bytes[i] as char) {
        i += 1;
    }
    let name = &text[name_start..i];
    let unterminated = || {
        SyntaxProblem {
        offset: start,
        message: "expected `}` to close `${`, found the end of the value (write `$${` for a literal `${`)".into(),
    }
    };
    if name.is_empty() || !is_name_start(name.chars().next().unwrap_or('0')) {
        let found: String = text[name_start..limit].chars().take(20).collect();
        return Err(SyntaxProblem {
            offset: start,
            message: format!(
                "expected a variable name (letters, digits, `_`, not starting with a digit) after `${{`, found `{found}` (write `$$` for a literal `$`)"
            ),
        });
    }
    if i >= limit {
        return Err(unterminated());
    }
    let rest = &text[i..limit];
    let (op, op_len) = if rest.starts_with('}') {
        return Ok((
            Reference {
                name: name.to_owned(),
                start,
                end: i + 1,
                op: None,
            },
            i + 1,
        ));
    } else if rest.starts_with(":-") {
        (Op::Default { empty: true }, 2)
    } else if rest.starts_with('-') {
        (Op::Default { empty: false }, 1)
    } else if rest.starts_with(":?") {
        (Op::Required { empty: true }, 2)
    } else if rest.starts_with('?') {
        (Op::Required { empty: false }, 1)
    } else if rest.starts_with(":+") {
        (Op::Alternative { empty: true }, 2)
    } else if rest.starts_with('+') {
        (Op::Alternative { empty: false }, 1)
    } else {
        let found = rest.chars().next().unwrap_or(' ');
        return Err(SyntaxProblem {
            offset: start,
            message: format!(
                "expected `}}`, `:-`, `-`, `:?`, `?`, `:+` or `+` after `${{{name}`, found `{found}`"
            ),
        });
    };
    let mut inner = Vec::new();
    let close = parse_into(text, i + op_len, limit, true, &mut inner)?;
    if close >= limit {
        return Err(unterminated());
    }
    Ok((
        Reference {
            name: name.to_owned(),
            start,
            end: close + 1,
            op: Some((op, inner)),
        },
        close + 1,
    ))
}

/// Every reference, modifier texts included, with whether a value is needed for it
/// (`${a:-x}` does not need `a`).
pub fn references(tokens: &[Token]) -> Vec<(&Reference, bool)> {
    let mut out = Vec::new();
    collect(tokens, &mut out);
    out
}

fn collect<'t>(tokens: &'t [Token], out: &mut Vec<(&'t Reference, bool)>) {
    for token in tokens {
        if let Token::Var(reference) = token {
            let required = match &reference.op {
                None => true,
                Some((Op::Required { .. }, _)) => true,
                Some(_) => false,
            };
            out.push((reference, required));
            if let Some((_, inner)) = &reference.op {
                collect(inner, out);
            }
        }
    }
}

/// Why a value could not be interpolated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExpandError {
    /// A variable with no value (name, byte offset of its reference).
    Unset { name: String, offset: usize },
    /// `${name:?message}` with no value.
    Required {
        name: String,
        offset: usize,
        message: String,
    },
}

/// Interpolates with `lookup` (a variable's value, `None` when it has none).
pub fn expand<'v>(
    tokens: &[Token],
    lookup: &dyn Fn(&str) -> Option<&'v str>,
) -> Result<String, ExpandError> {
    let mut out = String::new();
    expand_into(tokens, lookup, &mut out)?;
    Ok(out)
}

fn expand_into<'v>(
    tokens: &[Token],
    lookup: &dyn Fn(&str) -> Option<&'v str>,
    out: &mut String,
) -> Result<(), ExpandError> {
    for token in tokens {
        match token {
            Token::Text(text) => out.push_str(text),
            Token::Var(reference) => {
                let value = lookup(&reference.name);
                let usable = |empty: bool| value.filter(|v| !(empty && v.is_empty()));
                match &reference.op {
                    None => match value {
                        Some(v) => out.push_str(v),
                        None => {
                            return Err(ExpandError::Unset {
                                name: reference.name.clone(),
                                offset: reference.start,
                            })
                        }
                    },
                    Some((Op::Default { empty }, inner)) => match usable(*empty) {
                        Some(v) => out.push_str(v),
                        None => expand_into(inner, lookup, out)?,
                    },
                    Some((Op::Required { empty }, inner)) => match usable(*empty) {
                        Some(v) => out.push_str(v),
                        None => {
                            let mut message = String::new();
                            expand_into(inner, lookup, &mut message)?;
                            return Err(ExpandError::Required {
                                name: reference.name.clone(),
                                offset: reference.start,
                                message,
                            });
                        }
                    },
                    Some((Op::Alternative { empty }, inner)) => {
                        if usable(*empty).is_some() {
                            expand_into(inner, lookup, out)?;
                        }
                    }
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(text: &str, vars: &[(&'static str, &'static str)]) -> Result<String, ExpandError> {
        let tokens = tokens(text).unwrap();
        let lookup = |name: &str| vars.iter().find(|(n, _)| *n == name).map(|(_, v)| *v);
        expand(&tokens, &lookup)
    }

    #[test]
    fn compose_rules() {
        let vars = [("a", "A"), ("e", "")];
        assert_eq!(run("x${a}y$a", &vars).unwrap(), "xAyA");
        assert_eq!(run("$${a} $$ $5", &vars).unwrap(), "${a} $ $5");
        assert_eq!(run("${e:-d}|${e-d}|${u-d}", &vars).unwrap(), "d||d");
        assert_eq!(run("${a:+yes}${u:+no}", &vars).unwrap(), "yes");
        assert_eq!(run("${u:-${a}-x}", &vars).unwrap(), "A-x");
        assert!(matches!(
            run("${u:?give u}", &vars),
            Err(ExpandError::Required { message, .. }) if message == "give u"
        ));
        assert!(matches!(
            run("a ${u}", &vars),
            Err(ExpandError::Unset { offset: 2, .. })
        ));
    }

    #[test]
    fn malformed_references_say_what_was_expected() {
        assert!(tokens("${a").unwrap_err().message.contains("expected `}`"));
        assert!(tokens("${1a}")
            .unwrap_err()
            .message
            .contains("variable name"));
        assert!(tokens("${a!}").unwrap_err().message.contains("found `!`"));
        assert!(tokens("${}").is_err());
    }

    #[test]
    fn references_know_which_are_required() {
        let tokens = tokens("${a} ${b:-x} ${c:?m} ${d:-${e}}").unwrap();
        let refs: Vec<(&str, bool)> = references(&tokens)
            .into_iter()
            .map(|(r, req)| (r.name.as_str(), req))
            .collect();
        assert_eq!(
            refs,
            vec![
                ("a", true),
                ("b", false),
                ("c", true),
                ("d", false),
                ("e", true)
            ]
        );
    }
}
