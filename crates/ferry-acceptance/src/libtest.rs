//! Test cases from a command's output: libtest's lines (`cargo test`):
//! `test <name> ... ok|FAILED|ignored`, and nextest's status lines:
//! `PASS [   0.004s] <binary> <name>`, `FAIL [ … ] …`, `SKIP [ … ] …`.

use crate::{Case, CaseStatus};

/// The cases a command's output reports, in order; a name reported twice keeps its last status.
pub fn parse(lines: &[String]) -> Vec<Case> {
    let mut cases: Vec<Case> = Vec::new();
    for l in lines {
        let Some((name, status)) = libtest_line(l).or_else(|| nextest_line(l)) else {
            continue;
        };
        match cases.iter_mut().find(|c| c.name == name) {
            Some(c) => c.status = status,
            None => cases.push(Case {
                name: name.to_string(),
                status,
            }),
        }
    }
    cases
}

fn libtest_line(l: &str) -> Option<(&str, CaseStatus)> {
    let rest = l.trim_end().strip_prefix("test ")?;
    let (name, result) = rest.rsplit_once(" ... ")?;
    let status = match result {
        "ok" => CaseStatus::Passed,
        "FAILED" => CaseStatus::Failed,
        r if r.starts_with("ignored") => CaseStatus::Ignored,
        _ => return None,
    };
    Some((name, status))
}

fn nextest_line(l: &str) -> Option<(&str, CaseStatus)> {
    let t = l.trim();
    let (word, rest) = t.split_once(' ')?;
    let status = match word {
        "PASS" => CaseStatus::Passed,
        "FAIL" | "TIMEOUT" | "SIGSEGV" | "SIGABRT" => CaseStatus::Failed,
        "SKIP" => CaseStatus::Ignored,
        _ => return None,
    };
    let rest = rest.trim_start().strip_prefix('[')?;
    let (_, name) = rest.split_once("] ")?;
    let name = name.trim();
    (!name.is_empty()).then_some((name, status))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_nextest_status_lines() {
        let out: Vec<String> = [
            "    Starting 3 tests across 1 binary",
            "        PASS [   0.004s] shop-acceptance::acceptance database::write",
            "        FAIL [   1.204s] shop-acceptance::acceptance api::wired",
            "        SKIP [         ] shop-acceptance::acceptance slow",
            "     Summary [   1.210s] 3 tests run: 1 passed, 1 failed, 1 skipped",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let cases = parse(&out);
        let got: Vec<(&str, CaseStatus)> =
            cases.iter().map(|c| (c.name.as_str(), c.status)).collect();
        assert_eq!(
            got,
            [
                (
                    "shop-acceptance::acceptance database::write",
                    CaseStatus::Passed
                ),
                ("shop-acceptance::acceptance api::wired", CaseStatus::Failed),
                ("shop-acceptance::acceptance slow", CaseStatus::Ignored),
            ]
        );
    }

    #[test]
    fn reads_libtest_lines_and_nothing_else() {
        let out: Vec<String> = [
            "running 3 tests",
            "test table::write_and_read ... ok",
            "test table::missing ... FAILED",
            "test slow ... ignored, needs a network",
            "test result: FAILED. 1 passed; 1 failed; 1 ignored",
            "some test ... ok",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        assert_eq!(
            parse(&out),
            [
                Case {
                    name: "table::write_and_read".into(),
                    status: CaseStatus::Passed
                },
                Case {
                    name: "table::missing".into(),
                    status: CaseStatus::Failed
                },
                Case {
                    name: "slow".into(),
                    status: CaseStatus::Ignored
                },
            ]
        );
    }
}
