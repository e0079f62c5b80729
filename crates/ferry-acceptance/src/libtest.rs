//! Test cases from libtest's output (`cargo test`, also what nextest prints per test with
//! `--no-capture` off): lines `test <name> ... ok|FAILED|ignored`.

use crate::{Case, CaseStatus};

/// The cases a command's output reports, in order; a name reported twice keeps its last status.
pub fn parse(lines: &[String]) -> Vec<Case> {
    let mut cases: Vec<Case> = Vec::new();
    for l in lines {
        let Some(rest) = l.trim_end().strip_prefix("test ") else {
            continue;
        };
        let Some((name, result)) = rest.rsplit_once(" ... ") else {
            continue;
        };
        let status = match result {
            "ok" => CaseStatus::Passed,
            "FAILED" => CaseStatus::Failed,
            r if r.starts_with("ignored") => CaseStatus::Ignored,
            _ => continue,
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

#[cfg(test)]
mod tests {
    use super::*;

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
