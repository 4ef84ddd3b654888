//! The one place where a run's final state becomes the process exit code.

use crate::outcome::FinalState;

/// Every selected check passed (or `--list`).
pub const SUCCESS: u8 = 0;
/// A check failed or errored, or a teardown failed.
pub const CHECK_FAILED: u8 = 1;
/// Usage or suite error: bad flags, a suite that does not load, nothing selected.
pub const USAGE: u8 = 2;
/// Nothing failed, but `--require-all` was given and some selected checks were skipped
/// (not verified): a distinct code, so a gate can tell "unproven" from "broken".
pub const NOT_VERIFIED: u8 = 3;
/// Interrupted with Ctrl-C (128 + SIGINT, as shells report it); SIGTERM gives 143, SIGHUP 129.
pub const INTERRUPTED: u8 = 130;

pub fn code(state: FinalState) -> u8 {
    match state {
        FinalState::Success | FinalState::Listed => SUCCESS,
        FinalState::Failed => CHECK_FAILED,
        FinalState::Incomplete => NOT_VERIFIED,
        FinalState::NoChecksSelected => USAGE,
        FinalState::Interrupted(signal) => signal.exit_code(),
    }
}

/// The worst of several runs' codes (a fleet's clusters, the sandbox's run from outside and
/// from a pod): an interruption (129, 130, 143), then a failed check (1), then a usage error
/// (2: nothing ran there), then not verified (3), then success. A failure is never hidden
/// behind a code that only says something was not verified.
pub fn worst(codes: impl IntoIterator<Item = u8>) -> u8 {
    let rank = |code: u8| match code {
        SUCCESS => 0,
        NOT_VERIFIED => 1,
        USAGE => 2,
        CHECK_FAILED => 3,
        _ => 4,
    };
    codes
        .into_iter()
        .max_by_key(|c| (rank(*c), *c))
        .unwrap_or(SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failure_is_worse_than_not_verified_and_an_interruption_worst() {
        assert_eq!(worst([]), SUCCESS);
        assert_eq!(worst([SUCCESS, NOT_VERIFIED]), NOT_VERIFIED);
        assert_eq!(worst([CHECK_FAILED, NOT_VERIFIED]), CHECK_FAILED);
        assert_eq!(worst([NOT_VERIFIED, USAGE]), USAGE);
        assert_eq!(worst([USAGE, CHECK_FAILED]), CHECK_FAILED);
        assert_eq!(worst([CHECK_FAILED, 143, INTERRUPTED]), 143);
    }
}
