//! Network transport for Updraft: an HTTP(S) client (rustls, timeouts) implementing the TUF
//! crate's [`tuf::Fetcher`], and a static file server for repository directories (the origin).

use std::io::Read;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tuf::FetchError;

pub mod manager_client;

/// Errors of this crate.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("HTTP client: {0}")]
    Client(String),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: String,
        source: std::io::Error,
    },
    #[error("{}: {reason}", path.display())]
    Dir { path: PathBuf, reason: String },
    #[error("server: {0}")]
    Serve(std::io::Error),
    #[error("TLS: {0}")]
    Tls(String),
}

/// Client settings.
#[derive(Debug, Clone)]
pub struct HttpConfig {
    /// Time to establish a connection.
    pub connect_timeout: Duration,
    /// Longest time one request may take, body included (a stalled or slow-dripping server is
    /// cut off; length limits are enforced by the reader).
    pub request_timeout: Duration,
    /// Extra CA certificates (PEM) trusted besides the system roots.
    pub extra_root_pem: Vec<Vec<u8>>,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            connect_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(300),
            extra_root_pem: Vec::new(),
        }
    }
}

/// Blocking HTTP(S) fetcher (rustls; system trust roots). Content trust never depends on TLS:
/// everything fetched is verified against signed metadata by the caller.
#[derive(Debug, Clone)]
pub struct HttpFetcher {
    client: reqwest::blocking::Client,
}

impl HttpFetcher {
    pub fn new(config: &HttpConfig) -> Result<Self, Error> {
        let mut builder = reqwest::blocking::Client::builder()
            .connect_timeout(config.connect_timeout)
            .timeout(config.request_timeout)
            .tcp_nodelay(true)
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
        let client = builder.build().map_err(|e| Error::Client(e.to_string()))?;
        Ok(HttpFetcher { client })
    }
}

impl HttpFetcher {
    fn get(&self, url: &str) -> Result<reqwest::blocking::Response, FetchError> {
        let resp = self
            .client
            .get(url)
            .send()
            .map_err(|e| FetchError::Transport {
                url: url.to_string(),
                reason: error_chain(&e),
            })?;
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
}

impl HttpFetcher {
    /// POST a JSON body with a bearer credential; returns the status and at most `max` bytes of
    /// the answer (for small API calls such as manager heartbeats).
    pub fn post_json(
        &self,
        url: &str,
        bearer: Option<&str>,
        body: Vec<u8>,
        max: u64,
    ) -> Result<(u16, Vec<u8>), FetchError> {
        let mut req = self
            .client
            .post(url)
            .header("content-type", "application/json")
            .body(body);
        if let Some(b) = bearer {
            req = req.bearer_auth(b);
        }
        let resp = req.send().map_err(|e| FetchError::Transport {
            url: url.to_string(),
            reason: error_chain(&e),
        })?;
        let status = resp.status().as_u16();
        let bytes = tuf::fetch::read_bounded(url, resp, max)?;
        Ok((status, bytes))
    }
}

impl tuf::Fetcher for HttpFetcher {
    fn fetch(&self, url: &str) -> Result<Box<dyn Read + Send>, FetchError> {
        if url.starts_with("file://") {
            return tuf::FileFetcher.fetch(url);
        }
        Ok(Box::new(self.get(url)?))
    }

