//! Reading TOML with spans: each helper reads one key of a table, with the byte span that
//! [`FileDiags`] turns into a line, and reports a wrong type, a missing key or an unknown key
//! against its dotted key path.

use std::ops::Range;

use toml::Spanned;
use toml::de::{DeTable, DeValue};

use crate::diag::{FileDiags, did_you_mean};

/// The largest `ferry.toml` or `service.toml` Ferry reads: real ones are a few kilobytes, and
/// parsing keeps about twenty times a file's size in memory (48 MB took 900 MB).
pub const MAX_CONFIG_FILE: usize = 1024 * 1024;

/// Parses a whole file; a syntax error, or a file over [`MAX_CONFIG_FILE`] bytes, is reported
/// and gives `None`.
pub(crate) fn parse<'s>(fd: &mut FileDiags<'_>, src: &'s str) -> Option<Spanned<DeTable<'s>>> {
    if src.len() > MAX_CONFIG_FILE {
        fd.error(
            None,
            None,
            format!(
                "is {} bytes; a configuration file holds at most {MAX_CONFIG_FILE} (1 MiB): move long lists into globs",
                src.len()
            ),
        );
        return None;
    }
    match DeTable::parse(src) {
        Ok(t) => Some(t),
        Err(e) => {
            let msg = e.message().trim_end().to_string();
            // git's conflict markers: a merge left unresolved, which TOML's own words hide.
            let conflict = src.lines().any(|l| {
                ["<<<<<<< ", ">>>>>>> "].iter().any(|m| l.starts_with(m)) || l == "======="
            });
            let hint = if conflict {
                "; it holds git's conflict markers (<<<<<<<, =======, >>>>>>>): a merge left unresolved, resolve it and commit"
            } else {
                ""
            };
            fd.error(e.span(), None, format!("not valid TOML: {msg}{hint}"));
            None
        }
    }
}

/// The dotted path of `key` inside `prefix`, quoting a key that is not a bare TOML key.
pub(crate) fn join_key(prefix: &str, key: &str) -> String {
    if prefix.is_empty() {
        key.to_string()
    } else if !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        format!("{prefix}.{key}")
    } else {
        format!("{prefix}.\"{key}\"")
    }
}

/// Reports every key of `table` that is not in `allowed`, with a "did you mean" hint.
pub(crate) fn check_keys(
    fd: &mut FileDiags<'_>,
    table: &DeTable<'_>,
    prefix: &str,
    allowed: &[&str],
) {
    for key in table.keys() {
        let k: &str = key.get_ref();
        if !allowed.contains(&k) {
            let hint = did_you_mean(k, allowed.iter().copied());
            let help = if hint.is_empty() {
                format!("; known keys: {}", allowed.join(", "))
            } else {
                hint
            };
            fd.error(
                Some(key.span()),
                Some(&join_key(prefix, k)),
                format!("unknown key{help}"),
            );
        }
    }
}

/// The value of `key`, of any type.
pub(crate) fn get<'t, 'i>(table: &'t DeTable<'i>, key: &str) -> Option<&'t Spanned<DeValue<'i>>> {
    table.get(key)
}

/// Reports that `v` (at `key`) is not `want`.
pub(crate) fn type_error(fd: &mut FileDiags<'_>, v: &Spanned<DeValue<'_>>, key: &str, want: &str) {
    fd.error(
        Some(v.span()),
        Some(key),
        format!("expected {want}, found {}", v.get_ref().type_str()),
    );
}

/// A string and its span; `None` when absent or (reported) not a string.
pub(crate) fn get_str(
    fd: &mut FileDiags<'_>,
    t: &DeTable<'_>,
    prefix: &str,
    key: &str,
) -> Option<(String, Range<usize>)> {
    let v = get(t, key)?;
    match v.get_ref().as_str() {
        Some(s) => Some((s.to_string(), v.span())),
        None => {
            type_error(fd, v, &join_key(prefix, key), "a string");
            None
        }
    }
}

