//! The promote gate: a stage with `promote-from` takes only packages that passed there.

use std::collections::BTreeMap;

use ferry_records::Record;

/// A service a deploy of the gated stage would change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    pub service: String,
    /// The fingerprint of the package it would deploy (what its record's `template_hash`
    /// holds); `None` for a service compiled per stage (the Serverless Framework), whose archives
    /// are compared once it is compiled.
    pub fingerprint: Option<String>,
}

/// A service the gate refuses, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GateRefusal {
    pub service: String,
    pub why: String,
}

impl std::fmt::Display for GateRefusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.service, self.why)
    }
}

/// What the gate decided.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Passed {
    pub refused: Vec<GateRefusal>,
    /// For services compiled per stage: the archives (resource → key) that passed in the source
    /// stage, which their compile for the gated stage must reproduce byte for byte.
    pub archives: BTreeMap<String, BTreeMap<String, String>>,
}

fn short(s: &str) -> &str {
    s.get(..12).unwrap_or(s)
}

/// Checks `candidates` against the records of the source stage `from`: each must be deployed
/// there with the same package and its acceptance tests passed (`untested` services have no
/// tests and pass by being deployed).
pub fn check_gate(
    from: &str,
    source: &BTreeMap<String, Record>,
    untested: &dyn Fn(&str) -> bool,
    candidates: &[Candidate],
) -> Passed {
    let mut out = Passed::default();
    for c in candidates {
        let refuse = |why: String| GateRefusal {
            service: c.service.clone(),
            why,
        };
        let Some(r) = source.get(&c.service) else {
            out.refused
                .push(refuse(format!("it is not deployed in `{from}`")));
            continue;
        };
        if let Some(fp) = &c.fingerprint
            && fp != r.fingerprint()
        {
            out.refused.push(refuse(format!(
                "`{from}` has another package of it (template {} from commit {}), not this one ({})",
                short(r.fingerprint()),
                short(&r.commit),
                short(fp)
            )));
            continue;
        }
        match &r.acceptance {
            Some(a) if a.passed => {}
            Some(_) => {
                out.refused
                    .push(refuse(format!("its acceptance tests failed in `{from}`")));
                continue;
            }
            None if untested(&c.service) => {}
            // A rollback (or a promote or approval without `--test`) runs no tests: the package
            // it put back has not been tested where it stands now. Its tests are judged for
            // the commit it was built from, which is what a checkout must hold to record them.
            None if r.release_kind.as_deref().is_some_and(|k| k != "deploy") => {
                out.refused.push(refuse(format!(
                    "its acceptance tests have not run in `{from}` since a {} put its package there (built from {}): `test-acceptance {from} --service {}` records them from a checkout holding what it was built from (`git checkout {}`, or a later commit where its inputs are the same)",
                    r.release_kind.as_deref().unwrap_or_default(),
                    short(&r.commit),
                    c.service,
                    short(&r.commit)
                )));
                continue;
            }
            None => {
                out.refused.push(refuse(format!(
                    "its acceptance tests have not run in `{from}` (`test-acceptance {from}`)"
                )));
                continue;
            }
        }
        if c.fingerprint.is_none() {
            out.archives.insert(c.service.clone(), r.artifacts.clone());
        }
    }
    out
}
