//! Which delegated roles may sign for a target path: shell-style `paths` patterns,
//! `path_hash_prefixes`, and TAP 15 succinct hash bins.

use ring::digest;

use crate::metadata::{DelegatedRole, Delegations, SuccinctRoles};

/// One element of a compiled pattern component. Every element but `Star` matches exactly one
/// character, which is what lets [`match_component`] run in O(pattern × name).
#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    /// `*`: any run of characters, possibly empty.
    Star,
    /// `?`: any one character.
    Any,
    /// One given character (also an unclosed `[`).
    Literal(char),
    /// `[...]` or `[!...]`: one character in (or, negated, not in) the listed characters and
    /// inclusive ranges.
    Set {
        negate: bool,
        chars: Vec<char>,
        ranges: Vec<(char, char)>,
    },
}

impl Token {
    /// Whether this single-character token matches `c` (never called on `Star`).
    fn matches_char(&self, c: char) -> bool {
        match self {
            Token::Star | Token::Any => true,
            Token::Literal(l) => *l == c,
            Token::Set {
                negate,
                chars,
                ranges,
            } => {
                let member =
                    chars.contains(&c) || ranges.iter().any(|&(lo, hi)| lo <= c && c <= hi);
                member != *negate
            }
        }
    }
}

/// Parse a `[...]` set after the opening bracket: the set and the pattern after its closing
/// bracket, or `None` if the set is not closed. A `]` right after `[` or `[!` is a member;
/// `x-y` is a range unless `y` is the closing `]`.
fn parse_set(pattern: &[char]) -> Option<(Token, &[char])> {
    let (negate, mut i) = match pattern.first() {
        Some('!') => (true, 1),
        _ => (false, 0),
    };
    let start = i;
    let mut chars = Vec::new();
    let mut ranges = Vec::new();
    while let Some(&c) = pattern.get(i) {
        if c == ']' && i > start {
            let set = Token::Set {
                negate,
                chars,
                ranges,
            };
            return Some((set, pattern.get(i + 1..).unwrap_or_default()));
        }
        match (pattern.get(i + 1), pattern.get(i + 2)) {
            (Some('-'), Some(&hi)) if hi != ']' => {
                ranges.push((c, hi));
                i += 3;
            }
            _ => {
                chars.push(c);
                i += 1;
            }
        }
    }
    None
}

/// Compile one pattern component into tokens. Consecutive `*` are one `*`.
fn compile_component(mut pattern: &[char]) -> Vec<Token> {
    let mut tokens = Vec::with_capacity(pattern.len());
    while let Some((&c, rest)) = pattern.split_first() {
        let (token, after) = match c {
            '*' => (Token::Star, rest),
            '?' => (Token::Any, rest),
            // An unclosed `[` is a literal.
            '[' => parse_set(rest).unwrap_or((Token::Literal('['), rest)),
            c => (Token::Literal(c), rest),
        };
        if !(token == Token::Star && tokens.last() == Some(&Token::Star)) {
            tokens.push(token);
        }
        pattern = after;
    }
    tokens
}

