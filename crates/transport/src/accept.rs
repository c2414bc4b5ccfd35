//! The one serving loop of every server (origin, relay, manager; plain and TLS): a connection
//! limit below the descriptor limit (further clients wait in the kernel's backlog until a
//! connection ends), backoff and rate-limited logging on accept errors, the TLS handshake
//! timeout, the header and idle timeouts of [`crate::conn`], and a bounded graceful shutdown.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::pin;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use crate::conn::{Service, Tracked, Watch};
use crate::limits::ServeLimits;
use crate::Error;

/// The first pause after a failed accept; it doubles with every further failure in a row.
const FIRST_BACKOFF: Duration = Duration::from_millis(10);
/// The longest pause after failed accepts.
const MAX_BACKOFF: Duration = Duration::from_secs(1);
/// At most one log line per this interval for accept errors and a full connection table.
const LOG_EVERY: Duration = Duration::from_secs(1);
/// When every slot is taken, a connection without a request in progress (waiting for a head,
/// for its TLS handshake, or idle) for this long gives its slot up to a waiting client.
pub(crate) const SHED_AFTER: Duration = Duration::from_secs(1);

/// How an accepted connection becomes the byte stream HTTP is served on.
#[derive(Clone)]
pub(crate) enum Security {
    Plain,
    Tls(tokio_rustls::TlsAcceptor),
}

