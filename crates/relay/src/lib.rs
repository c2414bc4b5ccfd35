//! The Updraft relay: mirrors an upstream TUF repository (the origin or a parent relay) with full
//! verification and serves it to agents and child relays. It holds no signing key: it can delay
//! updates, never forge or roll them back, because every client verifies everything itself.

pub mod bundle;
pub mod config;
pub mod cycle;
mod daemon;
pub mod error;
pub mod progress;
pub mod server;
pub mod store;
pub mod sync;
pub mod view;

use std::path::Path;
use std::sync::Arc;

pub use config::RelayConfig;
pub use config::SelfUpgrade;
pub use cycle::{sync_cycle, sync_result};
pub use daemon::{run, run_with, Companion, CompanionReport};
pub use error::{Error, Result};
pub use server::Shared;
pub use sync::{Cache, Source, SyncOutcome, SyncSettings};

/// Read and check a trust anchor (node's one check): a root file signed by a threshold of its
/// own keys.
pub fn trust_anchor(path: &Path) -> Result<Vec<u8>> {
    Ok(node::anchor::load(path)?)
}

/// The HTTP(S) fetcher for upstreams (with the `ca` setting; the manager uses the same).
pub fn fetcher(config: &RelayConfig) -> Result<Arc<dyn tuf::Fetcher>> {
    Ok(Arc::new(config.http.client()?))
}

/// Load the view in service from the cache into `shared` (after a restart).
pub fn load_current(cache: &Cache, shared: &Shared) -> Result<bool> {
    match cache.views.current()? {
        Some(m) => {
            let id = m.id;
            shared.set_view(view::ServedView::load(m, &cache.store)?);
            tracing::info!(view = id, "serving the view from the cache");
            Ok(true)
        }
        None => Ok(false),
    }
}
