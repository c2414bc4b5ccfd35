//! The HTTP fetcher and servers on 127.0.0.1, against well-behaved and hostile sources: one
//! test binary, one module per property it protects.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod hostile;

mod http_fetcher;
mod serving_limits;
mod slow_sources;
