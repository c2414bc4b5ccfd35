use super::*;

/// Deterministic pseudo-random bytes (xorshift), so fixtures are built by code.
fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// A base and a target that differs from it in a few places, like a daily pattern update.
fn pair(len: usize) -> (Vec<u8>, Vec<u8>) {
    let base = noise(7, len);
    let mut target = base.clone();
    for i in (0..len).step_by(len / 8 + 1) {
        target[i] ^= 0x5a;
    }
    target.extend_from_slice(&noise(9, 1000));
    (base, target)
}

fn roundtrip(algorithm: Algorithm, base: &[u8], target: &[u8]) -> Vec<u8> {
    let made = make(Choice::Only(algorithm), base, target).unwrap();
    assert_eq!(made.algorithm, algorithm);
    let mut out = Vec::new();
    let n = apply(
        algorithm,
        base,
        &made.bytes[..],
        target.len() as u64,
        &mut out,
    )
    .unwrap();
    assert_eq!(n, target.len() as u64);
    assert_eq!(out, target);
    made.bytes
}

#[test]
fn both_algorithms_rebuild_the_target_from_a_small_delta() {
    let (base, target) = pair(300_000);
    for algorithm in [Algorithm::Zstd, Algorithm::Bsdiff] {
        let delta = roundtrip(algorithm, &base, &target);
        assert!(
            delta.len() < 3_000,
            "{algorithm}: {} bytes for a few changes",
            delta.len()
        );
    }
}

#[test]
fn empty_files_and_unrelated_files_round_trip() {
    for algorithm in [Algorithm::Zstd, Algorithm::Bsdiff] {
        roundtrip(algorithm, b"", b"");
        roundtrip(algorithm, b"", b"new file");
        roundtrip(algorithm, b"old file", b"");
        roundtrip(algorithm, &noise(1, 5000), &noise(2, 7000));
    }
}

#[test]
fn auto_keeps_the_smaller_of_the_two() {
    let (base, target) = pair(50_000);
    let elf = |b: &[u8]| [b"\x7fELF".as_slice(), b].concat();
    for (base, target) in [(base.clone(), target.clone()), (elf(&base), elf(&target))] {
        let auto = make(Choice::Auto, &base, &target).unwrap();
        let smaller = [Algorithm::Zstd, Algorithm::Bsdiff]
            .map(|a| make(Choice::Only(a), &base, &target).unwrap().bytes.len())
            .into_iter()
            .min()
            .unwrap();
        assert_eq!(auto.bytes.len(), smaller);
    }
}

#[test]
fn a_wrong_base_a_truncated_or_a_tampered_delta_never_yields_the_target_silently() {
    let (base, target) = pair(100_000);
    let other = noise(3, base.len());
    for algorithm in [Algorithm::Zstd, Algorithm::Bsdiff] {
        let delta = make(Choice::Only(algorithm), &base, &target).unwrap().bytes;
        let mut cases = vec![
            ("wrong base", other.clone(), delta.clone()),
            ("truncated", base.clone(), delta[..delta.len() / 2].to_vec()),
            ("empty", base.clone(), Vec::new()),
        ];
        for at in [0, 4, 20, delta.len() / 2, delta.len() - 1] {
            let mut bad = delta.clone();
            bad[at] ^= 0xff;
            cases.push(("tampered", base.clone(), bad));
        }
        for (what, b, d) in cases {
            let mut out = Vec::new();
            let r = apply(algorithm, &b, &d[..], target.len() as u64, &mut out);
            // Either an error, or bytes that are not the target (the signed hash catches those).
            assert!(
                r.is_err() || out != target,
                "{algorithm} {what}: produced the target"
            );
            assert!(
                out.len() <= target.len(),
                "{algorithm} {what}: wrote past the length"
            );
        }
    }
}

#[test]
fn a_delta_never_writes_more_than_the_signed_length() {
    let (base, target) = pair(100_000);
    for algorithm in [Algorithm::Zstd, Algorithm::Bsdiff] {
        let delta = make(Choice::Only(algorithm), &base, &target).unwrap().bytes;
        let mut out = Vec::new();
        let short = target.len() as u64 - 1;
        assert!(apply(algorithm, &base, &delta[..], short, &mut out).is_err());
        assert!(out.len() as u64 <= short);
    }
}

#[test]
fn a_zstd_frame_without_its_content_size_is_refused() {
    let (base, target) = pair(10_000);
    let mut enc = zstd::stream::write::Encoder::with_ref_prefix(Vec::new(), 3, &base).unwrap();
    enc.include_contentsize(false).unwrap();
    enc.write_all(&target).unwrap();
    let delta = enc.finish().unwrap();
    let mut out = Vec::new();
    let r = apply(
        Algorithm::Zstd,
        &base,
        &delta[..],
        target.len() as u64,
        &mut out,
    );
    assert!(r.unwrap_err().to_string().contains("content size"));
}

#[test]
fn a_zstd_frame_declaring_more_than_the_signed_length_is_refused_before_decoding() {
    // Without a declared size the window could be anything (refused above); with one, the
    // decoder's window is at most that size, which must not exceed the signed length.
    let target = noise(5, 8192);
    let delta = zstd::stream::encode_all(&target[..], 3).unwrap();
    let mut out = Vec::new();
    let r = apply(Algorithm::Zstd, b"", &delta[..], 4096, &mut out);
    assert!(r
        .unwrap_err()
        .to_string()
        .contains("more content than expected"));
    assert!(out.is_empty());
}

