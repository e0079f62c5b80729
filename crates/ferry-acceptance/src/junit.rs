//! JUnit XML for CodeBuild's `reports:` (and any CI that reads JUnit).

use crate::{CaseStatus, Report, Status};

fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            // Control characters are not allowed in XML 1.0.
            c if (c as u32) < 0x20 && !matches!(c, '\n' | '\t' | '\r') => out.push('?'),
            c => out.push(c),
        }
    }
    out
}

/// One `<testsuite>` per service: one `<testcase>` per reported test, or one for the service.
/// `run` names the run in `<testsuites name="ferry <run>">` (`acceptance dev`, `run lint`).
pub fn junit(report: &Report, run: &str) -> String {
    let mut suites = String::new();
    let (mut total, mut failed_total) = (0, 0);
    for o in &report.outcomes {
        if o.status == Status::NoTests {
            continue;
        }
        let secs = o.duration.as_secs_f64();
        let output = esc(&o.output.join("\n"));
        let mut cases = String::new();
        let (mut n, mut failures, mut skipped) = (0, 0, 0);
        // A service not tested because a dependency failed is skipped, not failed: one real
        // failure counted as the failures of all its dependents.
        let not_run = matches!(o.status, Status::Skipped { .. } | Status::Cancelled);
        let failed = o.status.is_failure() && !not_run;
        if o.cases.is_empty() {
            n = 1;
            cases.push_str(&format!(
                "    <testcase classname=\"{svc}\" name=\"{svc}\" time=\"{secs:.3}\">",
                svc = esc(&o.service)
            ));
            if failed {
                failures = 1;
                cases.push_str(&format!(
                    "\n      <failure message=\"{}\">{output}</failure>\n    ",
                    esc(&o.status.to_string())
                ));
            } else if not_run {
                skipped = 1;
                cases.push_str(&format!(
                    "<skipped message=\"{}\"/>",
                    esc(&o.status.to_string())
                ));
            }
            cases.push_str("</testcase>\n");
        } else {
            for c in &o.cases {
                n += 1;
                cases.push_str(&format!(
                    "    <testcase classname=\"{}\" name=\"{}\">",
                    esc(&o.service),
                    esc(&c.name)
                ));
                match c.status {
                    CaseStatus::Passed => {}
                    CaseStatus::Ignored => {
                        skipped += 1;
                        cases.push_str("<skipped/>");
                    }
                    CaseStatus::Failed => {
                        failures += 1;
                        cases.push_str(&format!(
                            "\n      <failure message=\"{} failed\">{output}</failure>\n    ",
                            esc(&c.name)
                        ));
                    }
                }
                cases.push_str("</testcase>\n");
            }
            // A command that failed although every reported test passed (a crash, a timeout).
            if failed && failures == 0 {
                n += 1;
                failures += 1;
                cases.push_str(&format!(
                    "    <testcase classname=\"{svc}\" name=\"{svc}\"><failure message=\"{}\">{output}</failure></testcase>\n",
                    esc(&o.status.to_string()),
                    svc = esc(&o.service)
                ));
            }
        }
        total += n;
        failed_total += failures;
        // What a command that did not fail printed: a failure carries it already, and a
        // passing lint's or test's output (its warnings) is shown nowhere else in CI.
        let printed = if o.status == Status::Passed && o.output.iter().any(|l| !l.trim().is_empty())
        {
            format!("    <system-out>{output}</system-out>\n")
        } else {
            String::new()
        };
        suites.push_str(&format!(
            "  <testsuite name=\"{}\" tests=\"{n}\" failures=\"{failures}\" errors=\"0\" skipped=\"{skipped}\" time=\"{secs:.3}\">\n{cases}{printed}  </testsuite>\n",
            esc(&o.service)
        ));
    }
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites name=\"ferry {}\" tests=\"{total}\" failures=\"{failed_total}\">\n{suites}</testsuites>\n",
        esc(run)
    )
}
