//! Signals: SIGINT, SIGTERM and SIGHUP stop a run cleanly (teardown and reports follow),
//! counted, so a second hurries teardown and a third exits at once.

use std::sync::{Arc, Mutex};

use tokio::runtime::Runtime;
use tokio_util::sync::CancellationToken;

use super::HURRIED_TEARDOWN;
use crate::outcome::Interruption;

/// SIGINT, SIGTERM and SIGHUP, counted: the first stops starting and cancels running checks
/// (teardown and reports follow), the second cuts each remaining teardown step to
/// [`HURRIED_TEARDOWN`], the third exits at once.
pub struct StopSignals {
    /// Cancelled by the first signal.
    pub cancel: CancellationToken,
    /// Cancelled by the second.
    pub hurry: CancellationToken,
    first: Mutex<Option<Interruption>>,
    /// Set once something exists that must be torn down (a run, the sandbox). Before that,
    /// a signal ends the process at once: loading a suite or `attest check` has nothing to
    /// clean up, and must not go on after SIGTERM.
    armed: std::sync::atomic::AtomicBool,
    /// Where what a signal does is said (the CLI's stderr; nowhere in tests).
    notify: fn(&str),
}

impl StopSignals {
    /// Installs the handlers on `runtime`; from then on these signals no longer kill the
    /// process outright.
    pub fn install(runtime: &Runtime, notify: fn(&str)) -> Arc<StopSignals> {
        let stop = Arc::new(StopSignals {
            notify,
            ..StopSignals::unwired()
        });
        let watched = stop.clone();
        // Registering inside the runtime so the handlers exist before this returns.
        let streams = runtime.block_on(async {
            use tokio::signal::unix::{signal, SignalKind};
            Some((
                signal(SignalKind::interrupt()).ok()?,
                signal(SignalKind::terminate()).ok()?,
                signal(SignalKind::hangup()).ok()?,
            ))
        });
        if let Some((mut int, mut term, mut hup)) = streams {
            runtime.spawn(async move {
                loop {
                    let which = tokio::select! {
                        _ = int.recv() => Interruption::Sigint,
                        _ = term.recv() => Interruption::Sigterm,
                        _ = hup.recv() => Interruption::Sighup,
                    };
                    watched.signal(which);
                }
            });
        }
        stop
    }

    /// Not connected to any signal (tests, library use).
    pub fn unwired() -> StopSignals {
        StopSignals {
            cancel: CancellationToken::new(),
            hurry: CancellationToken::new(),
            first: Mutex::new(None),
            armed: std::sync::atomic::AtomicBool::new(false),
            notify: |_| {},
        }
    }

    /// From now on signals stop the work cleanly (teardown, reports) instead of exiting.
    pub fn arm(&self) {
        self.armed.store(true, std::sync::atomic::Ordering::SeqCst);
    }

    /// The first signal received, if any.
    pub fn interruption(&self) -> Option<Interruption> {
        *self.first.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Handles one signal.
    pub fn signal(&self, which: Interruption) {
        let first = {
            let mut first = self.first.lock().unwrap_or_else(|e| e.into_inner());
            *first.get_or_insert(which)
        };
        if !self.armed.load(std::sync::atomic::Ordering::SeqCst) {
            (self.notify)(&format!(
                "\nattest: {}: stopping (nothing to clean up yet)",
                which.name()
            ));
            std::process::exit(i32::from(which.exit_code()));
        }
        if !self.cancel.is_cancelled() {
            (self.notify)(&format!(
                "\nattest: {}: stopping; running teardown and writing reports (send it again to hurry teardown)",
                which.name()
            ));
            self.cancel.cancel();
        } else if !self.hurry.is_cancelled() {
            (self.notify)(&format!(
                "attest: {}: teardown limited to {} s per step, then reports; a third signal exits at once",
                which.name(),
                HURRIED_TEARDOWN.as_secs()
            ));
            self.hurry.cancel();
        } else {
            (self.notify)(
                "attest: exiting now; resources may be left behind (`attest cleanup` finds them)",
            );
            std::process::exit(i32::from(first.exit_code()));
        }
    }
}
