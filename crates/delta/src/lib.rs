//! Deltas between two versions of one file: the bytes that turn a version a host holds (the
//! *base*) into the next one (the *target*).
//!
//! Two algorithms, chosen by content:
//! - [`Algorithm::Zstd`]: zstd with the base as a reference prefix and long-distance matching
//!   (the `zstd --patch-from` mode). Best on data such as pattern files and rule sets.
//! - [`Algorithm::Bsdiff`]: bsdiff 4 (suffix-array matching, `qbsdiff`). Best on executables,
//!   where a small source change moves many addresses by the same amount.
//!
//! A delta is only transport: whoever applies one must check the result against the signed
//! length and hashes of the full target before using a byte of it. This crate bounds what a
//! hostile delta can make [`apply`] do (output never longer than expected, no window larger than
//! the sizes need, header fields checked before the patcher reads them) but cannot tell a right
//! result from a wrong one.
//!
//! Memory: [`apply`] holds the base in memory (the caller passes it) plus, for zstd, a window of
//! at most the target's length (rounded up to a power of two, bounded by
//! [`window_log`]), or, for bsdiff, the delta itself. [`apply_memory`] states the bound so that
//! callers can refuse a delta that would exceed their budget and download the full file instead.

use std::io::{self, Read, Write};

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
    /// zstd for data; both for executables ([`is_executable`]), keeping the smaller.
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
        Choice::Auto if !is_executable(target) => &[Algorithm::Zstd],
        Choice::Auto | Choice::Smallest => &[Algorithm::Zstd, Algorithm::Bsdiff],
    };
    let mut best: Option<Made> = None;
    for &algorithm in algorithms {
        let bytes = match algorithm {
            Algorithm::Zstd => zstd_make(base, target),
            Algorithm::Bsdiff => bsdiff_make(base, target),
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
/// most content is, a faster one where the strongest would take minutes.
fn zstd_level(target_len: usize) -> i32 {
    match target_len {
        0..=8_000_000 => 19,
        8_000_001..=40_000_000 => 15,
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

fn bsdiff_make(base: &[u8], target: &[u8]) -> io::Result<Vec<u8>> {
    let mut out = Vec::with_capacity(target.len() / 8 + 1024);
    qbsdiff::Bsdiff::new(base, target)
        .compression_level(9)
        .compare(&mut out)?;
    Ok(out)
}

/// The most memory [`apply`] needs for a delta of `delta_len` bytes turning a base of
/// `base_len` bytes (which the caller holds) into `target_len` bytes, base included.
pub fn apply_memory(algorithm: Algorithm, base_len: u64, delta_len: u64, target_len: u64) -> u64 {
    const BUFFERS: u64 = 4 << 20;
    let held = match algorithm {
        // The decoder's window never exceeds the frame's content size.
        Algorithm::Zstd => target_len.min(1u64 << window_log(base_len, target_len)),
        // The patch is parsed in memory; the output is streamed.
        Algorithm::Bsdiff => delta_len,
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
        Algorithm::Bsdiff => bsdiff_apply(base, delta, expected_len, &mut out),
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
    let mut dec = zstd::stream::read::Decoder::with_ref_prefix(io::BufReader::new(delta), base)?
        .single_frame();
    // A frame asking for a larger window than these sizes need is refused, so a hostile
    // delta cannot make the decoder allocate more.
    dec.window_log_max(window_log(base_len, expected))?;
    io::copy(&mut dec, out)?;
    Ok(())
}

fn bsdiff_apply(
    base: &[u8],
    delta: impl Read,
    expected: u64,
    out: &mut impl Write,
) -> io::Result<()> {
    let mut patch = Vec::new();
    // A bsdiff patch is never larger than what it produces plus its header and streams' slack.
    let cap = expected
        .saturating_add(expected / 2)
        .saturating_add(1 << 16);
    delta.take(cap.saturating_add(1)).read_to_end(&mut patch)?;
    if u64::try_from(patch.len()).unwrap_or(u64::MAX) > cap {
        return Err(invalid("the patch is larger than the file it makes"));
    }
    check_bsdiff_header(&patch, expected)?;
    qbsdiff::Bspatch::new(&patch)?.apply(base, out)?;
    Ok(())
}

/// The bsdiff 4 header: magic, then the lengths of the control and diff streams and of the
/// target, as sign-magnitude 64-bit integers. Checked here (lengths within the patch, target
/// length as signed) because the patcher does unchecked arithmetic on them.
fn check_bsdiff_header(patch: &[u8], expected: u64) -> io::Result<()> {
    let field = |i: usize| -> io::Result<u64> {
        let raw: [u8; 8] = patch
            .get(i..i + 8)
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| invalid("the patch is shorter than its header"))?;
        let v = u64::from_le_bytes(raw);
        if v >> 63 != 0 {
            return Err(invalid("a header length is negative"));
        }
        Ok(v)
    };
    if !patch.starts_with(b"BSDIFF40") {
        return Err(invalid("not a BSDIFF40 patch"));
    }
    let (ctrl, diff, target) = (field(8)?, field(16)?, field(24)?);
    let total = u64::try_from(patch.len()).unwrap_or(u64::MAX);
    let within = 32u64
        .checked_add(ctrl)
        .and_then(|n| n.checked_add(diff))
        .is_some_and(|n| n <= total);
    if !within {
        return Err(invalid("the header's stream lengths exceed the patch"));
    }
    if target != expected {
        return Err(invalid(
            "the header's target length is not the signed length",
        ));
    }
    Ok(())
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
