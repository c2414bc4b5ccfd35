//! Which delegated roles may sign for a target path: shell-style `paths` patterns,
//! `path_hash_prefixes`, and TAP 15 succinct hash bins.

use ring::digest;

use crate::metadata::{DelegatedRole, Delegations, SuccinctRoles};

/// Match one path component against a shell-style pattern component: `*` matches any run of
/// characters, `?` one character, `[abc]`/`[!abc]`/`[a-z]` a set. Nothing matches across `/`,
/// because patterns are matched component by component.
fn match_component(pattern: &[char], name: &[char]) -> bool {
    match pattern.split_first() {
        None => name.is_empty(),
        Some(('*', rest)) => (0..=name.len()).any(|i| match_component(rest, &name[i..])),
        Some(('?', rest)) => !name.is_empty() && match_component(rest, &name[1..]),
        Some(('[', rest)) => {
            let Some((&c, name_rest)) = name.split_first() else {
                return false;
            };
            match match_set(rest, c) {
                Some((matched, after)) => matched && match_component(after, name_rest),
                // An unclosed `[` is a literal.
                None => c == '[' && match_component(rest, name_rest),
            }
        }
        Some((p, rest)) => name.first() == Some(p) && match_component(rest, &name[1..]),
    }
}

/// Parse a `[...]` set after the opening bracket; returns whether `c` matches and the rest.
fn match_set(pattern: &[char], c: char) -> Option<(bool, &[char])> {
    let (negate, mut i) = match pattern.first() {
        Some('!') => (true, 1),
        _ => (false, 0),
    };
    let start = i;
    let mut matched = false;
    while i < pattern.len() {
        if pattern[i] == ']' && i > start {
            return Some((matched != negate, &pattern[i + 1..]));
        }
        if i + 2 < pattern.len() && pattern[i + 1] == '-' && pattern[i + 2] != ']' {
            if pattern[i] <= c && c <= pattern[i + 2] {
                matched = true;
            }
            i += 3;
        } else {
            if pattern[i] == c {
                matched = true;
            }
            i += 1;
        }
    }
    None
}

/// Whether `path` matches the delegation pattern `pattern`. Both are split on `/`; they must have
/// the same number of components and every component must match.
pub fn path_matches(pattern: &str, path: &str) -> bool {
    let pat: Vec<&str> = pattern.split('/').collect();
    let parts: Vec<&str> = path.split('/').collect();
    pat.len() == parts.len()
        && pat.iter().zip(parts.iter()).all(|(p, n)| {
            let p: Vec<char> = p.chars().collect();
            let n: Vec<char> = n.chars().collect();
            match_component(&p, &n)
        })
}

/// Whether a delegated role is trusted for `path`.
pub fn role_matches(role: &DelegatedRole, path: &str) -> bool {
    if let Some(patterns) = &role.paths {
        return patterns.iter().any(|p| path_matches(p, path));
    }
    if let Some(prefixes) = &role.path_hash_prefixes {
        let h = hex::encode(digest::digest(&digest::SHA256, path.as_bytes()));
        return prefixes.iter().any(|p| h.starts_with(p.as_str()));
    }
    false
}

/// TAP 15: the bin a target path belongs to.
pub fn succinct_role_for(s: &SuccinctRoles, path: &str) -> String {
    let h = digest::digest(&digest::SHA256, path.as_bytes());
    let b = h.as_ref();
    let first = u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
    let bin = if s.bit_length >= 32 {
        first
    } else {
        first >> (32 - s.bit_length)
    };
    succinct_bin_name(s, bin)
}

fn succinct_suffix_len(s: &SuccinctRoles) -> usize {
    let max = (1u64 << s.bit_length) - 1;
    format!("{max:x}").len()
}

/// TAP 15: the name of bin number `bin`.
pub fn succinct_bin_name(s: &SuccinctRoles, bin: u32) -> String {
    format!(
        "{}-{:0width$x}",
        s.name_prefix,
        bin,
        width = succinct_suffix_len(s)
    )
}

/// TAP 15: whether `role` is one of the bins.
pub fn succinct_is_bin(s: &SuccinctRoles, role: &str) -> bool {
    let Some(suffix) = role.strip_prefix(&format!("{}-", s.name_prefix)) else {
        return false;
    };
    if suffix.len() != succinct_suffix_len(s)
        || !suffix
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
    {
        return false;
    }
    u64::from_str_radix(suffix, 16).is_ok_and(|n| n < (1u64 << s.bit_length))
}

/// The child roles to search for `path`, in order, each with its `terminating` flag.
pub fn roles_for_target(d: &Delegations, path: &str) -> Vec<(String, bool)> {
    if let Some(roles) = &d.roles {
        return roles
            .iter()
            .filter(|r| role_matches(r, path))
            .map(|r| (r.name.clone(), r.terminating))
            .collect();
    }
    if let Some(s) = &d.succinct_roles {
        return vec![(succinct_role_for(s, path), true)];
    }
    Vec::new()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_do_not_cross_slashes() {
        assert!(path_matches("content/*", "content/a.txt"));
        assert!(!path_matches("content/*", "content/x/a.txt"));
        assert!(path_matches("content/*/*", "content/x/a.txt"));
        assert!(path_matches("a?c", "abc"));
        assert!(!path_matches("a?c", "a/c"));
        assert!(path_matches("*.tgz", "x.tgz"));
        assert!(!path_matches("*.tgz", "d/x.tgz"));
        assert!(path_matches("f[0-9].txt", "f7.txt"));
        assert!(!path_matches("f[!0-9].txt", "f7.txt"));
        assert!(path_matches("", ""));
        assert!(!path_matches("a", "b"));
    }

    #[test]
    fn succinct_bins() {
        let s = SuccinctRoles {
            keyids: vec![],
            threshold: 1,
            bit_length: 8,
            name_prefix: "bin".into(),
            unknown: Default::default(),
        };
        assert_eq!(succinct_bin_name(&s, 0), "bin-00");
        assert_eq!(succinct_bin_name(&s, 255), "bin-ff");
        assert!(succinct_is_bin(&s, "bin-a0"));
        assert!(!succinct_is_bin(&s, "bin-100"));
        assert!(!succinct_is_bin(&s, "bin-A0"));
        let r = succinct_role_for(&s, "some/target");
        assert!(succinct_is_bin(&s, &r));
        let s1 = SuccinctRoles { bit_length: 1, ..s };
        assert_eq!(succinct_bin_name(&s1, 1), "bin-1");
    }
}
