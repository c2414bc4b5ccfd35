//! Applying a delta: the input is an algorithm (first byte odd: bsdiff, even: zstd), the
//! expected length (2 bytes, little-endian), a base (length byte, then the base) and the delta.
//! Never panics, never writes more than the expected length, and succeeds only with exactly it.
#![no_main]

use delta::Algorithm;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let [kind, l0, l1, base_len, rest @ ..] = data else {
        return;
    };
    let expected = u64::from(u16::from_le_bytes([*l0, *l1]));
    let (base, patch) = rest.split_at(usize::from(*base_len).min(rest.len()));
    let algorithm = if kind % 2 == 1 {
        Algorithm::Bsdiff
    } else {
        Algorithm::Zstd
    };
    let mut out = Vec::new();
    let result = delta::apply(algorithm, base, patch, expected, &mut out);
    assert!(out.len() as u64 <= expected, "wrote past the expected length");
    if let Ok(n) = result {
        assert_eq!(n, expected);
        assert_eq!(out.len() as u64, expected);
    }
});
