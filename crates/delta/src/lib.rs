//! Deltas between two versions of one file: the bytes that turn a version a host holds (the
//! *base*) into the next one (the *target*).
//!
//! Two algorithms, chosen by content:
//! - [`Algorithm::Zstd`]: zstd with the base as a reference prefix and long-distance matching
//!   (the `zstd --patch-from` mode). Best on data such as pattern files and rule sets.
//! - [`Algorithm::Bsdiff`]: bsdiff 4's matching (suffix array, `qbsdiff`) in a container of zstd
//!   streams (see [`bsdiff`]). Best on executables, where a small source change moves many
//!   addresses by the same amount.
//!
//! A delta is only transport: whoever applies one must check the result against the signed
//! length and hashes of the full target before using a byte of it. This crate bounds what a
//! hostile delta can make [`apply`] do (output never longer than expected, no window larger than
//! the sizes need, every bsdiff control checked against the base) but cannot tell a right result
//! from a wrong one.
//!
//! Memory: [`apply`] holds the base in memory (the caller passes it) plus, for zstd, a window of
//! at most the target's length (rounded up to a power of two, bounded by [`window_log`]), or,
//! for bsdiff, the delta itself and three stream windows of at most that size each. [`apply_memory`] states the bound so that
//! callers can refuse a delta that would exceed their budget and download the full file instead.

use std::io::{self, Read, Write};

mod bsdiff;

/// Errors making or applying a delta.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("making a {algorithm} delta failed: {source}")]
    Make {
        algorithm: Algorithm,
        source: io::Error,
    },
    #[error("applying the {algorithm} delta failed: {reason}")]
    Apply {
        algorithm: Algorithm,
        reason: String,
    },
    #[error("the {algorithm} delta produced {got} bytes but the target has {expected}")]
    Length {
        algorithm: Algorithm,
        got: u64,
        expected: u64,
    },
    #[error("files of {0} bytes are too large for a delta (at most 2 GiB each)")]
    TooLarge(u64),
}

pub type Result<T> = std::result::Result<T, Error>;

pub use model::delta::Algorithm;

/// Which algorithms to try when making a delta.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Choice {
    /// Both, keeping the smaller, up to [`AUTO_BOTH_UP_TO`]; zstd only for larger files
    /// (bsdiff's suffix array needs about nine times the base in memory, and minutes).
    #[default]
    Auto,
    /// Only this algorithm.
    Only(Algorithm),
    /// Both, keeping the smaller.
    Smallest,
}

/// A delta made by [`make`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Made {
    pub algorithm: Algorithm,
    pub bytes: Vec<u8>,
}

/// The most memory hosts let one delta step take ([`apply_memory`]); a delta that would need
/// more is neither published nor applied: 1 GiB.
pub const MEMORY_BUDGET: u64 = 1 << 30;

/// Up to this size, [`Choice::Auto`] tries bsdiff on data too.
pub const AUTO_BOTH_UP_TO: usize = 64 << 20;

/// The largest file either side of a delta may be (zstd's largest window is 2 GiB).
pub const MAX_FILE: u64 = 1 << 31;

/// Whether `bytes` start like an executable or shared library (ELF, PE, Mach-O).
pub fn is_executable(bytes: &[u8]) -> bool {
    const MAGICS: [&[u8]; 7] = [
        b"\x7fELF",
        b"MZ",
        b"\xfe\xed\xfa\xce",
        b"\xfe\xed\xfa\xcf",
        b"\xce\xfa\xed\xfe",
        b"\xcf\xfa\xed\xfe",
        b"\xca\xfe\xba\xbe",
    ];
    MAGICS.iter().any(|m| bytes.starts_with(m))
}

/// Make the delta from `base` to `target` with the algorithms `choice` names; the smallest.
pub fn make(choice: Choice, base: &[u8], target: &[u8]) -> Result<Made> {
    for len in [base.len(), target.len()] {
        let len = u64::try_from(len).unwrap_or(u64::MAX);
        if len > MAX_FILE {
            return Err(Error::TooLarge(len));
        }
    }
    let algorithms: &[Algorithm] = match choice {
        Choice::Only(Algorithm::Zstd) => &[Algorithm::Zstd],
        Choice::Only(Algorithm::Bsdiff) => &[Algorithm::Bsdiff],
        Choice::Auto if target.len().max(base.len()) > AUTO_BOTH_UP_TO => &[Algorithm::Zstd],
        Choice::Auto | Choice::Smallest => &[Algorithm::Zstd, Algorithm::Bsdiff],
    };
    let mut best: Option<Made> = None;
    for &algorithm in algorithms {
        let bytes = match algorithm {
            Algorithm::Zstd => zstd_make(base, target),
            Algorithm::Bsdiff => bsdiff::make(base, target, zstd_level(target.len())),
        }
        .map_err(|source| Error::Make { algorithm, source })?;
        if best.as_ref().is_none_or(|b| bytes.len() < b.bytes.len()) {
            best = Some(Made { algorithm, bytes });
        }
    }
    best.ok_or(Error::TooLarge(0))
}

/// The zstd window (as a power of two) a delta between files of these lengths uses: one above
/// the larger length's highest bit, so that the base and the whole target fit (as
/// `zstd --patch-from` does), within zstd's limits.
pub fn window_log(base_len: u64, target_len: u64) -> u32 {
    let larger = base_len.max(target_len).max(1);
    let high_bit = u64::BITS - 1 - larger.leading_zeros();
    (high_bit + 1).clamp(10, 31)
}

