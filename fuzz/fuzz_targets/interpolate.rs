//! Any text as a value with `${…}` references: tokenising and expanding must never panic, and
//! text without `$` must come back unchanged.
#![no_main]

use attest_core::interpolate::{expand, references, tokens};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    let Ok(tokens) = tokens(text) else {
        return;
    };
    for (reference, _) in references(&tokens) {
        assert!(reference.start < reference.end && reference.end <= text.len());
        assert!(text.is_char_boundary(reference.start) && text.is_char_boundary(reference.end));
    }
    let lookup = |name: &str| match name.len() % 3 {
        0 => None,
        1 => Some(""),
        _ => Some("value"),
    };
    let expanded = expand(&tokens, &lookup);
    if !text.contains('$') {
        assert_eq!(expanded.as_deref(), Ok(text));
    }
});
