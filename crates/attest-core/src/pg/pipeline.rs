//! Queries sent ahead. A suite's run of `sql` checks on one connection, whose queries are
//! known before they run (no value registered by an earlier check in them), is sent on one
//! session the first time one of them is asked for, pipelined a window at a time: the server
//! runs them in order, as it would one after another, and the checks read their answers
//! without a round trip each. The checks still run, judge and report one after another; only
//! the waiting is shared.
//!
//! A check that stops waiting (its timeout, Ctrl-C), or a suite that ends before asking for
//! every answer (interrupted between checks), stops the pipeline: its running query is
//! cancelled and its connection closed at once ([`super::Lease::stop_now`]), so the server runs
//! at most one more of the queries queued behind it; the checks still to come send their own.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{oneshot, Mutex, Notify};
use tokio_postgres::SimpleQueryMessage;

use super::{Sessions, Target};
use crate::net::Network;

/// What the server answered to one query.
pub type Answer = Result<Vec<SimpleQueryMessage>, tokio_postgres::Error>;

/// Unanswered queries at most: enough to hide the round trip behind the checks' own work,
/// few enough that stopping early leaves little queued on the server.
const WINDOW: usize = 16;

/// The queries of one run of checks, in their order.
pub struct Pipeline {
    queries: Vec<String>,
    state: Mutex<State>,
    /// Stops the task sending the queries: a check stopped waiting, or the pipeline is gone.
    stop: Arc<Notify>,
}

enum State {
    /// Nothing sent yet: the first check to ask sends them all.
    Waiting,
    /// Sent to `target`: each position's answer, with how long the server took on it,
    /// arrives on its receiver once.
    Sent {
        target: Box<Target>,
        answers: Vec<Option<oneshot::Receiver<(Answer, Duration)>>>,
    },
    /// Could not be sent (no session): every check asks for itself.
    Off,
}

impl Pipeline {
    pub fn new(queries: Vec<String>) -> Arc<Pipeline> {
        Arc::new(Pipeline {
            queries,
            state: Mutex::new(State::Waiting),
            stop: Arc::new(Notify::new()),
        })
    }

    /// The answer to query `position` (which must be the query the caller would send) and how
    /// long the server took on it, or `None`: the caller sends it itself, as it would without a
    /// pipeline. That happens when no session could be had (the caller's own try says why),
    /// when the pipeline was stopped (an earlier check stopped waiting), when the target
    /// differs (which stops it), or when the answer was taken already (a retry).
    pub async fn answer(
        &self,
        position: usize,
        target: &Target,
        sessions: &Sessions,
        network: &Arc<dyn Network>,
    ) -> Option<(Answer, Duration)> {
        let receiver = {
            let mut state = self.state.lock().await;
            if matches!(*state, State::Waiting) {
                *state = match sessions.lease(network, target).await {
                    Ok(lease) => self.send(lease, position, target),
                    Err(_) => State::Off,
                };
            }
            match &mut *state {
                State::Sent {
                    target: sent_to,
                    answers,
                } if **sent_to == *target => answers.get_mut(position).and_then(Option::take)?,
                State::Sent { .. } => {
                    // Another target than the pipeline's (a password file rotated mid-run):
                    // its session must not keep this check's waiting for its turn in the pool.
                    self.stop.notify_one();
                    return None;
                }
                _ => return None,
            }
        };
        let mut waiting = StopUnlessAnswered(Some(self.stop.clone()));
        let answer = receiver.await.ok();
        waiting.0 = None;
        answer
    }

    /// Sends the queries from `first` on, on `lease`, in a task of their own.
    fn send(&self, mut lease: super::Lease, first: usize, target: &Target) -> State {
        let queries = self.queries[first..].to_vec();
        let mut senders = Vec::with_capacity(queries.len());
        let mut answers: Vec<Option<oneshot::Receiver<(Answer, Duration)>>> =
            (0..first).map(|_| None).collect();
        for _ in &queries {
            let (tx, rx) = oneshot::channel();
            senders.push(Some(tx));
            answers.push(Some(rx));
        }
        let stop = self.stop.clone();
        tokio::spawn(async move {
            let deliver = |position: usize, answer: Answer, took: Duration| {
                if let Some(tx) = senders.get_mut(position).and_then(Option::take) {
                    let _ = tx.send((answer, took));
                }
            };
            tokio::select! {
                _ = lease.simple_queries(&queries, WINDOW, deliver) => {}
                // The checks still waiting get `None` and send their own queries.
                _ = stop.notified() => lease.stop_now(),
            }
        });
        State::Sent {
            target: Box::new(target.clone()),
            answers,
        }
    }
}

/// A pipeline nobody will ask any more (its suite ended, interrupted between checks) stops.
impl Drop for Pipeline {
    fn drop(&mut self) {
        self.stop.notify_one();
    }
}

/// Stops the pipeline when a check stops waiting before its answer came.
struct StopUnlessAnswered(Option<Arc<Notify>>);

impl Drop for StopUnlessAnswered {
    fn drop(&mut self) {
        if let Some(stop) = self.0.take() {
            stop.notify_one();
        }
    }
}
