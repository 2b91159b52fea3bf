//! POSIX shell quoting, for commands sent through ssh (which hands them to the remote shell).

/// Quotes one word so a POSIX shell reads it back unchanged.
pub fn quote(word: &str) -> String {
    let plain = !word.is_empty()
        && word
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./=:,@%+".contains(&b));
    if plain {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

/// Quotes every word and joins them with spaces.
pub fn quote_argv(argv: &[&str]) -> String {
    argv.iter().map(|w| quote(w)).collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    #[test]
    fn the_shell_reads_quoted_words_back_unchanged() {
        let words = [
            "plain",
            "",
            "two words",
            "it's",
            "$HOME",
            "a\"b",
            "*",
            "x\ny",
            "-n",
        ];
        let script = format!("printf '%s\\0' {}", quote_argv(&words));
        let out = Command::new("sh").args(["-c", &script]).output().unwrap();
        let got: Vec<String> = String::from_utf8(out.stdout)
            .unwrap()
            .split('\0')
            .map(str::to_string)
            .collect();
        assert_eq!(&got[..words.len()], &words.map(String::from)[..]);
    }

    #[test]
    fn plain_words_stay_unquoted() {
        assert_eq!(quote("lxc-start"), "lxc-start");
        assert_eq!(quote("/var/lib/kloud/lxc/hw-1"), "/var/lib/kloud/lxc/hw-1");
        assert_eq!(quote("a b"), "'a b'");
    }
}
