//! The `[acceptance]` table of a `service.toml`: the acceptance test command, the command that
//! builds the tests, the timeout and the environment.

use std::collections::BTreeMap;

use toml::Spanned;
use toml::de::DeTable;

use crate::diag::FileDiags;
use crate::model::{Acceptance, DEFAULT_ACCEPTANCE_TIMEOUT};
use crate::source::normalize_relative;
use crate::spanned::{
    check_keys, get, get_argv, get_secs, get_table, join_key, missing, type_error,
};

const ACCEPTANCE_KEYS: &[&str] = &["command", "build", "build-dir", "timeout", "env"];

/// The `[acceptance]` table of the service in folder `dir`; `None` when there is none or its
/// command is unusable.
pub(super) fn read_acceptance(
    fd: &mut FileDiags<'_>,
    doc: &DeTable<'_>,
    dir: &str,
) -> Option<Acceptance> {
    let t = get_table(fd, doc, "", "acceptance")?;
    check_keys(fd, t, "acceptance", ACCEPTANCE_KEYS);
    let span = get(doc, "acceptance")
        .map(Spanned::span)
        .unwrap_or_default();
    if get(t, "command").is_none() {
        missing(
            fd,
            span,
            "acceptance.command",
            r#"give the test command as a list, e.g. command = ["cargo", "test", "-p", "orders-acceptance"]"#,
        );
    }
    let command = get_argv(
        fd,
        t,
        "acceptance",
        "command",
        r#"command = ["pytest", "tests"]"#,
    );
    let build = get(t, "build").map(|_| {
        get_argv(
            fd,
            t,
            "acceptance",
            "build",
            r#"build = ["cargo", "test", "-p", "orders-acceptance", "--no-run"]"#,
        )
    });
    let build_dir = read_build_dir(fd, t, dir, build.is_some());
    let timeout_secs =
        get_secs(fd, t, "acceptance", "timeout").unwrap_or(DEFAULT_ACCEPTANCE_TIMEOUT);
    let mut env = BTreeMap::new();
    if let Some(e) = get_table(fd, t, "acceptance", "env") {
        for (k, v) in e.iter() {
            let name: &str = k.get_ref();
            let key = join_key("acceptance.env", name);
            let valid = name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !valid {
                fd.error(Some(k.span()), Some(&key), "environment variable names hold letters, digits and '_', not starting with a digit");
            } else if name.starts_with("FERRY_") || name.starts_with("AWS_") {
                fd.error(
                    Some(k.span()),
                    Some(&key),
                    "FERRY_* and AWS_* variables are set by Ferry; choose another name",
                );
            }
            match v.get_ref().as_str() {
                // The test would fail to start, as "not installed".
                Some(s) if s.contains('\0') => fd.error(
                    Some(v.span()),
                    Some(&key),
                    "holds a NUL character (`\\u0000`), which no environment variable can; remove it",
                ),
                Some(s) => {
                    env.insert(name.to_string(), s.to_string());
                }
                None => type_error(fd, v, &key, "a string"),
            }
        }
    }
    if command.is_empty() {
        return None;
    }
    Some(Acceptance {
        command,
        timeout_secs,
        env,
        build: build.filter(|b| !b.is_empty()),
        build_dir,
    })
}

/// `acceptance.build-dir`: a folder relative to the service folder, inside the repository,
/// normalized to a repository-relative path. Whether it exists is found out when the build
/// runs (the manifest's reading depends on the service's own files only).
fn read_build_dir(
    fd: &mut FileDiags<'_>,
    t: &DeTable<'_>,
    dir: &str,
    has_build: bool,
) -> Option<String> {
    let v = get(t, "build-dir")?;
    let Some(raw) = v.get_ref().as_str() else {
        type_error(fd, v, "acceptance.build-dir", "a folder path");
        return None;
    };
    let normalized = normalize_relative(&format!("{dir}/{raw}"));
    if !has_build {
        fd.error(
            Some(v.span()),
            Some("acceptance.build-dir"),
            "build-dir says where acceptance.build runs, and there is no build: add build or remove build-dir",
        );
        None
    } else if raw.is_empty() {
        fd.error(
            Some(v.span()),
            Some("acceptance.build-dir"),
            "build-dir is empty: name a folder relative to the service folder, e.g. build-dir = \"../acceptance\", or remove it to build in the service folder",
        );
        None
    } else if raw.starts_with('/') || raw.contains('\\') || normalized.is_none() {
        fd.error(
            Some(v.span()),
            Some("acceptance.build-dir"),
            format!("`{raw}` is not a folder inside the repository: give one relative to the service folder, `/`-separated, e.g. build-dir = \"../acceptance\""),
        );
        None
    } else {
        normalized
    }
}
