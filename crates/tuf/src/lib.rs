//! Updraft's trust core: TUF 1.0 metadata, canonical JSON, signatures, the pure verification
//! steps of the client workflow ([`trusted`]), the client that drives them through a [`Fetcher`]
//! ([`updater`]) and the repository engine ([`repo`]). This crate does no network I/O.

pub mod canonical;
pub mod crypto;
pub mod delegation;
pub mod error;
pub mod fetch;
pub mod fsutil;
pub mod metadata;
pub mod repo;
pub mod trusted;
pub mod updater;

pub use error::{Error, FetchError, Result};
pub use fetch::{Fetcher, FileFetcher};
pub use trusted::{TimestampUpdate, TrustedSet, Verified};
pub use updater::{
    verify_file, RefreshOutcome, RefusedTarget, TargetInfo, TargetListing, Updater, UpdaterConfig,
};
