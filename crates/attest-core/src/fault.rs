//! Why a check could not be evaluated, with the fix when it is known: the hint travels with the
//! error up to the verdict, instead of being lost in a string on the way.

/// An error a check reports as its verdict: what went wrong, and how to fix it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct Fault {
    pub message: String,
    pub hint: Option<String>,
}

impl Fault {
    pub fn new(message: impl Into<String>) -> Fault {
        Fault {
            message: message.into(),
            hint: None,
        }
    }

    pub fn hint(mut self, hint: impl Into<String>) -> Fault {
        self.hint = Some(hint.into());
        self
    }
}

/// Errors that are only a message (variable expansion, a malformed value) become faults
/// without a hint.
impl From<String> for Fault {
    fn from(message: String) -> Fault {
        Fault::new(message)
    }
}
