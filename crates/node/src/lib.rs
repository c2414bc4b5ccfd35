//! What agent and relay share as hosts: the trust anchor they start from, checks of their
//! settings (source URLs, writable directories), rebuilding targets from deltas, one setting for all outgoing HTTPS (upstreams
//! and the manager alike), the manager link (enrolment, heartbeat, policy), the clock and the
//! fault-injection test hook. Each exists once here, so the two hosts cannot drift apart.

pub mod anchor;
pub mod clock;
pub mod delta;
pub mod dirs;
pub mod error;
pub mod fault;
pub mod http;
pub mod manager;
pub mod range;
pub mod trust;
pub mod url;

pub use error::{Error, Result};
pub use http::HttpSettings;
pub use manager::{Identity, LinkSettings, ManagerLink};
