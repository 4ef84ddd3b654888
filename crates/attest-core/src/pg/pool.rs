//! The query sessions of a run (the `sql` kind's): a small pool per PostgreSQL server.
//!
//! Reuse keeps logins rare; the cap per server keeps a run from taking a server's connection
//! slots, and from a connect storm when many suites start at once (at most four logins in
//! flight per server, checks wait their turn in arrival order). A query whose check is dropped
//! (timeout, Ctrl-C) is cancelled on the server and its session is never reused; a pipeline
//! of queries sent ahead is stopped the same way, its connection closed at once
//! ([`Lease::stop_now`]).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinHandle;
use tokio_postgres::{CancelToken, Client, NoTls, SimpleQueryMessage};

use super::connect::{open_stream, Wire};
use super::tls::tls_connector;
use super::{connect, scalar, ConnectError, SslMode, Target};
use crate::net::Network;

/// Sessions open at once to one server (like pgbouncer's `default_pool_size`), unless the
/// server has less room: see [`Server::measure`].
pub const DEFAULT_POOL_SIZE: u16 = 20;

/// Logins in flight at once per server: enough to fill a pool of 20 in a few login times, far
/// from a connect storm.
const CONNECTS_IN_FLIGHT: usize = 4;

/// How long a cancel request and the logout after it may take.
const CANCEL_TIMEOUT: Duration = Duration::from_secs(5);
/// How long the end of a run waits for cancels and logouts still under way.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

/// What the first session asks a server: connection slots neither reserved nor used by
/// others (`reserved_connections` exists from PostgreSQL 16 on).
const FREE_SLOTS: &str = "SELECT current_setting('max_connections')::int
     - current_setting('superuser_reserved_connections')::int
     - coalesce(nullif(current_setting('reserved_connections', true), '')::int, 0)
     - (SELECT count(*) FROM pg_stat_activity
        WHERE backend_type = 'client backend' AND pid <> pg_backend_pid())";

/// Query-only sessions shared by the whole run, pooled per server (host and port): at most
/// `size` open to one server whatever the roles and databases, reused per (role, database,
/// TLS settings).
pub struct Sessions {
    size: usize,
    /// Keyed by where the route leads ([`Network::destination`]).
    servers: Mutex<HashMap<String, Arc<Server>>>,
    /// Cancels and logouts still under way; [`Sessions::close`] waits for them.
    pending: Arc<Mutex<Vec<JoinHandle<()>>>>,
}

impl Default for Sessions {
    fn default() -> Self {
        Sessions::new(DEFAULT_POOL_SIZE.into())
    }
}

impl Sessions {
    /// A pool of at most `size` sessions per server (at least one).
    pub fn new(size: usize) -> Sessions {
        Sessions {
            size: size.max(1),
            servers: Mutex::default(),
            pending: Arc::default(),
        }
    }

    /// A session for `target`, waiting for a free one when the server's share is in use.
    /// The wait is bounded by the caller's timeout: drop the future to stop waiting.
    pub async fn lease(
        &self,
        network: &Arc<dyn Network>,
        target: &Target,
    ) -> Result<Lease, ConnectError> {
        let server = self.server(network, target);
        let turn = server
            .turns
            .clone()
            .acquire_owned()
            .await
            .expect("the pool never closes its semaphore");
        let lease = |(client, driver)| Lease {
            client: Some(client),
            driver: Some(driver),
            target: target.clone(),
            server: server.clone(),
            network: network.clone(),
            pending: self.pending.clone(),
            in_query: false,
            _turn: turn,
        };
        loop {
            // A few logins at a time per server (one until the first session has measured
            // the server), and a session coming back is taken rather than waiting to open
            // another: the first wave of a run reuses sessions as they come back instead of
            // storming the server with logins.
            let returned = server.returned.notified();
            tokio::pin!(returned);
            returned.as_mut().enable();
            if let Some(idle) = server.take_idle(target) {
                return Ok(lease(idle));
            }
            let login = tokio::select! {
                login = server.logins.acquire() => login.expect("the pool never closes its semaphore"),
                () = &mut returned => continue,
            };
            if let Some(idle) = server.take_idle(target) {
                return Ok(lease(idle));
            }
            let Some(slot) = server.reserve() else {
                // Every slot is held by a session being cancelled or closed: wait for one.
                drop(login);
                tokio::time::sleep(Duration::from_millis(5)).await;
                continue;
            };
            let session = connect(network.as_ref(), target).await?;
            drop(login);
            slot.keep();
            if !server.measured.swap(true, Ordering::Relaxed) {
                server.measure(&session.client, self.size).await;
            }
            return Ok(lease((session.client, session.driver)));
        }
    }

