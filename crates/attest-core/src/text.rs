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
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    let open = "\u{27e6}attest:";
    while let Some(start) = rest.find(open) {
        out.push_str(&rest[..start]);
        let after = &rest[start + open.len()..];
        match after.find('\u{27e7}') {
            Some(end) => {
                out.push_str(&format!("${{{}}}", &after[..end]));
                rest = &after[end + '\u{27e7}'.len_utf8()..];
            }
            None => {
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
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
