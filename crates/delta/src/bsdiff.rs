//! bsdiff deltas in a zstd container.
//!
//! The matching is bsdiff 4's (suffix array, `qbsdiff`); its output, three bzip2 streams
//! (controls, the byte-wise difference to the base, new bytes), is transcoded to zstd streams,
//! because unpacking bzip2 limits patching to about 30 MB/s while zstd unpacks at GB/s. The
//! container (`UPDBSZ01`):
//!
//! ```text
//! magic "UPDBSZ01" | ctrl length u64 LE | diff length u64 LE | target length u64 LE
//! ctrl: zstd frame of (add u64 LE, copy u64 LE, seek i64 LE) triples
//! diff: zstd frame of the bytes added to the base's bytes (wrapping)
//! extra: zstd frame of new bytes (the rest of the delta)
//! ```
//! Patching reads the base at the position the controls move, adds `add` diff bytes to as many
//! base bytes, copies `copy` extra bytes, then moves by `seek`. Every position and count is
//! checked: a control reaching outside the base, or more output than the signed length, fails.

use std::io::{self, Read, Write};

use super::{declared_size, invalid, window_log};

const MAGIC: &[u8; 8] = b"UPDBSZ01";
const HEADER: usize = 32;
/// Bytes handled per step while patching.
const CHUNK: usize = 64 << 10;
/// Controls that make no output allowed: bsdiff closes each chunk it searched in parallel with
/// one or two (about 2 per 512 KiB of target), so 4,096 plus one per 64 KiB of target; every
/// other control makes at least one byte.
fn idle_controls(expected: u64) -> u64 {
    4096u64.saturating_add(expected / (64 << 10))
}

/// Make a delta: bsdiff's matching, transcoded to the zstd container.
pub(crate) fn make(base: &[u8], target: &[u8], level: i32) -> io::Result<Vec<u8>> {
    let mut bz = Vec::with_capacity(target.len() / 8 + 1024);
    qbsdiff::Bsdiff::new(base, target)
        .compression_level(1)
        .compare(&mut bz)?;
    let (ctrl, diff, extra) = bsdiff40_streams(&bz)?;
    let mut controls = Vec::with_capacity(ctrl.len());
    for triple in ctrl.chunks_exact(24) {
        for (i, field) in triple.chunks_exact(8).enumerate() {
            let raw: [u8; 8] = field.try_into().map_err(|_| invalid("short control"))?;
            let v = sign_magnitude(u64::from_le_bytes(raw));
            if i < 2 && v < 0 {
                return Err(invalid("negative length in bsdiff's controls"));
            }
            controls.extend_from_slice(&v.to_le_bytes());
        }
    }
    let target_len = u64::try_from(target.len()).unwrap_or(u64::MAX);
    let wlog = window_log(0, target_len);
    let pack = |bytes: &[u8]| -> io::Result<Vec<u8>> {
        let mut enc = zstd::stream::write::Encoder::new(Vec::new(), level)?;
        enc.window_log(wlog)?;
        enc.long_distance_matching(true)?;
        enc.include_contentsize(true)?;
        enc.set_pledged_src_size(Some(u64::try_from(bytes.len()).unwrap_or(u64::MAX)))?;
        enc.write_all(bytes)?;
        enc.finish()
    };
    let (c, d, e) = (pack(&controls)?, pack(&diff)?, pack(&extra)?);
    let mut out = Vec::with_capacity(HEADER + c.len() + d.len() + e.len());
    out.extend_from_slice(MAGIC);
    for n in [c.len(), d.len()] {
        out.extend_from_slice(&u64::try_from(n).unwrap_or(u64::MAX).to_le_bytes());
    }
    out.extend_from_slice(&target_len.to_le_bytes());
    for s in [c, d, e] {
        out.extend_from_slice(&s);
    }
    Ok(out)
}

/// bsdiff 4's sign-magnitude integers.
fn sign_magnitude(x: u64) -> i64 {
    let magnitude = i64::try_from(x & (u64::MAX >> 1)).unwrap_or(i64::MAX);
    if x >> 63 == 0 {
        magnitude
    } else {
        -magnitude
    }
}

/// The three streams of a `BSDIFF40` patch, unpacked (our own output: made a moment ago).
fn bsdiff40_streams(p: &[u8]) -> io::Result<(Vec<u8>, Vec<u8>, Vec<u8>)> {
    let field = |i: usize| -> io::Result<usize> {
        let raw: [u8; 8] = p
            .get(i..i + 8)
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| invalid("short bsdiff header"))?;
        usize::try_from(sign_magnitude(u64::from_le_bytes(raw)))
            .map_err(|_| invalid("bad bsdiff header"))
    };
    if !p.starts_with(b"BSDIFF40") {
        return Err(invalid("not a BSDIFF40 patch"));
    }
    let (c, d) = (field(8)?, field(16)?);
    let rest = p.get(HEADER..).unwrap_or_default();
    let (ctrl, rest) = rest
        .split_at_checked(c)
        .ok_or_else(|| invalid("short patch"))?;
    let (diff, extra) = rest
        .split_at_checked(d)
        .ok_or_else(|| invalid("short patch"))?;
    let unpack = |b: &[u8]| -> io::Result<Vec<u8>> {
        let mut v = Vec::new();
        bzip2::read::BzDecoder::new(b).read_to_end(&mut v)?;
        Ok(v)
    };
    Ok((unpack(ctrl)?, unpack(diff)?, unpack(extra)?))
}

