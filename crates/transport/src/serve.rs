//! The servers: a static file server for repository directories (the origin) and plain or TLS
//! serving of an axum app, all through the one serving loop (`accept`) under [`ServeLimits`].

use std::net::SocketAddr;
use std::path::Path;

use crate::accept::{self, Security};
use crate::limits::ServeLimits;
use crate::observe::{observed, repository_kind, Exposition, HttpMetrics, REPOSITORY_KINDS};
use crate::Error;

/// A running static server; dropping it does not stop it, call [`StaticServer::shutdown`].
#[derive(Debug)]
pub struct StaticServer {
    pub addr: SocketAddr,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    handle: Option<tokio::task::JoinHandle<Result<(), Error>>>,
}

impl StaticServer {
    /// Stop accepting connections and wait for the server task.
    pub async fn shutdown(mut self) -> Result<(), Error> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(h) = self.handle.take() {
            h.await
                .map_err(|e| Error::Serve(std::io::Error::other(e)))??;
        }
        Ok(())
    }
}

/// The origin router: `DIR/metadata` at `/metadata/`, `DIR/targets` at `/targets/`, `/healthz`
/// and `/metrics`; every request counted and access-logged.
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
    let http = HttpMetrics::new("origin", REPOSITORY_KINDS, repository_kind);
    let metrics = http.clone();
    let router = axum::Router::new()
        .nest_service(
            "/metadata",
            tower_http::services::ServeDir::new(dir.join("metadata")),
        )
        .nest_service(
            "/targets",
            tower_http::services::ServeDir::new(dir.join("targets")),
        )
        .route("/healthz", axum::routing::get(|| async { "ok\n" }))
        .route(
            "/metrics",
            axum::routing::get(move || async move { origin_metrics(&metrics) }),
        );
    Ok(observed(router, http))
}

/// The origin's `/metrics`: build and requests.
fn origin_metrics(http: &HttpMetrics) -> axum::response::Response {
    let mut out = Exposition::default();
    out.build_info();
    http.write(&mut out);
    out.into_response()
}

/// Serve a repository directory on `addr` with the default limits until the returned server
/// is shut down.
pub async fn serve_origin(dir: &Path, addr: &str) -> Result<StaticServer, Error> {
    serve_origin_with(dir, addr, ServeLimits::default()).await
}

/// Serve a repository directory on `addr` under `limits` until the returned server is shut
/// down.
pub async fn serve_origin_with(
    dir: &Path,
    addr: &str,
    limits: ServeLimits,
) -> Result<StaticServer, Error> {
    let router = origin_router(dir)?;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| Error::Bind {
            addr: addr.to_string(),
            source,
        })?;
    let local = listener.local_addr().map_err(Error::Serve)?;
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let handle = tokio::spawn(serve_plain(listener, router, limits, async move {
        let _ = rx.await;
    }));
    Ok(StaticServer {
        addr: local,
        shutdown: Some(tx),
        handle: Some(handle),
    })
}

/// Serve `app` on `listener` over plain HTTP under `limits` until `shutdown` resolves.
pub async fn serve_plain(
    listener: tokio::net::TcpListener,
    app: axum::Router,
    limits: ServeLimits,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), Error> {
    accept::serve(listener, app, Security::Plain, limits, shutdown).await
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
    let mut provider = tokio_rustls::rustls::crypto::ring::default_provider();
    // AES-128-GCM with SHA-256 first: its handshake hashing runs on the CPU's SHA extensions,
    // where SHA-384 (AES-256-GCM) runs without hardware help in ring and costs a handshake
    // about a fifth more. Every default suite stays allowed for clients that want another.
    provider
        .cipher_suites
        .sort_by_key(|s| s.suite() != tokio_rustls::rustls::CipherSuite::TLS13_AES_128_GCM_SHA256);
    let mut config =
        tokio_rustls::rustls::ServerConfig::builder_with_provider(std::sync::Arc::new(provider))
            .with_safe_default_protocol_versions()
            .map_err(|e| Error::Tls(e.to_string()))?
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .map_err(|e| Error::Tls(e.to_string()))?;
    config.ignore_client_order = true;
    Ok(config)
}

/// Serve `app` on `listener` over HTTPS (rustls) under `limits` until `shutdown` resolves.
pub async fn serve_tls(
    listener: tokio::net::TcpListener,
    app: axum::Router,
    cert: &Path,
    key: &Path,
    limits: ServeLimits,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), Error> {
    let acceptor =
        tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(tls_server_config(cert, key)?));
    accept::serve(listener, app, Security::Tls(acceptor), limits, shutdown).await
}

/// Print a server's address line on stdout (how launchers learn it). A stdout nobody reads any
/// more (a closed pipe) never ends the server: the error is ignored, unlike `println!`, which
/// panics (a restarted build would die on it).
pub fn announce(line: std::fmt::Arguments<'_>) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = out.write_fmt(line).and_then(|()| out.write_all(b"\n"));
    let _ = out.flush();
}
