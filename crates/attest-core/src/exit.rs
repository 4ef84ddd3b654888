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

/// The worst of several runs' codes (a fleet's clusters): an interruption (129, 130, 143)
/// over not verified (3) over a usage error (2) over a failed check (1) over success; the
/// codes are numbered so that this is their maximum.
pub fn worst(codes: impl IntoIterator<Item = u8>) -> u8 {
    codes.into_iter().max().unwrap_or(SUCCESS)
}