    /// A response that announces more than `max` bytes is refused before its body is read; one
    /// with a length within bounds is read in one piece (the HTTP layer reads no more than the
    /// announced length); one without a length is streamed and cut off after `max` bytes.
    fn fetch_bytes(&self, url: &str, max: u64) -> Result<Vec<u8>, FetchError> {
        if url.starts_with("file://") {
            return tuf::FileFetcher.fetch_bytes(url, max);
        }
        let resp = self.get(url)?;
        match resp.content_length() {
            Some(len) if len > max => Err(FetchError::TooLarge {
                url: url.to_string(),
                max,
            }),
            Some(_) => resp
                .bytes()
                .map(|b| b.to_vec())
                .map_err(|e| FetchError::Transport {
                    url: url.to_string(),
                    reason: error_chain(&e),
                }),
            None => tuf::fetch::read_bounded(url, resp, max),
        }
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

/// A running static server; dropping it does not stop it, call [`StaticServer::shutdown`].
#[derive(Debug)]
pub struct StaticServer {
    pub addr: SocketAddr,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    handle: Option<tokio::task::JoinHandle<Result<(), std::io::Error>>>,
}

impl StaticServer {
    /// Stop accepting connections and wait for the server task.
    pub async fn shutdown(mut self) -> Result<(), Error> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(h) = self.handle.take() {
            h.await
                .map_err(|e| Error::Serve(std::io::Error::other(e)))?
                .map_err(Error::Serve)?;
        }
        Ok(())
    }
}

/// The origin router: `DIR/metadata` at `/metadata/`, `DIR/targets` at `/targets/`.
pub fn origin_router(dir: &Path) -> Result<axum::Router, Error> {
    for sub in ["metadata", "targets"] {
        let p = dir.join(sub);
        if !p.is_dir() {
            return Err(Error::Dir {
                path: p,
                reason: "not a directory (is this a repository made by `updraft repo init`?)"
                    .into(),
            });
        }
    }
    Ok(axum::Router::new()
        .nest_service(
            "/metadata",
            tower_http::services::ServeDir::new(dir.join("metadata")),
        )
        .nest_service(
            "/targets",
            tower_http::services::ServeDir::new(dir.join("targets")),
        )
        .route("/healthz", axum::routing::get(|| async { "ok\n" })))
}

/// Serve a repository directory on `addr` until the returned server is shut down.
pub async fn serve_origin(dir: &Path, addr: &str) -> Result<StaticServer, Error> {
    let router = origin_router(dir)?;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| Error::Bind {
            addr: addr.to_string(),
            source,
        })?;
    let local = listener.local_addr().map_err(Error::Serve)?;
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    // Small responses (a 404, a timestamp) must not wait for delayed ACKs (Nagle).
    let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
        let _ = tcp.set_nodelay(true);
    });
    let handle = tokio::spawn(async move {
        axum::serve(listener, router)
            .with_graceful_shutdown(async move {
                let _ = rx.await;
            })
            .await
    });
    Ok(StaticServer {
        addr: local,
        shutdown: Some(tx),
        handle: Some(handle),
    })
}

/// Serve `app` on `listener` over plain HTTP (TCP_NODELAY) until `shutdown` resolves.
pub async fn serve_plain(
    listener: tokio::net::TcpListener,
    app: axum::Router,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), Error> {
    let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
        let _ = tcp.set_nodelay(true);
    });
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await
    .map_err(Error::Serve)
}

/// A rustls server configuration (ring provider) from PEM certificate chain and key files.
pub fn tls_server_config(
    cert: &Path,
    key: &Path,
) -> Result<tokio_rustls::rustls::ServerConfig, Error> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|e| Error::Tls(format!("{}: {e}", cert.display())))?
        .collect::<Result<_, _>>()
        .map_err(|e| Error::Tls(format!("{}: {e}", cert.display())))?;
    if certs.is_empty() {
        return Err(Error::Tls(format!("{}: no certificate", cert.display())));
    }
    let key = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| Error::Tls(format!("{}: {e}", key.display())))?;
    let provider = std::sync::Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    tokio_rustls::rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Tls(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| Error::Tls(e.to_string()))
}

/// Serve `app` on `listener` over HTTPS (rustls) until `shutdown` resolves.
pub async fn serve_tls(
    listener: tokio::net::TcpListener,
    app: axum::Router,
    cert: &Path,
    key: &Path,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), Error> {
    let acceptor =
        tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(tls_server_config(cert, key)?));
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => return Ok(()),
            accepted = listener.accept() => {
                let (tcp, peer) = match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        tracing::warn!(error = %e, "accept failed");
                        continue;
                    }
                };
                let _ = tcp.set_nodelay(true);
                // Handlers see the peer address as with plain serving.
                let app = app.clone().layer(axum::Extension(axum::extract::ConnectInfo(peer)));
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let tls = match acceptor.accept(tcp).await {
                        Ok(t) => t,
                        Err(e) => {
                            tracing::debug!(error = %e, "TLS handshake failed");
                            return;
                        }
                    };
                    let io = hyper_util::rt::TokioIo::new(tls);
                    let svc = hyper_util::service::TowerToHyperService::new(app);
                    let _ = hyper_util::server::conn::auto::Builder::new(hyper_util::rt::TokioExecutor::new())
                        .serve_connection(io, svc)
                        .await;
                });
            }
        }
    }
}