    /// Ends the run's sessions: waits (up to 5 s) for cancels under way, then logs out of the
    /// idle ones, so nothing attest started is left running on a server after it exits.
    pub async fn close(&self) {
        let servers: Vec<Arc<Server>> = lock(&self.servers).values().cloned().collect();
        let mut waits = std::mem::take(&mut *lock(&self.pending));
        for server in servers {
            let idle: Vec<Idle> = {
                let mut state = lock(&server.state);
                state.open -= state.idle.len();
                state.idle.drain(..).collect()
            };
            // Dropping a client makes its driver say goodbye (Terminate) and end.
            waits.extend(idle.into_iter().map(|idle| idle.driver));
        }
        let _ = tokio::time::timeout(CLOSE_TIMEOUT, futures::future::join_all(waits)).await;
    }

    fn server(&self, network: &Arc<dyn Network>, target: &Target) -> Arc<Server> {
        lock(&self.servers)
            .entry(network.destination(&target.route()))
            .or_insert_with(|| {
                Arc::new(Server {
                    turns: Arc::new(Semaphore::new(1)),
                    logins: Semaphore::new(CONNECTS_IN_FLIGHT),
                    measured: AtomicBool::new(false),
                    returned: Notify::new(),
                    state: Mutex::new(State {
                        open: 0,
                        cap: 1,
                        idle: Vec::new(),
                    }),
                })
            })
            .clone()
    }
}

/// A poisoned lock only means a panic elsewhere; the counts it guards stay usable.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

/// One server's share of the pool.
struct Server {
    /// Turns to use a session, first come first served: one until the first session has
    /// measured the server's room, then the cap.
    turns: Arc<Semaphore>,
    /// Held while logging in.
    logins: Semaphore,
    /// Whether the first session has measured the server's room.
    measured: AtomicBool,
    /// Told whenever a session comes back.
    returned: Notify,
    state: Mutex<State>,
}

struct State {
    /// Sessions open, opening, or being cancelled: what the server counts.
    open: usize,
    cap: usize,
    /// Returned sessions, most recently used last.
    idle: Vec<Idle>,
}

struct Idle {
    target: Target,
    client: Client,
    driver: JoinHandle<()>,
}

impl Server {
    /// The most recently used idle session of `target`; closed ones are let go on the way.
    fn take_idle(&self, target: &Target) -> Option<(Client, JoinHandle<()>)> {
        let mut state = lock(&self.state);
        while let Some(index) = state.idle.iter().rposition(|i| i.target == *target) {
            let idle = state.idle.remove(index);
            if !idle.client.is_closed() {
                return Some((idle.client, idle.driver));
            }
            state.open -= 1;
        }
        None
    }

    /// Room for one more session: a free slot, or one taken from the least recently used idle
    /// session of another target (logged out here).
    fn reserve(self: &Arc<Self>) -> Option<Slot> {
        let mut state = lock(&self.state);
        if state.open < state.cap {
            state.open += 1;
        } else if state.idle.is_empty() {
            return None;
        } else {
            drop(state.idle.remove(0));
        }
        Some(Slot(Some(self.clone())))
    }

    fn release(&self) {
        lock(&self.state).open -= 1;
    }

    /// Sets the cap from what the server has room for: at most `size`, and at most half of the
    /// connection slots nobody uses, so the applications the run checks keep theirs. Then lets
    /// the other checks waiting for this server in.
    async fn measure(&self, client: &Client, size: usize) {
        let free = scalar(client, FREE_SLOTS)
            .await
            .and_then(|text| text.parse::<i64>().ok());
        let cap = free.map_or(size, |free| {
            usize::try_from(free / 2).unwrap_or(0).clamp(1, size)
        });
        lock(&self.state).cap = cap;
        self.turns.add_permits(cap - 1);
    }
}

/// A reserved place for a session being opened; given back unless [`Slot::keep`] is called
/// (the connect failed, or the check was dropped while connecting).
struct Slot(Option<Arc<Server>>);

impl Slot {
    fn keep(mut self) {
        self.0 = None;
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        if let Some(server) = self.0.take() {
            server.release();
        }
    }
}

/// A session lent to one check. Given back on drop, unless a query was still running (the
/// check timed out or the run was interrupted): then the server is asked to cancel it, and the
/// session is closed rather than reused.
pub struct Lease {
    client: Option<Client>,
    driver: Option<JoinHandle<()>>,
    target: Target,
    server: Arc<Server>,
    network: Arc<dyn Network>,
    pending: Arc<Mutex<Vec<JoinHandle<()>>>>,
    in_query: bool,
    _turn: OwnedSemaphorePermit,
}

impl Lease {
    /// Runs `sql` with the simple protocol. If this future is dropped before it finishes, the
    /// query is cancelled on the server (see [`Lease`]'s drop).
    pub async fn simple_query(
        &mut self,
        sql: &str,
    ) -> Result<Vec<SimpleQueryMessage>, tokio_postgres::Error> {
        let client = self
            .client
            .as_ref()
            .expect("a lease holds its client until dropped");
        self.in_query = true;
        let result = client.simple_query(sql).await;
        self.in_query = false;
        result
    }

