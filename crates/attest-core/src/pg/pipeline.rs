//! Queries sent ahead. A suite's run of `sql` checks on one connection, whose queries are
//! known before they run (no value registered by an earlier check in them), is sent together
//! on one session the first time one of them is asked for: the server runs them in order, as
//! it would one after another, and the checks read their answers without a round trip each.
//! The checks still run, judge and report one after another; only the waiting is shared.

use std::sync::Arc;

use tokio::sync::{oneshot, Mutex, Notify};
use tokio_postgres::SimpleQueryMessage;

use super::{Sessions, Target};
use crate::net::Network;

/// What the server answered to one query.
pub type Answer = Result<Vec<SimpleQueryMessage>, tokio_postgres::Error>;

/// The queries of one run of checks, in their order.
pub struct Pipeline {
    queries: Vec<String>,
    state: Mutex<State>,
}

enum State {
    /// Nothing sent yet: the first check to ask sends them all.
    Waiting,
    /// Sent to `target`: each position's answer arrives on its receiver once.
    Sent {
        target: Box<Target>,
        answers: Vec<Option<oneshot::Receiver<Answer>>>,
        /// A check that stopped waiting (its timeout, Ctrl-C) stops the pipeline.
        abandoned: Arc<Notify>,
    },
    /// Could not be sent (no session): every check asks for itself.
    Off,
}

impl Pipeline {
    pub fn new(queries: Vec<String>) -> Arc<Pipeline> {
        Arc::new(Pipeline {
            queries,
            state: Mutex::new(State::Waiting),
        })
    }

    /// The answer to query `position` (which must be the query the caller would send), or
    /// `None`: the caller sends it itself, as it would without a pipeline. That happens when
    /// no session could be had (the caller's own try says why), when an earlier check stopped
    /// waiting (its query is cancelled on the server and the rest are not sent), when the
    /// target differs, or when the answer was taken already (a retry).
    pub async fn answer(
        &self,
        position: usize,
        target: &Target,
        sessions: &Sessions,
        network: &Arc<dyn Network>,
    ) -> Option<Answer> {
        let (receiver, abandoned) = {
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
                    abandoned,
                } if **sent_to == *target => (
                    answers.get_mut(position).and_then(Option::take)?,
                    abandoned.clone(),
                ),
                _ => return None,
            }
        };
        let mut waiting = Abandon(Some(abandoned));
        let answer = receiver.await.ok();
        waiting.0 = None;
        answer
    }

    /// Sends the queries from `first` on, on `lease`, in a task of their own.
    fn send(&self, mut lease: super::Lease, first: usize, target: &Target) -> State {
        let queries = self.queries[first..].to_vec();
        let mut senders = Vec::with_capacity(queries.len());
        let mut answers: Vec<Option<oneshot::Receiver<Answer>>> =
            (0..first).map(|_| None).collect();
        for _ in &queries {
            let (tx, rx) = oneshot::channel();
            senders.push(Some(tx));
            answers.push(Some(rx));
        }
        let abandoned = Arc::new(Notify::new());
        let stop = abandoned.clone();
        tokio::spawn(async move {
            let deliver = |position: usize, answer: Answer| {
                if let Some(tx) = senders.get_mut(position).and_then(Option::take) {
                    let _ = tx.send(answer);
                }
            };
            tokio::select! {
                _ = lease.simple_queries(&queries, deliver) => {}
                // Dropping the lease mid-query cancels it on the server; the checks still
                // waiting get `None` and send their own queries.
                _ = stop.notified() => {}
            }
        });
        State::Sent {
            target: Box::new(target.clone()),
            answers,
            abandoned,
        }
    }
}

/// Notifies the pipeline when a check stops waiting before its answer came.
struct Abandon(Option<Arc<Notify>>);

impl Drop for Abandon {
    fn drop(&mut self) {
        if let Some(abandoned) = self.0.take() {
            abandoned.notify_one();
        }
    }
}
