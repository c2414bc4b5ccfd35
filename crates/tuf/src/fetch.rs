//! The small trait through which the client obtains bytes, and its local-file implementation.
//! The network implementation lives in the `transport` crate: this crate does no network I/O.

use std::fs::File;
use std::io::Read;
use std::path::PathBuf;

pub use crate::error::FetchError;

/// A source of bytes addressed by URL. Implementations return a stream; the caller bounds how
/// much of it is read, so an endless response is cut off by the reader, not trusted to end.
pub trait Fetcher: Send + Sync {
    /// Open `url` for reading. A missing file (HTTP 403/404) must be [`FetchError::NotFound`].
    fn fetch(&self, url: &str) -> Result<Box<dyn Read + Send>, FetchError>;

    /// Fetch at most `max` bytes of `url` into memory; more is [`FetchError::TooLarge`].
    /// Implementations may answer faster (e.g. refuse an announced length above `max` without
    /// reading, or read a known length in one go) but must never return more than `max` bytes.
    fn fetch_bytes(&self, url: &str, max: u64) -> Result<Vec<u8>, FetchError> {
        read_bounded(url, self.fetch(url)?, max)
    }
}

/// Read at most `max` bytes from `reader`; one byte more is [`FetchError::TooLarge`].
pub fn read_bounded(url: &str, reader: impl Read, max: u64) -> Result<Vec<u8>, FetchError> {
    let mut buf = Vec::new();
    reader
        .take(max.saturating_add(1))
        .read_to_end(&mut buf)
        .map_err(|e| FetchError::Transport {
            url: url.to_string(),
            reason: e.to_string(),
        })?;
    if buf.len() as u64 > max {
        return Err(FetchError::TooLarge {
            url: url.to_string(),
            max,
        });
    }
    Ok(buf)
}

impl<F: Fetcher + ?Sized> Fetcher for std::sync::Arc<F> {
    fn fetch(&self, url: &str) -> Result<Box<dyn Read + Send>, FetchError> {
        (**self).fetch(url)
    }
    fn fetch_bytes(&self, url: &str, max: u64) -> Result<Vec<u8>, FetchError> {
        (**self).fetch_bytes(url, max)
    }
}

/// Fetches `file://` URLs (or plain paths) from the local file system, e.g. a repository on a
/// mounted medium. Percent-escapes in the URL are decoded.
#[derive(Debug, Default, Clone)]
pub struct FileFetcher;

impl Fetcher for FileFetcher {
    fn fetch(&self, url: &str) -> Result<Box<dyn Read + Send>, FetchError> {
        let raw = url.strip_prefix("file://").unwrap_or(url);
        let decoded = percent_encoding::percent_decode_str(raw)
            .decode_utf8()
            .map_err(|e| FetchError::Transport {
                url: url.to_string(),
                reason: e.to_string(),
            })?;
        let path = PathBuf::from(decoded.as_ref());
        match File::open(&path) {
            Ok(f) => Ok(Box::new(f)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(FetchError::NotFound {
                url: url.to_string(),
            }),
            Err(e) => Err(FetchError::Transport {
                url: url.to_string(),
                reason: e.to_string(),
            }),
        }
    }
}
