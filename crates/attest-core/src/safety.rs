//! How much a check may disturb the environment, and the flag that allows each class.

use schemars::JsonSchema;
use serde::Deserialize;

/// How much a check may disturb the environment. Ordered: each class includes the ones before.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Safety {
    /// Only observes (the default).
    #[default]
    ReadOnly,
    /// Creates or changes things, and removes them again in teardown.
    Mutating,
    /// Disrupts running workloads (deleting pods, draining nodes).
    Destructive,
}

impl Safety {
    pub fn as_str(self) -> &'static str {
        match self {
            Safety::ReadOnly => "read-only",
            Safety::Mutating => "mutating",
            Safety::Destructive => "destructive",
        }
    }
    /// The command-line flag that lets checks of this class run.
    pub fn opt_in_flag(self) -> &'static str {
        match self {
            Safety::ReadOnly => "",
            Safety::Mutating => "--allow-mutating",
            Safety::Destructive => "--allow-destructive",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn safety_classes_are_ordered() {
        assert!(Safety::ReadOnly < Safety::Mutating);
        assert!(Safety::Mutating < Safety::Destructive);
    }
}
