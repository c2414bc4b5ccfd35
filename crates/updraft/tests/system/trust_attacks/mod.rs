//! Attacks on the trust promises, run against the real `updraft` binaries (agent, relay,
//! publisher) with hostile repositories, sources and archives built by code. Each module is named
//! after the property it protects; see `docs/threat-model.md`.

mod content_identity;
mod delegation_scope;
mod lagging_relay;
mod patch_safety;
mod publisher_safety;
mod rollback_after_rotation;
mod slow_retrieval;
mod threshold;
