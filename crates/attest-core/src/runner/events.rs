//! What a run tells as it goes. The runner emits these events and prints nothing itself; the
//! console (libtest-mimic's lines), the progress lines and the run record consume them.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crate::outcome::Outcome;

/// Check `check` of suite `suite`, as in the plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CheckKey {
    pub suite: usize,
    pub check: usize,
}

#[derive(Debug)]
pub enum RunEvent<'a> {
    /// A check got its turn and starts (its deadline runs from now).
    CheckStarted {
        key: CheckKey,
        /// Redacted, as the console shows it.
        name: &'a str,
        timeout: Duration,
    },
    /// One observation of a running check ended (a polling check makes several).
    Attempt {
        key: CheckKey,
        attempts: u32,
        /// Redacted.
        summary: &'a str,
    },
    /// A check's outcome: every check the plan selects gets exactly one, run or skipped.
    CheckFinished { key: CheckKey, outcome: &'a Outcome },
    /// A suite ended: its checks are done and its teardown ran.
    SuiteFinished {
        suite: usize,
        started_at: SystemTime,
        duration: Duration,
        /// Redacted.
        teardown_failures: &'a [String],
    },
    /// Something the user should read now, not tied to one check (redacted).
    Notice(&'a str),
}

/// A consumer of a run's events. Called from the run's tasks as things happen: keep it short.
pub trait Observer: Send + Sync {
    fn on(&self, event: &RunEvent);
}

/// Every observer of a run, told in order.
#[derive(Clone, Default)]
pub struct Observers(Vec<Arc<dyn Observer>>);

impl Observers {
    pub fn new(observers: Vec<Arc<dyn Observer>>) -> Observers {
        Observers(observers)
    }

    pub fn with(mut self, observer: Arc<dyn Observer>) -> Observers {
        self.0.push(observer);
        self
    }

    pub fn emit(&self, event: RunEvent) {
        for observer in &self.0 {
            observer.on(&event);
        }
    }
}
