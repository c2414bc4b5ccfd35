//! The HTTP(S) client: [`HttpFetcher`] (rustls, timeouts, minimum progress) implementing
//! [`tuf::Fetcher`], configured by [`HttpConfig`].

use std::io::Read;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tuf::FetchError;

use crate::Error;

/// Client settings.
///
/// A source that is slow on purpose (a slow-retrieval attack, or a broken relay) is cut off by
/// three bounds, so that the caller can fail over to its next source within seconds:
/// `first_byte_timeout` (the response must start), and minimum progress on the body: at least
/// `min_rate` bytes per second, measured over windows of `stall_timeout` (a body that sends
/// nothing at all for `stall_timeout` fails too). `request_timeout` bounds a whole metadata or
/// API request; streamed targets have no total bound (a large file on a slow but steady link
/// must finish), they are bounded by minimum progress and by their signed length.
#[derive(Debug, Clone)]
pub struct HttpConfig {
    /// Time to establish a connection (TCP and TLS).
    pub connect_timeout: Duration,
    /// Time from the start of a request (connecting included) to the start of the response
    /// (status line and headers).
    pub first_byte_timeout: Duration,
    /// Window of the progress check: within every `stall_timeout` of reading a body at least
    /// `min_rate × stall_timeout` bytes (at least one byte) must arrive, or the body ends.
    pub stall_timeout: Duration,
    /// Minimum average rate of a body in bytes per second, measured per `stall_timeout` window
    /// (0: only the stall bound applies).
    pub min_rate: u64,
    /// Longest time one metadata or API request may take, body included.
    pub request_timeout: Duration,
    /// Extra CA certificates (PEM) trusted besides the system roots.
    pub extra_root_pem: Vec<Vec<u8>>,
}

/// Default seconds until a response must start.
pub const DEFAULT_FIRST_BYTE_TIMEOUT_SECS: u64 = 10;
/// Default progress window in seconds.
pub const DEFAULT_STALL_TIMEOUT_SECS: u64 = 30;
/// Default minimum rate in bytes per second (4 kbit/s: any real link is faster, a source that
/// drips a byte a second is far slower).
pub const DEFAULT_MIN_RATE: u64 = 512;

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            connect_timeout: Duration::from_secs(10),
            first_byte_timeout: Duration::from_secs(DEFAULT_FIRST_BYTE_TIMEOUT_SECS),
            stall_timeout: Duration::from_secs(DEFAULT_STALL_TIMEOUT_SECS),
            min_rate: DEFAULT_MIN_RATE,
            request_timeout: Duration::from_secs(300),
            extra_root_pem: Vec::new(),
        }
    }
}

impl HttpConfig {
    /// Check the bounds: zero durations would fail every request.
    pub fn validate(&self) -> Result<(), Error> {
        for (name, d) in [
            ("connect timeout", self.connect_timeout),
            ("first-byte timeout", self.first_byte_timeout),
            ("stall timeout", self.stall_timeout),
            ("request timeout", self.request_timeout),
        ] {
            if d.is_zero() {
                return Err(Error::Client(format!("{name} must be at least 1 ms")));
            }
        }
        Ok(())
    }

    /// Bytes that must arrive within one `stall_timeout` window (at least 1).
    fn window_bytes(&self) -> u64 {
        let secs = self.stall_timeout.as_secs_f64();
        // Saturating float-to-int conversion; the product of two finite values.
        ((self.min_rate as f64) * secs).ceil().max(1.0) as u64
    }
}

/// The client's own runtime (one worker thread); shut down without blocking when the last
/// fetcher or body reader using it is dropped, wherever that happens.
#[derive(Debug)]
struct Runtime(Option<tokio::runtime::Runtime>);

impl Runtime {
    /// Run `fut` for at most `limit`; `Ok(None)` when the limit passed first.
    fn run<F: std::future::Future>(
        &self,
        url: &str,
        limit: Duration,
        fut: F,
    ) -> Result<Option<F::Output>, FetchError> {
        let rt = self.0.as_ref().ok_or_else(|| FetchError::Transport {
            url: url.to_string(),
            reason: "the HTTP client is shut down".into(),
        })?;
        // The timer is created inside the runtime (it needs its time driver).
        Ok(rt.block_on(async move { tokio::time::timeout(limit, fut).await.ok() }))
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        if let Some(rt) = self.0.take() {
            rt.shutdown_background();
        }
    }
}