    /// Sends the queries pipelined, at most `window` unanswered at a time: the server runs
    /// them in order, each in its own implicit transaction, as it would one after another,
    /// without a round trip each. Each answer goes to `each` as it arrives, with the time since
    /// the server could start on it (the previous answer, or the sending of the first).
    /// Dropped before the end, see [`Lease::stop_now`].
    pub async fn simple_queries(
        &mut self,
        queries: &[String],
        window: usize,
        mut each: impl FnMut(usize, Result<Vec<SimpleQueryMessage>, tokio_postgres::Error>, Duration),
    ) {
        use futures::StreamExt;
        let client = self
            .client
            .as_ref()
            .expect("a lease holds its client until dropped");
        self.in_query = true;
        let mut unsent = queries.iter();
        let mut answers = futures::stream::FuturesOrdered::new();
        answers.extend(
            unsent
                .by_ref()
                .take(window.max(1))
                .map(|sql| client.simple_query(sql)),
        );
        let mut position = 0;
        let mut since = std::time::Instant::now();
        while let Some(answer) = answers.next().await {
            each(position, answer, since.elapsed());
            since = std::time::Instant::now();
            position += 1;
            if let Some(sql) = unsent.next() {
                answers.push_back(client.simple_query(sql));
            }
        }
        self.in_query = false;
    }

    /// Ends the session at once: the running query is cancelled on the server and the
    /// connection closed without waiting for the queries queued behind it, so the server runs
    /// at most one of them (it fails writing its answer to the closed socket and ends the
    /// session). The slot is given back once the cancel is sent.
    pub fn stop_now(mut self) {
        if let (Some(client), Some(driver)) = (self.client.take(), self.driver.take()) {
            self.cancel_in_background(client, driver, Logout::Now);
        }
    }

    /// Cancels the running query from a task of its own, then logs out: waiting for the
    /// server's goodbye ([`Logout::AfterQueued`], so every queued query has ended) or closing
    /// the connection at once ([`Logout::Now`]). The slot stays counted until then.
    fn cancel_in_background(&self, client: Client, driver: JoinHandle<()>, logout: Logout) {
        let token = client.cancel_token();
        let (network, target, server) = (
            self.network.clone(),
            self.target.clone(),
            self.server.clone(),
        );
        let stop = async move {
            let _ = tokio::time::timeout(CANCEL_TIMEOUT, cancel(network, target, token)).await;
            drop(client);
            match logout {
                // The driver ends once the server has answered the cancelled query and heard
                // the goodbye.
                Logout::AfterQueued => {
                    let _ = tokio::time::timeout(CANCEL_TIMEOUT, driver).await;
                }
                Logout::Now => driver.abort(),
            }
            server.release();
        };
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                let task = runtime.spawn(stop);
                let mut pending = lock(&self.pending);
                pending.retain(|t| !t.is_finished());
                pending.push(task);
            }
            // Outside any runtime nothing can send the cancel; the server ends the session
            // when the process exits and the socket closes.
            Err(_) => self.server.release(),
        }
    }
}

/// How a lease whose query still runs is logged out, once the query is cancelled.
enum Logout {
    /// After the server answered everything sent before (one query).
    AfterQueued,
    /// At once (a pipeline: the queries queued behind are not waited for).
    Now,
}

impl Drop for Lease {
    fn drop(&mut self) {
        let (Some(client), Some(driver)) = (self.client.take(), self.driver.take()) else {
            return;
        };
        if !self.in_query && !client.is_closed() {
            lock(&self.server.state).idle.push(Idle {
                target: self.target.clone(),
                client,
                driver,
            });
            self.server.returned.notify_waiters();
            return;
        }
        if !self.in_query {
            // Closed under us (server restart, network): just let it go.
            self.server.release();
            return;
        }
        // The query still runs on the server, which would not notice the client leaving
        // until it next writes: cancel it, then log out.
        self.cancel_in_background(client, driver, Logout::AfterQueued);
    }
}

/// Sends the server a cancel request for the session's running query, over a new stream from
/// the network seam, encrypted when the session's sslmode asks for TLS.
async fn cancel(
    network: Arc<dyn Network>,
    target: Target,
    token: CancelToken,
) -> Result<(), String> {
    let stream = Wire(
        open_stream(network.as_ref(), &target)
            .await
            .map_err(|e| e.to_string())?,
    );
    let sent = if target.sslmode == SslMode::Disable {
        token.cancel_query_raw(stream, NoTls).await
    } else {
        let tls = tls_connector(&target).map_err(|e| e.to_string())?;
        token.cancel_query_raw(stream, tls).await
    };
    sent.map_err(|e| e.to_string())
}
