//! Data-driven tests: each `corpus/*.case` file is a small repository (`--- path` starts a file,
//! `--> path -> target` makes a symbolic link, `\xNN` in a path is a raw byte, for names that are
//! not UTF-8) preceded by the exact diagnostics it must produce (`# expect: …` lines, in order). A
//! case with no expect line must load cleanly.
//!
//! `FERRY_BLESS=1 cargo test -p ferry-manifest --test manifest corpus::` rewrites the expect lines to what the
//! loader says now: review the diff before committing it.

use std::fs;
use std::path::Path;

struct Case {
    expect: Vec<String>,
    files: Vec<(String, String)>,
    links: Vec<(String, String)>,
}

/// A repository-relative path with `\xNN` escapes as raw bytes.
#[cfg(unix)]
fn raw_path(root: &Path, rel: &str) -> std::path::PathBuf {
    use std::os::unix::ffi::OsStringExt;
    let mut bytes = Vec::new();
    let mut rest = rel.as_bytes();
    while let Some((&b, tail)) = rest.split_first() {
        if b == b'\\' && tail.first() == Some(&b'x') && tail.len() >= 3 {
            let hex = std::str::from_utf8(&tail[1..3]).unwrap();
            bytes.push(u8::from_str_radix(hex, 16).unwrap());
            rest = &tail[3..];
        } else {
            bytes.push(b);
            rest = tail;
        }
    }
    root.join(std::ffi::OsString::from_vec(bytes))
}

fn parse_case(text: &str) -> Case {
    let mut expect = Vec::new();
    let mut files: Vec<(String, String)> = Vec::new();
    let mut links = Vec::new();
    for line in text.lines() {
        if let Some(link) = line.strip_prefix("--> ") {
            let (path, target) = link.split_once(" -> ").expect("--> path -> target");
            links.push((path.trim().to_string(), target.trim().to_string()));
        } else if let Some(path) = line.strip_prefix("--- ") {
            files.push((path.trim().to_string(), String::new()));
        } else if let Some((_, body)) = files.last_mut() {
            body.push_str(line);
            body.push('\n');
        } else if let Some(e) = line.strip_prefix("# expect: ") {
            expect.push(e.to_string());
        }
    }
    Case {
        expect,
        files,
        links,
    }
}

#[test]
fn corpus() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus");
    let mut entries: Vec<_> = fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    let mut failures = Vec::new();
    let mut cases = 0;
    for path in entries
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == "case"))
    {
        cases += 1;
        let case = parse_case(&fs::read_to_string(path).unwrap());
        assert!(!case.files.is_empty(), "{} has no files", path.display());
        let tmp = tempfile::tempdir().unwrap();
        for (rel, body) in &case.files {
            let p = raw_path(tmp.path(), rel);
            fs::create_dir_all(p.parent().unwrap()).unwrap();
            fs::write(p, body).unwrap();
        }
        for (rel, target) in &case.links {
            let p = raw_path(tmp.path(), rel);
            fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::os::unix::fs::symlink(target, p).unwrap();
        }
        let actual: Vec<String> = match ferry_manifest::load(tmp.path()) {
            Ok(_) => Vec::new(),
            Err(e) => e.0.iter().map(ToString::to_string).collect(),
        };
        if actual != case.expect && std::env::var_os("FERRY_BLESS").is_some() {
            let text = fs::read_to_string(path).unwrap();
            let mut offset = 0;
            let start = text
                .lines()
                .find_map(|l| {
                    let here = offset;
                    offset += l.len() + 1;
                    l.starts_with("--").then_some(here)
                })
                .unwrap();
            let body = &text[start..];
            let head: String = actual.iter().map(|a| format!("# expect: {a}\n")).collect();
            fs::write(path, format!("{head}{body}")).unwrap();
        } else if actual != case.expect {
            let name = path.file_name().unwrap().to_string_lossy();
            let got: Vec<String> = actual.iter().map(|a| format!("# expect: {a}")).collect();
            failures.push(format!(
                "{name}\n  expected:\n    {}\n  actual:\n    {}",
                case.expect.join("\n    "),
                got.join("\n    ")
            ));
        }
    }
    assert!(cases >= 20, "the corpus shrank to {cases} cases");
    assert!(
        failures.is_empty(),
        "{} corpus case(s) failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