/// Blocking HTTP(S) fetcher (rustls; system trust roots). Content trust never depends on TLS:
/// everything fetched is verified against signed metadata by the caller. Slow sources are cut
/// off as [`HttpConfig`] describes, for every consumer (agent, relay, `tuf-client`).
///
/// The API is blocking (it drives its own runtime): call it from plain threads or from
/// `tokio::task::spawn_blocking`, never directly from an async task.
#[derive(Debug, Clone)]
pub struct HttpFetcher {
    client: reqwest::Client,
    rt: Arc<Runtime>,
    limits: Limits,
}

/// The time bounds of [`HttpConfig`] as used per request.
#[derive(Debug, Clone, Copy)]
struct Limits {
    first_byte: Duration,
    stall: Duration,
    window_bytes: u64,
    request: Duration,
}

impl HttpFetcher {
    pub fn new(config: &HttpConfig) -> Result<Self, Error> {
        config.validate()?;
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("updraft-http")
            .enable_all()
            .build()
            .map_err(|e| Error::Client(format!("cannot start the HTTP client runtime: {e}")))?;
        let mut builder = reqwest::Client::builder()
            .connect_timeout(config.connect_timeout)
            .tcp_nodelay(true)
            // A source is a configured base URL: it may not move requests to other hosts or
            // schemes (every byte is verified anyway, but the request itself must stay put).
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("updraft/", env!("CARGO_PKG_VERSION")));
        for pem in &config.extra_root_pem {
            let certs = reqwest::Certificate::from_pem_bundle(pem)
                .map_err(|e| Error::Client(format!("CA certificate: {e}")))?;
            if certs.is_empty() {
                return Err(Error::Client(
                    "CA certificate file holds no PEM certificate".into(),
                ));
            }
            for c in certs {
                builder = builder.add_root_certificate(c);
            }
        }
        let client = {
            let _guard = rt.enter();
            builder.build().map_err(|e| Error::Client(e.to_string()))?
        };
        Ok(HttpFetcher {
            client,
            rt: Arc::new(Runtime(Some(rt))),
            limits: Limits {
                first_byte: config.first_byte_timeout,
                stall: config.stall_timeout,
                window_bytes: config.window_bytes(),
                request: config.request_timeout,
            },
        })
    }

    /// Send `req` and wait for the response to start, at most the first-byte timeout.
    fn send(
        &self,
        url: &str,
        req: reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, FetchError> {
        let first_byte = self.limits.first_byte;
        match self
            .rt
            .run(url, first_byte, req.send())?
        {
            Some(Ok(resp)) => Ok(resp),
            Some(Err(e)) => Err(FetchError::Transport {
                url: url.to_string(),
                reason: error_chain(&e),
            }),
            None => Err(FetchError::Transport {
                url: url.to_string(),
                reason: format!(
                    "no response within {} (first-byte timeout): the source is stalled or overloaded; trying another source may help",
                    secs(first_byte)
                ),
            }),
        }
    }

    fn get(&self, url: &str) -> Result<reqwest::Response, FetchError> {
        let resp = self.send(url, self.client.get(url))?;
        let status = resp.status().as_u16();
        match status {
            200..=299 => Ok(resp),
            403 | 404 => Err(FetchError::NotFound {
                url: url.to_string(),
            }),
            _ => Err(FetchError::Status {
                url: url.to_string(),
                status,
            }),
        }
    }

    /// A body reader enforcing minimum progress (and a total deadline when given).
    fn body(&self, url: &str, resp: reqwest::Response, total: bool) -> Body {
        let now = Instant::now();
        Body {
            url: url.to_string(),
            resp,
            rt: self.rt.clone(),
            limits: self.limits,
            pending: Vec::new(),
            pos: 0,
            done: false,
            window_start: now,
            window_got: 0,
            deadline: if total {
                now.checked_add(self.limits.request)
            } else {
                None
            },
        }
    }

    /// POST a JSON body with a bearer credential; returns the status and at most `max` bytes of
    /// the answer (for small API calls such as manager heartbeats).
    pub fn post_json(
        &self,
        url: &str,
        bearer: Option<&str>,
        body: Vec<u8>,
        max: u64,
    ) -> Result<(u16, Vec<u8>), FetchError> {
        self.request_json("POST", url, bearer, Some(body), max)
    }

    /// An API request: `method` (GET, POST, PUT, DELETE…) with an optional JSON body and a
    /// bearer credential; returns the status, whatever it is, and at most `max` bytes of the
    /// answer (for small API calls such as `updraft admin`'s).
    pub fn request_json(
        &self,
        method: &str,
        url: &str,
        bearer: Option<&str>,
        body: Option<Vec<u8>>,
        max: u64,
    ) -> Result<(u16, Vec<u8>), FetchError> {
        let method =
            reqwest::Method::from_bytes(method.as_bytes()).map_err(|e| FetchError::Transport {
                url: url.to_string(),
                reason: format!("method {method:?}: {e}"),
            })?;
        let mut req = self.client.request(method, url);
        if let Some(body) = body {
            req = req.header("content-type", "application/json").body(body);
        }
        if let Some(b) = bearer {
            req = req.bearer_auth(b);
        }
        let resp = self.send(url, req)?;
        let status = resp.status().as_u16();
        let bytes = tuf::fetch::read_bounded(url, self.body(url, resp, true), max)?;
        Ok((status, bytes))
    }
}

