//! One served connection under the header and idle timeouts.
//!
//! hyper's own `header_read_timeout` restarts when a response ends, so on a kept-alive
//! connection it would also be the idle timeout. Instead, a [`Watch`] shared by the byte stream
//! ([`Tracked`], which sees every read and write) and the service ([`Service`], which sees each
//! request head once it is complete) keeps one deadline:
//! - a request head is pending (from the connection, or from the first byte after the previous
//!   request): it must be complete within the header timeout;
//! - a handler is running: no deadline (the handlers answer promptly; their writes count as
//!   traffic once they stream);
//! - otherwise (between requests, a response the client does not read, a body that does not
//!   arrive): the connection is closed after the idle timeout without traffic.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Instant;

use crate::limits::ServeLimits;

#[derive(Debug)]
struct State {
    /// When the pending request head started (the connection, or its first byte).
    head_since: Option<Instant>,
    /// Handlers running on this connection.
    in_service: usize,
    /// Response bodies being sent on this connection (never shed; still under the idle
    /// timeout when they do not move).
    responding: usize,
    last_traffic: Instant,
}

/// The deadline of one connection (see the module documentation).
#[derive(Debug)]
pub(crate) struct Watch {
    state: Mutex<State>,
    header: Duration,
    idle: Duration,
}

impl Watch {
    /// A connection ready for HTTP (after any TLS handshake): its first head is pending.
    pub(crate) fn new(limits: &ServeLimits) -> Arc<Watch> {
        let now = Instant::now();
        Arc::new(Watch {
            state: Mutex::new(State {
                head_since: Some(now),
                in_service: 0,
                responding: 0,
                last_traffic: now,
            }),
            header: limits.header_timeout,
            idle: limits.idle_timeout,
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // The state is plain data updated in one step: a panic elsewhere cannot leave it torn.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn read(&self) {
        let mut s = self.lock();
        let now = Instant::now();
        s.last_traffic = now;
        if s.in_service == 0 && s.head_since.is_none() {
            s.head_since = Some(now);
        }
    }

    fn wrote(&self) {
        self.lock().last_traffic = Instant::now();
    }

    fn enter(self: &Arc<Self>) -> InService {
        let mut s = self.lock();
        s.head_since = None;
        s.in_service = s.in_service.saturating_add(1);
        InService(self.clone())
    }

    /// When the connection is to be closed unless something happens before; `None` while a
    /// handler runs.
    pub(crate) fn deadline(&self) -> Option<(Instant, &'static str)> {
        let s = self.lock();
        if s.in_service > 0 {
            return None;
        }
        Some(match s.head_since {
            Some(t) => (
                t + self.header,
                "no complete request head within the header timeout",
            ),
            None => (s.last_traffic + self.idle, "idle timeout"),
        })
    }

    /// Whether the connection may be closed to make room for new clients when every slot is
    /// taken: no handler runs, and it has been waiting for a request head, or idle, for at
    /// least `grace` (a client in the middle of a prompt request is spared).
    pub(crate) fn sheddable(&self, grace: Duration) -> bool {
        let s = self.lock();
        let since = s.head_since.unwrap_or(s.last_traffic);
        s.in_service == 0 && s.responding == 0 && since.elapsed() >= grace
    }

    /// How long to wait before looking at the deadline again while a handler runs.
    pub(crate) fn recheck(&self) -> Duration {
        self.idle
    }
}

impl Watch {
    fn responding(self: &Arc<Self>) -> Responding {
        let mut s = self.lock();
        s.responding = s.responding.saturating_add(1);
        Responding(self.clone())
    }
}

/// A response body being sent (dropped when it is done or abandoned).
struct Responding(Arc<Watch>);

impl Drop for Responding {
    fn drop(&mut self) {
        let mut s = self.0.lock();
        s.responding = s.responding.saturating_sub(1);
    }
}

/// A response body that holds its connection's [`Responding`] mark until it is done.
struct Sending<B> {
    inner: B,
    _mark: Responding,
}

impl<B: hyper::body::Body + Unpin> hyper::body::Body for Sending<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<hyper::body::Frame<B::Data>, B::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.inner.size_hint()
    }
}

/// A running handler; leaving it (also by cancellation) ends the handler's exemption.
struct InService(Arc<Watch>);

impl Drop for InService {
    fn drop(&mut self) {
        let mut s = self.0.lock();
        s.in_service = s.in_service.saturating_sub(1);
        s.last_traffic = Instant::now();
    }
}

/// A byte stream that reports its traffic to a [`Watch`].
pub(crate) struct Tracked<IO> {
    io: IO,
    watch: Arc<Watch>,
}

impl<IO> Tracked<IO> {
    pub(crate) fn new(io: IO, watch: Arc<Watch>) -> Self {
        Tracked { io, watch }
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for Tracked<IO> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.io).poll_read(cx, buf);
        if matches!(r, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.watch.read();
        }
        r
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for Tracked<IO> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.io).poll_write(cx, buf);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.watch.wrote();
        }
        r
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.io).poll_write_vectored(cx, bufs);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.watch.wrote();
        }
        r
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

/// The app as a hyper service for one connection: marks each request in service on the
/// [`Watch`] and gives handlers the peer address (`ConnectInfo<SocketAddr>`), plain or TLS.
pub(crate) struct Service {
    app: hyper_util::service::TowerToHyperService<axum::Router>,
    watch: Arc<Watch>,
    peer: SocketAddr,
}

impl Service {
    pub(crate) fn new(app: axum::Router, watch: Arc<Watch>, peer: SocketAddr) -> Self {
        Service {
            app: hyper_util::service::TowerToHyperService::new(app),
            watch,
            peer,
        }
    }
}

type Response = axum::response::Response;
type BoxFuture = Pin<Box<dyn Future<Output = Result<Response, std::convert::Infallible>> + Send>>;

impl hyper::service::Service<hyper::Request<hyper::body::Incoming>> for Service {
    type Response = Response;
    type Error = std::convert::Infallible;
    type Future = BoxFuture;

    fn call(&self, mut req: hyper::Request<hyper::body::Incoming>) -> Self::Future {
        let guard = self.watch.enter();
        req.extensions_mut()
            .insert(axum::extract::ConnectInfo(self.peer));
        let response = self.app.call(req);
        let watch = self.watch.clone();
        Box::pin(async move {
            let response = response.await;
            drop(guard);
            response.map(|r| {
                r.map(|body| {
                    let mark = watch.responding();
                    axum::body::Body::new(Sending {
                        inner: body,
                        _mark: mark,
                    })
                })
            })
        })
    }
}