/// Apply a delta in the container to `base`. `delta` is read into memory (at most the
/// target's length and a half, plus 64 KiB: a larger one is refused).
pub(crate) fn apply(
    base: &[u8],
    delta: impl Read,
    expected: u64,
    out: &mut impl Write,
) -> io::Result<()> {
    let mut patch = Vec::new();
    let cap = expected
        .saturating_add(expected / 2)
        .saturating_add(1 << 16);
    delta.take(cap.saturating_add(1)).read_to_end(&mut patch)?;
    if u64::try_from(patch.len()).unwrap_or(u64::MAX) > cap {
        return Err(invalid("the delta is larger than the file it makes"));
    }
    let (ctrl, diff, extra) = split(&patch, expected)?;
    let wlog = window_log(0, expected);
    // Each stream declares its size: the diff and extra streams at most the output; the
    // controls at most one per output byte and the idle ones.
    let idle = idle_controls(expected);
    let max_controls = expected.saturating_add(idle);
    declared_size(ctrl, max_controls.saturating_mul(24))?;
    declared_size(diff, expected)?;
    declared_size(extra, expected)?;
    let ctrl = stream(ctrl, wlog)?;
    let patcher = Patcher {
        base,
        pos: 0,
        diff: stream(diff, wlog)?,
        extra: stream(extra, wlog)?,
        buf: vec![0u8; CHUNK],
        idle_left: idle,
    };
    patcher.run(ctrl, out)
}

/// A decoder of one zstd frame whose window is at most `2^wlog` bytes.
fn stream(s: &[u8], wlog: u32) -> io::Result<impl Read + '_> {
    let mut d = zstd::stream::read::Decoder::with_buffer(s)?.single_frame();
    d.window_log_max(wlog)?;
    Ok(d)
}

/// The container's streams, after checking its header against the signed length.
fn split(p: &[u8], expected: u64) -> io::Result<(&[u8], &[u8], &[u8])> {
    if p.len() < HEADER || !p.starts_with(MAGIC) {
        return Err(invalid("not an UPDBSZ01 delta"));
    }
    let field = |i: usize| -> io::Result<u64> {
        let raw: [u8; 8] = p
            .get(i..i + 8)
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| invalid("short header"))?;
        Ok(u64::from_le_bytes(raw))
    };
    if field(24)? != expected {
        return Err(invalid(
            "the header's target length is not the signed length",
        ));
    }
    let to_usize = |v: u64| usize::try_from(v).map_err(|_| invalid("a stream length is too large"));
    let (c, d) = (to_usize(field(8)?)?, to_usize(field(16)?)?);
    let rest = p.get(HEADER..).unwrap_or_default();
    let (ctrl, rest) = rest
        .split_at_checked(c)
        .ok_or_else(|| invalid("the header's stream lengths exceed the delta"))?;
    let (diff, extra) = rest
        .split_at_checked(d)
        .ok_or_else(|| invalid("the header's stream lengths exceed the delta"))?;
    Ok((ctrl, diff, extra))
}

struct Patcher<'b, D, E> {
    base: &'b [u8],
    pos: usize,
    diff: D,
    extra: E,
    buf: Vec<u8>,
    /// Controls without output still allowed.
    idle_left: u64,
}

impl<D: Read, E: Read> Patcher<'_, D, E> {
    fn run(mut self, mut ctrl: impl Read, out: &mut impl Write) -> io::Result<()> {
        let mut triple = [0u8; 24];
        loop {
            match read_full(&mut ctrl, &mut triple)? {
                0 => return Ok(()),
                24 => {}
                _ => return Err(invalid("a truncated control")),
            }
            let word = |i: usize| {
                let mut w = [0u8; 8];
                w.copy_from_slice(&triple[i..i + 8]);
                w
            };
            let (add, copy) = (u64::from_le_bytes(word(0)), u64::from_le_bytes(word(8)));
            let seek = i64::from_le_bytes(word(16));
            if add == 0 && copy == 0 {
                self.idle_left = self
                    .idle_left
                    .checked_sub(1)
                    .ok_or_else(|| invalid("too many controls that make nothing"))?;
            }
            self.add(add, out)?;
            self.copy(copy, out)?;
            self.pos = i64::try_from(self.pos)
                .ok()
                .and_then(|p| p.checked_add(seek))
                .and_then(|p| usize::try_from(p).ok())
                .filter(|p| *p <= self.base.len())
                .ok_or_else(|| invalid("a control moves outside the base"))?;
        }
    }

    /// `n` bytes: the base's at the position plus the diff stream's.
    fn add(&mut self, mut n: u64, out: &mut impl Write) -> io::Result<()> {
        while n > 0 {
            let k = usize::try_from(n.min(CHUNK as u64)).unwrap_or(CHUNK);
            let end = self.pos.checked_add(k).filter(|e| *e <= self.base.len());
            let old = end
                .and_then(|e| self.base.get(self.pos..e))
                .ok_or_else(|| invalid("a control reads past the end of the base"))?;
            let buf = &mut self.buf[..k];
            self.diff.read_exact(buf)?;
            for (b, o) in buf.iter_mut().zip(old) {
                *b = b.wrapping_add(*o);
            }
            out.write_all(buf)?;
            self.pos += k;
            n -= k as u64;
        }
        Ok(())
    }

    /// `n` new bytes from the extra stream.
    fn copy(&mut self, mut n: u64, out: &mut impl Write) -> io::Result<()> {
        while n > 0 {
            let k = usize::try_from(n.min(CHUNK as u64)).unwrap_or(CHUNK);
            let buf = &mut self.buf[..k];
            self.extra.read_exact(buf)?;
            out.write_all(buf)?;
            n -= k as u64;
        }
        Ok(())
    }
}

/// Read until `buf` is full or the stream ends; how many bytes were read.
fn read_full(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}
