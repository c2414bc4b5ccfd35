//! The Updraft model: what travels between the parts of the system, spelled once.
//!
//! - [`content`] (re-exported at the root): the content model carried in a TUF target's
//!   `custom.updraft` field (components, versions, kinds, patches) and its binding to the path.
//! - [`delta`]: the `custom.updraft_delta` description of a delta target (a file that turns
//!   one version of a component's file into a later one) and its binding to the path.
//! - [`protocol`]: the manager protocol (enrolment, heartbeat, policy, hotfix history) and the
//!   enums hosts and the manager compare (role, outcome, module state, sync result).
//!
//! Serde only: no I/O, no clock.

pub mod content;
pub mod delta;
pub mod protocol;

pub use content::*;
