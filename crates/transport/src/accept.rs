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
            p = permit(&permits, &mut log, limits.max_connections) => p,
        };
        let accepted = tokio::select! {
            _ = &mut shutdown => break,
            a = listener.accept() => a,
        };
        match accepted {
            Ok((tcp, peer)) => {
                backoff = FIRST_BACKOFF;
                let conn = connection(tcp, peer, app.clone(), security.clone(), limits.clone());
                tokio::spawn(conn.run(stop_rx.clone(), permit));
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

/// A free connection slot; while there is none, new clients wait in the kernel's backlog.
async fn permit(
    permits: &Arc<Semaphore>,
    log: &mut RateLimitedLog,
    max: usize,
) -> OwnedSemaphorePermit {
    if let Ok(p) = permits.clone().try_acquire_owned() {
        return p;
    }
    log.event(|suppressed| {
        tracing::warn!(
            max_connections = max,
            suppressed,
            "connection limit reached; new connections wait until one ends"
        )
    });
    match permits.clone().acquire_owned().await {
        Ok(p) => p,
        // The semaphore is never closed; should it be, wait for shutdown.
        Err(_) => std::future::pending().await,
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
    async fn run(self, stop: watch::Receiver<bool>, permit: OwnedSemaphorePermit) {
        // Small responses (a 404, a timestamp) must not wait for delayed ACKs (Nagle).
        let _ = self.tcp.set_nodelay(true);
        let peer = self.peer;
        match self.security {
            Security::Plain => http(self.tcp, peer, self.app, &self.limits, stop).await,
            Security::Tls(acceptor) => {
                let handshake = acceptor.accept(self.tcp);
                match tokio::time::timeout(self.limits.handshake_timeout, handshake).await {
                    Ok(Ok(tls)) => http(tls, peer, self.app, &self.limits, stop).await,
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
