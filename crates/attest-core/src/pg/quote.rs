//! Names and values turned into SQL text: the one way attest quotes identifiers and literals.

/// A quoted identifier: `"paperless_user"`, safe whatever the name holds.
pub fn ident(name: &str) -> String {
    postgres_protocol::escape::escape_identifier(name)
}

/// A possibly schema-qualified name as a suite writes it (`documents`, `public.documents`,
/// `"My Schema"."odd.name"`), quoted part by part: the one way attest turns a table name into
/// SQL. A dot splits parts unless it is inside double quotes (`""` there is a quote); unquoted
/// parts are kept as written, case included, like every name attest quotes.
pub fn quote_qualified(name: &str) -> String {
    let mut parts = vec![String::new()];
    let mut quoted = false;
    let mut chars = name.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' if quoted && chars.peek() == Some(&'"') => {
                chars.next();
                parts.last_mut().expect("never empty").push('"');
            }
            '"' => quoted = !quoted,
            '.' if !quoted => parts.push(String::new()),
            c => parts.last_mut().expect("never empty").push(c),
        }
    }
    quote_parts(&parts)
}

/// Parts already split (`schema`, `table` as the catalog gives them), quoted and joined.
pub fn quote_parts<S: AsRef<str>>(parts: &[S]) -> String {
    parts
        .iter()
        .map(|part| ident(part.as_ref()))
        .collect::<Vec<_>>()
        .join(".")
}

/// A quoted literal for statements that take no parameters (CREATE ROLE … PASSWORD).
pub fn literal(value: &str) -> String {
    postgres_protocol::escape::escape_literal(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qualified_names_split_on_dots_outside_quotes() {
        assert_eq!(quote_qualified("documents"), r#""documents""#);
        assert_eq!(
            quote_qualified("public.Documents"),
            r#""public"."Documents""#
        );
        assert_eq!(
            quote_qualified(r#""My Schema"."odd.na""me""#),
            r#""My Schema"."odd.na""me""#
        );
        assert_eq!(quote_qualified("a.b.c"), r#""a"."b"."c""#);
        assert_eq!(
            quote_parts(&["public", "odd.name"]),
            r#""public"."odd.name""#
        );
    }
}