/// A boolean; `None` when absent or (reported) not a boolean.
pub(crate) fn get_bool(
    fd: &mut FileDiags<'_>,
    t: &DeTable<'_>,
    prefix: &str,
    key: &str,
) -> Option<bool> {
    let v = get(t, key)?;
    let b = v.get_ref().as_bool();
    if b.is_none() {
        type_error(fd, v, &join_key(prefix, key), "true or false");
    }
    b
}

/// An array of strings, each with its span; items that are not strings are reported and left
/// out. `None` when absent or (reported) not an array.
pub(crate) fn get_str_list(
    fd: &mut FileDiags<'_>,
    t: &DeTable<'_>,
    prefix: &str,
    key: &str,
) -> Option<Vec<(String, Range<usize>)>> {
    let v = get(t, key)?;
    let full = join_key(prefix, key);
    let Some(arr) = v.get_ref().as_array() else {
        type_error(fd, v, &full, "an array of strings");
        return None;
    };
    let mut out = Vec::new();
    for item in arr.iter() {
        match item.get_ref().as_str() {
            Some(s) => out.push((s.to_string(), item.span())),
            None => type_error(fd, item, &full, "a string"),
        }
    }
    Some(out)
}

/// A table; `None` when absent or (reported) not a table.
pub(crate) fn get_table<'t, 'i>(
    fd: &mut FileDiags<'_>,
    t: &'t DeTable<'i>,
    prefix: &str,
    key: &str,
) -> Option<&'t DeTable<'i>> {
    let v = get(t, key)?;
    let table = v.get_ref().as_table();
    if table.is_none() {
        type_error(fd, v, &join_key(prefix, key), "a table");
    }
    table
}

/// A non-empty argv list (program, then arguments); an empty one is reported with `example`.
/// Empty when absent or wrong.
pub(crate) fn get_argv(
    fd: &mut FileDiags<'_>,
    t: &DeTable<'_>,
    prefix: &str,
    key: &str,
    example: &str,
) -> Vec<String> {
    let Some(argv) = get_str_list(fd, t, prefix, key) else {
        return Vec::new();
    };
    if argv.first().is_none_or(|(a, _)| a.trim().is_empty()) {
        let span = get(t, key).map(Spanned::span);
        fd.error(
            span,
            Some(&join_key(prefix, key)),
            format!(
                "the command is empty; give the program and its arguments as a list, e.g. {example}"
            ),
        );
        return Vec::new();
    }
    // No argument of a program can hold a NUL: the command would fail to start, at run time,
    // as "not installed".
    if let Some((_, span)) = argv.iter().find(|(a, _)| a.contains('\0')) {
        fd.error(
            Some(span.clone()),
            Some(&join_key(prefix, key)),
            "an argument holds a NUL character (`\\u0000`), which no program's argument can; remove it",
        );
        return Vec::new();
    }
    argv.into_iter().map(|(a, _)| a).collect()
}

/// Reports a required key that is absent, at `span` (the table that should hold it).
pub(crate) fn missing(fd: &mut FileDiags<'_>, span: Range<usize>, key: &str, what_to_do: &str) {
    fd.error(
        Some(span),
        Some(key),
        format!("missing required key; {what_to_do}"),
    );
}

/// `key` of `table` as a positive whole number of seconds (`prefix.key` in messages); `None`
/// when it is absent or was reported.
pub(crate) fn get_secs(
    fd: &mut FileDiags<'_>,
    table: &DeTable<'_>,
    prefix: &str,
    key: &str,
) -> Option<u64> {
    let v = get(table, key)?;
    let full = join_key(prefix, key);
    match v.get_ref() {
        // `0x`/`0o`/`0b` integers come without their prefix, with their radix.
        DeValue::Integer(i) => match u64::from_str_radix(i.as_str(), i.radix()) {
            Ok(n) if n > 0 && n <= crate::MAX_TIMEOUT_SECS => Some(n),
            _ => {
                fd.error(
                    Some(v.span()),
                    Some(&full),
                    format!(
                        "expected a positive number of seconds, at most {} (7 days)",
                        crate::MAX_TIMEOUT_SECS
                    ),
                );
                None
            }
        },
        _ => {
            type_error(fd, v, &full, "a number of seconds");
            None
        }
    }
}
