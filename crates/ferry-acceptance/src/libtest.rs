//! Test cases from a command's output: libtest's lines (`cargo test`):
//! `test <name> ... ok|FAILED|ignored`, and nextest's status lines:
//! `PASS [   0.004s] <binary> <name>`, `FAIL [ … ] …`, `SKIP [ … ] …`.

use crate::{Case, CaseStatus, Report, Status, TestOutcome};

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

/// The output of a whole `cargo test` run as a report of one suite per test binary (cargo's
/// `Running …` / `Doc-tests …` lines start them), for `cargo xtask test --junit`.
pub fn cargo_test_report(lines: &[String]) -> Report {
    let mut suites: Vec<(String, Vec<String>)> = Vec::new();
    for l in lines {
        let t = l.trim();
        if let Some(rest) = t.strip_prefix("Running ") {
            // `tests/git.rs (target/debug/deps/git-85b0…)` → `tests/git.rs (git)`
            let name = match rest.rsplit_once(" (") {
                Some((what, bin)) => {
                    let stem = bin.trim_end_matches(')').rsplit('/').next().unwrap_or(bin);
                    let stem = stem.rsplit_once('-').map_or(stem, |(s, _)| s);
                    format!("{what} ({stem})")
                }
                None => rest.to_string(),
            };
            suites.push((name, Vec::new()));
        } else if let Some(krate) = t.strip_prefix("Doc-tests ") {
            suites.push((format!("doctests ({krate})"), Vec::new()));
        } else if let Some((_, body)) = suites.last_mut() {
            body.push(l.clone());
        }
    }
    let outcomes = suites
        .into_iter()
        .map(|(name, body)| {
            let cases = parse(&body);
            let failed = cases
                .iter()
                .filter(|c| c.status == CaseStatus::Failed)
                .count();
            TestOutcome {
                service: name,
                status: if failed == 0 {
                    Status::Passed
                } else {
                    Status::Failed {
                        message: format!("{failed} test(s) failed"),
                    }
                },
                duration: std::time::Duration::ZERO,
                cases,
                output: body.iter().rev().take(200).rev().cloned().collect(),
            }
        })
        // Binaries without tests (most doc-tests) are no cases.
        .filter(|o| !o.cases.is_empty())
        .collect();
    Report { outcomes }
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

    #[test]
    fn one_suite_per_binary_with_its_cases() {
        let out: Vec<String> = [
            "     Running unittests src/lib.rs (target/debug/deps/ferry_ci-0d476aefcd31a2b7)",
            "running 1 test",
            "test tests::ci ... ok",
            "     Running tests/git.rs (target/debug/deps/git-85b0c33fd5b8a909)",
            "test a ... ok",
            "test b ... FAILED",
            "   Doc-tests ferry_ci",
            "running 0 tests",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let r = cargo_test_report(&out);
        let names: Vec<&str> = r.outcomes.iter().map(|o| o.service.as_str()).collect();
        assert_eq!(
            names,
            ["unittests src/lib.rs (ferry_ci)", "tests/git.rs (git)"]
        );
        assert_eq!(r.outcomes[1].cases.len(), 2);
        assert!(r.outcomes[1].status.is_failure());
        assert!(!r.outcomes[0].status.is_failure());
    }
}