/// A zstd frame declaring its size, as `make` writes them.
fn zst(bytes: &[u8]) -> Vec<u8> {
    let mut enc = zstd::stream::write::Encoder::new(Vec::new(), 3).unwrap();
    enc.set_pledged_src_size(Some(bytes.len() as u64)).unwrap();
    enc.write_all(bytes).unwrap();
    enc.finish().unwrap()
}

/// An `UPDBSZ01` delta of these (packed) streams, declaring `target` bytes.
fn container_of(c: Vec<u8>, d: Vec<u8>, e: Vec<u8>, target: u64) -> Vec<u8> {
    let mut p = b"UPDBSZ01".to_vec();
    for v in [c.len() as u64, d.len() as u64, target] {
        p.extend_from_slice(&v.to_le_bytes());
    }
    [p, c, d, e].concat()
}

fn container(ctrl: &[u8], diff: &[u8], extra: &[u8], target: u64) -> Vec<u8> {
    container_of(zst(ctrl), zst(diff), zst(extra), target)
}

fn control(add: u64, copy: u64, seek: i64) -> Vec<u8> {
    [add.to_le_bytes(), copy.to_le_bytes(), seek.to_le_bytes()].concat()
}

/// Hand-made bsdiff deltas against the base `0123456789`, each with the length to apply it
/// with and the reason it must be refused for.
fn hostile_bsdiff_deltas() -> Vec<(Vec<u8>, u64, &'static str)> {
    let good = container(&control(4, 2, 0), &[0; 4], b"xy", 6);
    let mut bad_lengths = good.clone();
    bad_lengths[8..16].copy_from_slice(&u64::MAX.to_le_bytes());
    let unsized_frame = {
        let mut enc = zstd::stream::write::Encoder::new(Vec::new(), 3).unwrap();
        enc.include_contentsize(false).unwrap();
        enc.write_all(b"xy").unwrap();
        enc.finish().unwrap()
    };
    let two_steps = |seek: i64| [control(1, 0, seek), control(1, 0, 0)].concat();
    vec![
        (bad_lengths, 6, "stream lengths exceed the delta"),
        (
            container(&control(11, 0, 0), &[0; 11], b"", 11),
            11,
            "reads past the end of the base",
        ),
        (
            container(&two_steps(-5), &[0; 2], b"", 2),
            2,
            "moves outside the base",
        ),
        (
            container(&two_steps(50), &[0; 2], b"", 2),
            2,
            "moves outside the base",
        ),
        (
            container(&control(4, 0, 0), &[0; 2], b"", 4),
            4,
            "fill whole buffer",
        ),
        (
            container(&control(4, 0, 0)[..20], &[0; 4], b"", 4),
            4,
            "a truncated control",
        ),
        (
            container(&control(4, 2, 0), &[0; 4], b"xy", 7),
            6,
            "not the signed length",
        ),
        (
            // For 1 MiB, 4,096 + 16 idle controls are allowed.
            container(&control(0, 0, 0).repeat(4_120), b"", b"", 1 << 20),
            1 << 20,
            "too many controls that make nothing",
        ),
        (
            container_of(zst(&control(4, 2, 0)), zst(&[0; 4]), unsized_frame, 6),
            6,
            "does not declare its content size",
        ),
        (b"BSDIFF40".repeat(8), 6, "not an UPDBSZ01 delta"),
    ]
}

#[test]
fn bsdiff_headers_and_controls_reaching_outside_are_refused() {
    let base = b"0123456789";
    // A well-formed one first, so the cases below fail for their own reason.
    let good = container(&control(4, 2, 0), &[0; 4], b"xy", 6);
    let mut out = Vec::new();
    apply(Algorithm::Bsdiff, base, &good[..], 6, &mut out).unwrap();
    assert_eq!(out, b"0123xy");
    for (patch, expected, why) in hostile_bsdiff_deltas() {
        let mut out = Vec::new();
        let err = apply(Algorithm::Bsdiff, base, &patch[..], expected, &mut out)
            .expect_err(why)
            .to_string();
        assert!(err.contains(why), "{why}: {err}");
        assert!(out.len() as u64 <= expected, "{why}: wrote past the length");
    }
}

#[test]
fn apply_memory_covers_the_base_and_is_bounded_by_the_sizes() {
    let m = apply_memory(Algorithm::Zstd, 100 << 20, 1 << 20, 100 << 20);
    assert!((200 << 20..=210 << 20).contains(&m), "{m}");
    let m = apply_memory(Algorithm::Bsdiff, 100 << 20, 1 << 20, 100 << 20);
    assert!((401 << 20..=410 << 20).contains(&m), "{m}");
    assert_eq!(window_log(0, 0), 10);
    assert_eq!(window_log(100 << 20, 90 << 20), 27);
    assert_eq!(window_log(u64::MAX, 1), 31);
}

/// A reader handing out one byte per read.
struct Trickle<'a>(&'a [u8]);

impl Read for Trickle<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match (self.0.split_first(), buf.first_mut()) {
            (Some((b, rest)), Some(slot)) => {
                *slot = *b;
                self.0 = rest;
                Ok(1)
            }
            _ => Ok(0),
        }
    }
}

#[test]
fn a_delta_read_a_byte_at_a_time_applies() {
    let (base, target) = pair(20_000);
    for algorithm in [Algorithm::Zstd, Algorithm::Bsdiff] {
        let delta = make(Choice::Only(algorithm), &base, &target).unwrap().bytes;
        let mut out = Vec::new();
        apply(
            algorithm,
            &base,
            Trickle(&delta),
            target.len() as u64,
            &mut out,
        )
        .unwrap();
        assert_eq!(out, target, "{algorithm}");
    }
}