/// Match one path component against a shell-style pattern component: `*` matches any run of
/// characters, `?` one character, `[abc]`/`[!abc]`/`[a-z]` a set. Nothing matches across `/`,
/// because patterns are matched component by component.
///
/// Every token but `*` consumes exactly one character, so the only choice is how much each `*`
/// takes. Tokens are matched left to right; at a `*` the position is remembered and the `*`
/// first takes nothing; on a mismatch the most recent `*` takes one more character and matching
/// resumes after it. Earlier `*`s never need to take more: the segment after the last `*` was
/// placed at its earliest possible position, and moving it right only leaves the last `*` more to
/// absorb. So at most pattern × name steps, whatever the pattern (a pattern such as
/// `*a*a*a*a*b` against a long run of `a`s made a recursive matcher exponential).
fn match_component(pattern: &[char], name: &[char]) -> bool {
    let tokens = compile_component(pattern);
    let (mut t, mut n) = (0usize, 0usize);
    // Token index after the most recent `*`, and the name position it resumes from.
    let mut backtrack: Option<(usize, usize)> = None;
    while let Some(&c) = name.get(n) {
        match tokens.get(t) {
            Some(Token::Star) => {
                t += 1;
                backtrack = Some((t, n));
            }
            Some(token) if token.matches_char(c) => {
                t += 1;
                n += 1;
            }
            _ => match backtrack {
                Some((after_star, from)) => {
                    let from = from + 1;
                    backtrack = Some((after_star, from));
                    t = after_star;
                    n = from;
                }
                None => return false,
            },
        }
    }
    tokens
        .get(t..)
        .unwrap_or_default()
        .iter()
        .all(|token| *token == Token::Star)
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

/// The original recursive matcher, kept as the reference the linear one is compared with (it is
/// exponential in the number of `*`, so only for small inputs).
#[cfg(test)]
mod reference {
    pub(super) fn match_component(pattern: &[char], name: &[char]) -> bool {
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
                    None => c == '[' && match_component(rest, name_rest),
                }
            }
            Some((p, rest)) => name.first() == Some(p) && match_component(rest, &name[1..]),
        }
    }

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

    pub(super) fn path_matches(pattern: &str, path: &str) -> bool {
        let pat: Vec<&str> = pattern.split('/').collect();
        let parts: Vec<&str> = path.split('/').collect();
        pat.len() == parts.len()
            && pat.iter().zip(parts.iter()).all(|(p, n)| {
                let p: Vec<char> = p.chars().collect();
                let n: Vec<char> = n.chars().collect();
                match_component(&p, &n)
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Attack: a delegation path pattern with many `*` against a long name made the recursive
    /// matcher backtrack exponentially (over 20 s for this one); the result must come back,
    /// and be right.
    #[test]
    fn pathological_star_pattern_finishes() {
        let pattern = format!("{}b", "*a".repeat(12));
        let name = "a".repeat(46);
        assert!(!path_matches(&pattern, &name));
        assert!(path_matches(&pattern, &format!("{name}b")));
        let deep = format!("content/{pattern}/x");
        assert!(!path_matches(&deep, &format!("content/{name}/x")));
        assert!(path_matches(&deep, &format!("content/{name}b/x")));
        // Many stars and sets against a long name.
        let sets = format!("{}[!a]", "*[a-b]?".repeat(30));
        assert!(!path_matches(&sets, &"a".repeat(200)));
        assert!(path_matches(&sets, &format!("{}c", "a".repeat(200))));
    }

    #[test]
    fn sets_ranges_and_literal_brackets() {
        assert!(path_matches("[]]", "]"));
        assert!(path_matches("[!]]", "a"));
        assert!(!path_matches("[!]]", "]"));
        assert!(path_matches("[a-]", "-"));
        assert!(path_matches("[a", "[a"));
        assert!(!path_matches("[a", "a"));
        assert!(path_matches("x[", "x["));
        assert!(path_matches("*[", "ab["));
        assert!(path_matches("[*]", "*"));
        assert!(!path_matches("[*]", "a"));
        assert!(path_matches("a**b", "ab"));
        assert!(path_matches("*", ""));
        assert!(!path_matches("?", ""));
    }

    /// Characters the generated patterns and names are made of: every special character of
    /// the pattern syntax, `/`, and a few ordinary ones so that ranges have members.
    fn text(max: usize) -> impl Strategy<Value = String> {
        proptest::collection::vec(
            prop_oneof![
                4 => proptest::sample::select(vec!['a', 'b', 'c']),
                1 => proptest::sample::select(vec!['*', '?', '[', ']', '!', '-', '/', 'z']),
            ],
            0..max,
        )
        .prop_map(|v| v.into_iter().collect())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4096))]

        /// The linear matcher agrees with the original recursive one.
        #[test]
        fn matcher_agrees_with_reference(pattern in text(10), name in text(10)) {
            prop_assert_eq!(
                path_matches(&pattern, &name),
                reference::path_matches(&pattern, &name),
                "pattern {:?} name {:?}", pattern, name
            );
        }

        /// Names built to match often: the pattern with its specials replaced by characters.
        #[test]
        fn matcher_agrees_with_reference_on_near_matches(
            pattern in text(10),
            fill in proptest::collection::vec(proptest::sample::select(vec!['a', 'b', '[', ']', '-']), 0..4),
            cut in 0usize..3,
        ) {
            let mut name = String::new();
            for c in pattern.chars() {
                match c {
                    '*' => name.extend(fill.iter().take(cut)),
                    '?' => name.push('b'),
                    c => name.push(c),
                }
            }
            prop_assert_eq!(
                path_matches(&pattern, &name),
                reference::path_matches(&pattern, &name),
                "pattern {:?} name {:?}", pattern, name
            );
        }
    }

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