fn secs(d: Duration) -> String {
    format!("{:.1} s", d.as_secs_f64())
}

/// A response body read with bounds: within every `stall` window at least `window_bytes` must
/// arrive (or the body must end), and, for metadata and API requests, all of it before the
/// total deadline.
struct Body {
    url: String,
    resp: reqwest::Response,
    rt: Arc<Runtime>,
    limits: Limits,
    /// The last chunk received; `pending[pos..]` is not yet handed to the caller.
    pending: Vec<u8>,
    pos: usize,
    done: bool,
    window_start: Instant,
    window_got: u64,
    deadline: Option<Instant>,
}

impl Body {
    fn fill(&mut self) -> std::io::Result<()> {
        let window_end = self
            .window_start
            .checked_add(self.limits.stall)
            .unwrap_or_else(Instant::now);
        let until = match self.deadline {
            Some(d) if d < window_end => d,
            _ => window_end,
        };
        let wait = until.saturating_duration_since(Instant::now());
        let next = self
            .rt
            .run(&self.url, wait, self.resp.chunk())
            .map_err(|e| std::io::Error::other(e.to_string()))?;
        match next {
            Some(Ok(Some(chunk))) => {
                self.window_got = self.window_got.saturating_add(chunk.len() as u64);
                if self.window_got >= self.limits.window_bytes {
                    // Enough progress: a new window starts now.
                    self.window_start = Instant::now();
                    self.window_got = 0;
                }
                self.pending = chunk.to_vec();
                self.pos = 0;
                Ok(())
            }
            Some(Ok(None)) => {
                self.done = true;
                Ok(())
            }
            Some(Err(e)) => Err(std::io::Error::other(error_chain(&e))),
            None if self.deadline.is_some_and(|d| d <= window_end) => {
                Err(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!(
                        "not finished within {} (request timeout)",
                        secs(self.limits.request)
                    ),
                ))
            }
            None => Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!(
                    "stalled: {} byte(s) in {}, the minimum is {} (slow or stalled source; stall timeout and minimum rate are configurable)",
                    self.window_got,
                    secs(self.limits.stall),
                    self.limits.window_bytes
                ),
            )),
        }
    }
}

impl Read for Body {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        loop {
            let rest = self.pending.get(self.pos..).unwrap_or_default();
            if !rest.is_empty() {
                let n = buf.len().min(rest.len());
                buf[..n].copy_from_slice(&rest[..n]);
                self.pos = self.pos.saturating_add(n);
                return Ok(n);
            }
            if self.done {
                return Ok(0);
            }
            self.fill()?;
        }
    }
}

impl tuf::Fetcher for HttpFetcher {
    fn fetch(&self, url: &str) -> Result<Box<dyn Read + Send>, FetchError> {
        if url.starts_with("file://") {
            return tuf::FileFetcher.fetch(url);
        }
        let resp = self.get(url)?;
        Ok(Box::new(self.body(url, resp, false)))
    }

    /// A response that announces more than `max` bytes is refused before its body is read; a
    /// body is cut off after `max` bytes (whatever length it announced), after the request
    /// timeout, or when it does not make the minimum progress.
    fn fetch_bytes(&self, url: &str, max: u64) -> Result<Vec<u8>, FetchError> {
        if url.starts_with("file://") {
            return tuf::FileFetcher.fetch_bytes(url, max);
        }
        let resp = self.get(url)?;
        if let Some(len) = resp.content_length() {
            if len > max {
                return Err(FetchError::TooLarge {
                    url: url.to_string(),
                    max,
                });
            }
        }
        tuf::fetch::read_bounded(url, self.body(url, resp, true), max)
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}
