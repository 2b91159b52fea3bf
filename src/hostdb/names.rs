//! Validation of host and tag names: RFC 1123 labels joined by dots (an FQDN or a bare label).

use super::error::StoreError;

/// Whether `s` is a lowercase RFC 1123 label: 1–63 of `a-z0-9-`, not starting or ending in `-`.
pub fn is_label(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b[0] != b'-'
        && b[b.len() - 1] != b'-'
}

/// Whether `s` is a lowercase name of labels joined by dots, at most 253 characters.
pub fn is_name(s: &str) -> bool {
    !s.is_empty() && s.len() <= 253 && s.split('.').all(is_label)
}

/// Check a host or tag name, naming `what` in the error.
pub fn check(what: &str, s: &str) -> Result<(), StoreError> {
    if is_name(s) {
        Ok(())
    } else {
        Err(StoreError::Invalid(format!(
            "{what} name `{}` is not an RFC 1123 name (lowercase labels of a-z, 0-9 and `-`, joined by dots)",
            s.escape_default()
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_labels_and_fqdns() {
        for ok in [
            "web-1",
            "a",
            "web-1.dc1.example.internal",
            "0abc",
            &"a".repeat(63),
        ] {
            assert!(is_name(ok), "{ok}");
        }
    }

    #[test]
    fn rejects_bad_names() {
        let long = format!("{}.{}", "a".repeat(63), "b".repeat(200));
        for bad in [
            "",
            "-web",
            "web-",
            "Web",
            "web_1",
            "a..b",
            ".a",
            "a.",
            "we b",
            "wéb",
            &"a".repeat(64),
            &long,
        ] {
            assert!(!is_name(bad), "{bad}");
        }
    }
}