/// The zstd level used for a target of this size: the strongest levels for the small files
/// most content is, faster ones where the strongest would take minutes (on a 24 MB executable,
/// level 19 takes 22 s, 15 takes 9 s, 12 takes 1.6 s for a delta 20 % larger than 19's).
fn zstd_level(target_len: usize) -> i32 {
    match target_len {
        0..=8_000_000 => 19,
        8_000_001..=40_000_000 => 12,
        _ => 9,
    }
}

fn zstd_make(base: &[u8], target: &[u8]) -> io::Result<Vec<u8>> {
    let len = |b: &[u8]| u64::try_from(b.len()).unwrap_or(u64::MAX);
    let mut out = Vec::with_capacity(target.len() / 16 + 1024);
    let mut enc =
        zstd::stream::write::Encoder::with_ref_prefix(&mut out, zstd_level(target.len()), base)?;
    enc.window_log(window_log(len(base), len(target)))?;
    enc.long_distance_matching(true)?;
    enc.include_checksum(false)?;
    enc.include_contentsize(true)?;
    enc.set_pledged_src_size(Some(len(target)))?;
    enc.write_all(target)?;
    enc.finish()?;
    Ok(out)
}

/// The most memory [`apply`] needs for a delta of `delta_len` bytes turning a base of
/// `base_len` bytes (which the caller holds) into `target_len` bytes, base included.
pub fn apply_memory(algorithm: Algorithm, base_len: u64, delta_len: u64, target_len: u64) -> u64 {
    const BUFFERS: u64 = 4 << 20;
    let held = match algorithm {
        // The decoder's window never exceeds the frame's content size, which must be declared.
        Algorithm::Zstd => target_len.min(1u64 << window_log(base_len, target_len)),
        // The delta in memory, and a window for each of its three streams.
        Algorithm::Bsdiff => delta_len.saturating_add(
            target_len
                .min(1u64 << window_log(0, target_len))
                .saturating_mul(3),
        ),
    };
    base_len.saturating_add(held).saturating_add(BUFFERS)
}

/// Apply `delta` to `base`, writing the result to `out`: exactly `expected_len` bytes or an
/// error. The result is not verified here: check it against the signed target.
pub fn apply(
    algorithm: Algorithm,
    base: &[u8],
    delta: impl Read,
    expected_len: u64,
    out: impl Write,
) -> Result<u64> {
    if expected_len > MAX_FILE {
        return Err(Error::TooLarge(expected_len));
    }
    let mut out = Bounded {
        inner: out,
        written: 0,
        max: expected_len,
    };
    let fail = |reason: String| Error::Apply { algorithm, reason };
    match algorithm {
        Algorithm::Zstd => zstd_apply(base, delta, expected_len, &mut out),
        Algorithm::Bsdiff => bsdiff::apply(base, delta, expected_len, &mut out),
    }
    .map_err(|e| fail(e.to_string()))?;
    out.flush().map_err(|e| fail(e.to_string()))?;
    if out.written != expected_len {
        return Err(Error::Length {
            algorithm,
            got: out.written,
            expected: expected_len,
        });
    }
    Ok(out.written)
}

fn zstd_apply(
    base: &[u8],
    delta: impl Read,
    expected: u64,
    out: &mut impl Write,
) -> io::Result<()> {
    let base_len = u64::try_from(base.len()).unwrap_or(u64::MAX);
    // The frame header (at most 18 bytes) first, read in full whatever the reader's chunks.
    let mut delta = delta;
    let mut header = Vec::with_capacity(18);
    (&mut delta).take(18).read_to_end(&mut header)?;
    declared_size(&header, expected)?;
    let reader = io::BufReader::new(io::Cursor::new(header).chain(delta));
    let mut dec = zstd::stream::read::Decoder::with_ref_prefix(reader, base)?.single_frame();
    // A frame asking for a larger window than these sizes need is refused, so a hostile
    // delta cannot make the decoder reserve more.
    dec.window_log_max(window_log(base_len, expected))?;
    io::copy(&mut dec, out)?;
    Ok(())
}

/// A zstd frame must declare its content size, at most `max`: the decoder then never reserves
/// a window larger than that.
pub(crate) fn declared_size(frame_start: &[u8], max: u64) -> io::Result<u64> {
    match zstd::zstd_safe::get_frame_content_size(frame_start) {
        Ok(Some(n)) if n <= max => Ok(n),
        Ok(Some(_)) => Err(invalid("a zstd frame declares more content than expected")),
        Ok(None) => Err(invalid("a zstd frame does not declare its content size")),
        Err(_) => Err(invalid("not a zstd frame header")),
    }
}

fn invalid(msg: &'static str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg)
}

/// A writer that refuses to go past `max` bytes.
struct Bounded<W> {
    inner: W,
    written: u64,
    max: u64,
}

impl<W: Write> Write for Bounded<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let len = u64::try_from(buf.len()).unwrap_or(u64::MAX);
        if self.written.saturating_add(len) > self.max {
            return Err(io::Error::other(
                "the delta produces more bytes than the target has",
            ));
        }
        let n = self.inner.write(buf)?;
        self.written = self
            .written
            .saturating_add(u64::try_from(n).unwrap_or(u64::MAX));
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests;
