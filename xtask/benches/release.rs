//! Release benchmark, against a dedicated local emulator, in one run:
//!
//! - promote of N services (default 50) that are all already at the promoted package: Ferry's
//!   wall time (target: at most 1 s) and API calls, against a no-op `deploy` of the same stage
//!   (the reference: what a promote that re-checked every stack would cost at best);
//! - rollback of the same N services where 5 differ from the release rolled back to: how many
//!   stacks changed (read independently: each stack's event count before and after, by boto3;
//!   target: exactly 5) and the API calls it made.
//!
//! Run: `cargo bench -p xtask --bench release` (or `cargo xtask bench release`); `-- N` for
//! another number of services.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use common::{LocalAws, commit_all, count, git, python};

fn main() {
    let n = count(50);
    let changed = 5.min(n);
    let tmp = tempfile::tempdir().unwrap();
    let aws = LocalAws::start(tmp.path());
    let repo = tmp.path().join("repo");
    generate(&repo, n);
    let ferry = |args: &[&str]| {
        let (before, t) = (aws.requests(), Instant::now());
        let ok = aws.ferry(&repo, args).status().unwrap().success();
        assert!(ok, "ferry {args:?} failed");
        (t.elapsed(), aws.requests() - before)
    };

    ferry(&["deploy", "staging", "--test"]);
    ferry(&["promote", "staging", "prod", "--test"]);
    // Everything is at its package: median of three promotes, and of three no-op deploys.
    let median = |args: &[&str]| {
        let mut runs: Vec<(Duration, usize)> = (0..3).map(|_| ferry(args)).collect();
        runs.sort();
        runs[1]
    };
    let (promote, promote_calls) = median(&["promote", "staging", "prod"]);
    let (noop, noop_calls) = median(&["deploy", "prod", "--override-gate", "bench: reference"]);

    // 5 services change, pass in staging and reach prod; then prod rolls back.
    for i in 0..changed {
        let t = repo.join(format!("services/s{i:03}/t.yaml"));
        let text = std::fs::read_to_string(&t).unwrap();
        std::fs::write(
            &t,
            text.replace("QueueUrl:", "QueueUrl:\n    Description: v2"),
        )
        .unwrap();
    }
    git(&repo, &["commit", "--quiet", "-am", "five services change"]);
    ferry(&["deploy", "staging", "--test"]);
    ferry(&["promote", "staging", "prod", "--test"]);
    let before = event_counts(&aws, n);
    let (rollback, rollback_calls) = ferry(&["rollback", "prod"]);
    let after = event_counts(&aws, n);
    let touched = before
        .iter()
        .filter(|(stack, t)| after.get(*stack) != Some(t))
        .count();

    let s = |d: Duration| d.as_secs_f64();
    println!("release benchmark: {n} services (one SQS queue each), local emulator");
    println!(
        "  promote, all {n} already at the package   ferry {:>6.2} s ({promote_calls} API calls; target <= 1 s)   no-op deploy of the stage {:>6.2} s ({noop_calls} API calls)   ratio {:.2}",
        s(promote),
        s(noop),
        s(promote) / s(noop)
    );
    println!(
        "  rollback, {changed} of {n} differ              ferry {:>6.2} s ({rollback_calls} API calls)   stacks changed: {touched} (target: {changed})",
        s(rollback)
    );
}

/// How many events each prod stack has, read by boto3 from the emulator's own venv (not by
/// Ferry): every stack operation adds events, so a stack whose count moved was touched. (The
/// emulator keeps no LastUpdatedTime.)
fn event_counts(aws: &LocalAws, n: usize) -> BTreeMap<String, u64> {
    let script = r#"
import json, sys, boto3
c = boto3.client("cloudformation", endpoint_url=sys.argv[1], region_name="us-east-1",
                 aws_access_key_id="bench", aws_secret_access_key="bench")
out = {}
for page in c.get_paginator("list_stacks").paginate():
    for s in page["StackSummaries"]:
        name = s["StackName"]
        if s["StackStatus"] != "DELETE_COMPLETE" and name.endswith("-prod"):
            events = c.get_paginator("describe_stack_events").paginate(StackName=name)
            out[name] = sum(len(p["StackEvents"]) for p in events)
print(json.dumps(out))
"#;
    let counts: BTreeMap<String, u64> = serde_json::from_str(&python(aws, script)).unwrap();
    assert_eq!(counts.len(), n, "every prod stack is listed");
    counts
}

fn generate(repo: &Path, n: usize) {
    std::fs::create_dir_all(repo).unwrap();
    std::fs::write(
        repo.join("ferry.toml"),
        "[project]\nname = \"relbench\"\nstack-name = \"{project}-{service}-{stage}\"\n\n\
         [stages.staging]\nregion = \"us-east-1\"\ndeployment-method = \"direct\"\n\n\
         [stages.prod]\nregion = \"us-east-1\"\ndeployment-method = \"direct\"\npromote-from = \"staging\"\n",
    )
    .unwrap();
    for i in 0..n {
        let dir = repo.join(format!("services/s{i:03}"));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("service.toml"),
            "[service]\ntemplate = \"t.yaml\"\n\n[acceptance]\ncommand = [\"true\"]\n",
        )
        .unwrap();
        std::fs::write(
            dir.join("t.yaml"),
            "Resources:\n  Q:\n    Type: AWS::SQS::Queue\nOutputs:\n  QueueUrl:\n    Value: !Ref Q\n",
        )
        .unwrap();
    }
    commit_all(repo, "services");
}
