//! Text helpers every layer shares: clipping long values, and the markers that stand for
//! runtime variables until a check expands them.

/// Marks a variable whose value only exists once an earlier check has run (`register:`).
/// Load-time interpolation writes this marker; [`crate::context::CheckContext::expand`] replaces it.
pub fn runtime_marker(name: &str) -> String {
    format!("\u{27e6}attest:{name}\u{27e7}")
}

/// Values that stand for something known only at run time (`${app_password}`) are not judged.
pub fn is_deferred(text: &str) -> bool {
    text.contains('\u{27e6}')
}

/// Text for humans: each runtime-variable marker shown as the user wrote it (`${name}`).
pub fn display_markers(text: &str) -> String {
    let shown: Result<String, std::convert::Infallible> = replace_markers(text, |name| {
        Ok(name.map(|name| format!("${{{name}}}")).unwrap_or_default())
    });
    shown.unwrap_or_else(|never| match never {})
}

/// `text` with each runtime-variable marker replaced by what `value` gives for its name
/// (`None` for a marker that is never closed, whose rest is then kept as text).
pub fn replace_markers<E>(
    text: &str,
    mut value: impl FnMut(Option<&str>) -> Result<String, E>,
) -> Result<String, E> {
    const OPEN: &str = "\u{27e6}attest:";
    const CLOSE: char = '\u{27e7}';
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find(OPEN) {
        out.push_str(&rest[..start]);
        let after = &rest[start + OPEN.len()..];
        match after.find(CLOSE) {
            Some(end) => {
                out.push_str(&value(Some(&after[..end]))?);
                rest = &after[end + CLOSE.len_utf8()..];
            }
            None => {
                out.push_str(&value(None)?);
                rest = after;
            }
        }
    }
    out.push_str(rest);
    Ok(out)
}

/// Shortens text for a message, on a character boundary.
pub fn clip(text: &str, max_chars: usize) -> String {
    if text.chars().count() <= max_chars {
        text.to_owned()
    } else {
        let cut: String = text.chars().take(max_chars).collect();
        format!("{cut}…")
    }
}
