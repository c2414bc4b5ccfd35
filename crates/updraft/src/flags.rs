//! Flags over a configuration file: the one way every command merges them (a flag given on the
//! command line wins over the file; a flag not given leaves the file's value or the default).

/// Set `setting` to the flag's value when the flag was given.
pub fn set<T: Clone>(setting: &mut T, flag: &Option<T>) {
    if let Some(v) = flag {
        *setting = v.clone();
    }
}

/// Set an optional `setting` to the flag's value when the flag was given.
pub fn set_some<T: Clone>(setting: &mut Option<T>, flag: &Option<T>) {
    if flag.is_some() {
        *setting = flag.clone();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_given_flag_wins_and_a_missing_one_keeps_the_file() {
        let mut poll = 300u64;
        set(&mut poll, &None);
        assert_eq!(poll, 300);
        set(&mut poll, &Some(60));
        assert_eq!(poll, 60);
        let mut ca = Some("file.pem".to_string());
        set_some(&mut ca, &None);
        assert_eq!(ca.as_deref(), Some("file.pem"));
        set_some(&mut ca, &Some("flag.pem".into()));
        assert_eq!(ca.as_deref(), Some("flag.pem"));
    }
}
