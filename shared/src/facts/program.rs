//! The program of a process as agents name it, for the `process` rule.

/// The program of a process as agents name it (often the whole command line): the last path
/// component of the program, in lower case. A Windows program path may hold spaces
/// (`C:\Program Files\osquery\osqueryd.exe --flagfile x`), so the program ends with an `.exe`
/// (any letter case) that ends a word, dropped; otherwise at the first space.
pub fn program(name: &str) -> String {
    program_slice(name).to_ascii_lowercase()
}

/// [`program`] before its letter case is folded: a slice of `name`.
pub(super) fn program_slice(name: &str) -> &str {
    let name = name.trim();
    if !name.is_ascii() {
        return program_slice_of_any(name);
    }
    // One pass over the bytes (the common case, thousands of command lines per check-in): the
    // first `.exe` that ends a word, else the first whitespace.
    let bytes = name.as_bytes();
    let is_space = |b: u8| b.is_ascii_whitespace() || b == 0x0b;
    let mut first_space = None;
    let mut end = None;
    for (i, &b) in bytes.iter().enumerate() {
        if is_space(b) {
            first_space.get_or_insert(i);
        } else if b == b'.'
            && bytes
                .get(i + 1..i + 4)
                .is_some_and(|ext| ext.eq_ignore_ascii_case(b"exe"))
            && bytes.get(i + 4).is_none_or(|&next| is_space(next))
        {
            end = Some(i);
            break;
        }
    }
    let path = &name[..end.or(first_space).unwrap_or(name.len())];
    path.rsplit(['/', '\\']).next().unwrap_or(path)
}

/// [`program_slice`] for any text (a trimmed name with characters beyond ASCII).
fn program_slice_of_any(name: &str) -> &str {
    let exe = name.match_indices('.').map(|(i, _)| i).find(|&i| {
        name.get(i + 1..i + 4)
            .is_some_and(|ext| ext.eq_ignore_ascii_case("exe"))
            && name[i + 4..].chars().next().is_none_or(char::is_whitespace)
    });
    let path = match exe {
        Some(i) => &name[..i],
        None => name.split_whitespace().next().unwrap_or(""),
    };
    path.rsplit(['/', '\\']).next().unwrap_or(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ascii_path_finds_the_program_the_general_one_does() {
        // Every string of up to five of these characters (ASCII whitespace of every kind, dots,
        // `exe` in both cases, separators), trimmed as names are.
        let alphabet = ['a', '.', 'e', 'x', 'E', 'X', ' ', '\t', '\u{b}', '/', '\\'];
        let mut names = vec![String::new()];
        for _ in 0..5 {
            let longer: Vec<String> = names
                .iter()
                .filter(|n| n.len() == names.last().map_or(0, String::len))
                .flat_map(|n| alphabet.iter().map(move |c| format!("{n}{c}")))
                .collect();
            names.extend(longer);
        }
        assert!(names.len() > 100_000);
        for name in &names {
            let trimmed = name.trim();
            assert_eq!(
                program_slice(name),
                program_slice_of_any(trimmed),
                "{name:?}"
            );
        }
    }

    #[test]
    fn a_program_is_its_last_path_component_without_exe() {
        for (name, want) in [
            ("/opt/osquery/osqueryd --flagfile /x", "osqueryd"),
            (
                "C:\\Program Files\\Tail Scale\\tailscaled.exe",
                "tailscaled",
            ),
            ("C:\\Program Files\\x\\App.Exe -k", "app"),
            ("  /sbin/launchd  ", "launchd"),
            ("/usr/bin/exe.executor run", "exe.executor"),
            ("", ""),
            ("ünïcode.exe", "ünïcode"),
        ] {
            assert_eq!(program(name), want, "{name}");
        }
    }
}