/// Serve `app` on `listener` until `shutdown` resolves; then stop accepting, close idle
/// connections, and wait (at most the idle timeout) for the requests in progress.
pub(crate) async fn serve(
    listener: TcpListener,
    app: axum::Router,
    security: Security,
    limits: ServeLimits,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), Error> {
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let (stop_tx, stop_rx) = watch::channel(false);
    // Bumped whenever a client finds every slot taken: connections without a request in
    // progress for SHED_AFTER close, so half-open and idle ones make room.
    let (shed_tx, shed_rx) = watch::channel(0u64);
    let mut log = RateLimitedLog::default();
    let mut backoff = FIRST_BACKOFF;
    let mut shutdown = pin!(shutdown);
    tracing::info!(
        max_connections = limits.max_connections,
        header_timeout_secs = limits.header_timeout.as_secs(),
        handshake_timeout_secs = limits.handshake_timeout.as_secs(),
        idle_timeout_secs = limits.idle_timeout.as_secs(),
        "serving"
    );
    loop {
        let permit = tokio::select! {
            _ = &mut shutdown => break,
            p = permit(&permits, &mut log, limits.max_connections, &shed_tx) => p,
        };
        let accepted = tokio::select! {
            _ = &mut shutdown => break,
            a = listener.accept() => a,
        };
        match accepted {
            Ok((tcp, peer)) => {
                backoff = FIRST_BACKOFF;
                let conn = connection(tcp, peer, app.clone(), security.clone(), limits.clone());
                tokio::spawn(conn.run(stop_rx.clone(), shed_rx.clone(), permit));
            }
            Err(e) => {
                drop(permit);
                log.event(|suppressed| {
                    tracing::warn!(error = %e, suppressed, "accept failed; retrying with backoff")
                });
                tokio::select! {
                    _ = &mut shutdown => break,
                    _ = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }
    drop(listener);
    let _ = stop_tx.send(true);
    let all = u32::try_from(limits.max_connections).unwrap_or(u32::MAX);
    let _ = tokio::time::timeout(limits.idle_timeout, permits.acquire_many(all)).await;
    Ok(())
}

/// A free connection slot; while there is none, new clients wait in the kernel's backlog and,
/// every half [`SHED_AFTER`], connections that hold a slot without a request in progress are
/// asked to close (`shed`).
async fn permit(
    permits: &Arc<Semaphore>,
    log: &mut RateLimitedLog,
    max: usize,
    shed: &watch::Sender<u64>,
) -> OwnedSemaphorePermit {
    if let Ok(p) = permits.clone().try_acquire_owned() {
        return p;
    }
    shed.send_modify(|g| *g = g.wrapping_add(1));
    log.event(|suppressed| {
        tracing::warn!(
            max_connections = max,
            suppressed,
            "connection limit reached; new connections wait until one ends"
        )
    });
    // Ask again while every slot stays taken: connections become sheddable as they age.
    let acquire = permits.clone().acquire_owned();
    let mut acquire = pin!(acquire);
    loop {
        tokio::select! {
            p = acquire.as_mut() => match p {
                Ok(p) => return p,
                // The semaphore is never closed; should it be, wait for shutdown.
                Err(_) => std::future::pending().await,
            },
            _ = tokio::time::sleep(SHED_AFTER / 2) => shed.send_modify(|g| *g = g.wrapping_add(1)),
        }
    }
}

/// One line per [`LOG_EVERY`] at most, with the number of events not logged since.
#[derive(Default)]
struct RateLimitedLog {
    last: Option<Instant>,
    suppressed: u64,
}

impl RateLimitedLog {
    fn event(&mut self, emit: impl FnOnce(u64)) {
        let now = Instant::now();
        if self.last.is_some_and(|t| now.duration_since(t) < LOG_EVERY) {
            self.suppressed = self.suppressed.saturating_add(1);
            return;
        }
        emit(self.suppressed);
        self.last = Some(now);
        self.suppressed = 0;
    }
}

struct Connection {
    tcp: TcpStream,
    peer: SocketAddr,
    app: axum::Router,
    security: Security,
    limits: ServeLimits,
}

fn connection(
    tcp: TcpStream,
    peer: SocketAddr,
    app: axum::Router,
    security: Security,
    limits: ServeLimits,
) -> Connection {
    Connection {
        tcp,
        peer,
        app,
        security,
        limits,
    }
}

impl Connection {
    /// Serve the connection; its slot (`permit`) is free again when this returns.
    async fn run(
        self,
        stop: watch::Receiver<bool>,
        mut shed: watch::Receiver<u64>,
        permit: OwnedSemaphorePermit,
    ) {
        // Small responses (a 404, a timestamp) must not wait for delayed ACKs (Nagle).
        let _ = self.tcp.set_nodelay(true);
        let peer = self.peer;
        shed.mark_unchanged();
        match self.security {
            Security::Plain => http(self.tcp, peer, self.app, &self.limits, stop, shed).await,
            Security::Tls(acceptor) => {
                let started = Instant::now();
                let handshake =
                    tokio::time::timeout(self.limits.handshake_timeout, acceptor.accept(self.tcp));
                let mut handshake = pin!(handshake);
                let done = loop {
                    tokio::select! {
                        r = handshake.as_mut() => break r,
                        // A handshake still unfinished after SHED_AFTER gives its slot up.
                        Ok(()) = shed.changed() => if started.elapsed() >= SHED_AFTER {
                            tracing::debug!(%peer, "TLS handshake shed: every slot taken");
                            return;
                        },
                    }
                };
                match done {
                    Ok(Ok(tls)) => http(tls, peer, self.app, &self.limits, stop, shed).await,
                    Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                    Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                }
            }
        }
        drop(permit);
    }
}

/// HTTP/1.1 on one connection until it ends, its deadline passes, or shutdown.
async fn http<IO>(
    io: IO,
    peer: SocketAddr,
    app: axum::Router,
    limits: &ServeLimits,
    mut stop: watch::Receiver<bool>,
    mut shed: watch::Receiver<u64>,
) where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let watch = Watch::new(limits);
    let service = Service::new(app, watch.clone(), peer);
    let io = hyper_util::rt::TokioIo::new(Tracked::new(io, watch.clone()));
    let conn = hyper::server::conn::http1::Builder::new().serve_connection(io, service);
    let mut conn = pin!(conn);
    let mut stopping = false;
    loop {
        let wake = match watch.deadline() {
            Some((at, _)) => at,
            None => Instant::now() + watch.recheck(),
        };
        tokio::select! {
            _ = conn.as_mut() => return,
            _ = stop.changed(), if !stopping => {
                stopping = true;
                conn.as_mut().graceful_shutdown();
            }
            Ok(()) = shed.changed() => {
                if watch.sheddable(SHED_AFTER) {
                    tracing::debug!(%peer, "connection shed: every slot taken and no request in progress");
                    return;
                }
            }
            _ = tokio::time::sleep_until(wake) => {
                if let Some((at, why)) = watch.deadline() {
                    if at <= Instant::now() {
                        tracing::debug!(%peer, why, "closing connection");
                        return;
                    }
                }
            }
        }
    }
}
