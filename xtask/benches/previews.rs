//! Previews benchmark, against a dedicated local emulator: N preview stages (default 20, named
//! `pr-1` …, as `[ci] pull-requests = "pr-{number}"` makes them) of 4 services each (a queue, a
//! bucket holding objects, two readers of the queue), then `previews prune --ttl 0s`: its wall
//! time and API calls, and what is left of them in the emulator afterwards (stacks of the
//! project, records, buckets), read independently with boto3 (target: nothing).
//!
//! Run: `cargo bench -p xtask --bench previews` (or `cargo xtask bench previews`); `-- N` for
//! another number of previews.

mod common;

use std::path::Path;
use std::time::Instant;

use common::{LocalAws, commit_all, count, python};

fn main() {
    let n = count(20);
    let tmp = tempfile::tempdir().unwrap();
    let aws = LocalAws::start(tmp.path());
    let repo = tmp.path().join("repo");
    generate(&repo);
    let t = Instant::now();
    for i in 1..=n {
        let stage = format!("pr-{i}");
        assert!(
            aws.ferry(&repo, &["deploy", &stage])
                .status()
                .unwrap()
                .success(),
            "deploy {stage} failed"
        );
    }
    let deployed = t.elapsed();
    // Every bucket holds objects, which CloudFormation would not delete.
    let before = left(&aws);
    let script = r#"
import sys, boto3
s3 = boto3.client("s3", endpoint_url=sys.argv[1], region_name="us-east-1",
                  aws_access_key_id="bench", aws_secret_access_key="bench")
for b in s3.list_buckets()["Buckets"]:
    if b["Name"].startswith("pvbench-"):
        for k in range(3):
            s3.put_object(Bucket=b["Name"], Key=f"o{k}", Body=b"x")
"#;
    python(&aws, script);

    let (calls, t) = (aws.requests(), Instant::now());
    let ok = aws
        .ferry(&repo, &["previews", "prune", "--ttl", "0s"])
        .status()
        .unwrap()
        .success();
    let (pruned, calls) = (t.elapsed(), aws.requests() - calls);
    assert!(ok, "previews prune failed");
    let after = left(&aws);
    println!("previews benchmark: {n} preview stages of 4 services, local emulator");
    println!(
        "  deployed {n} previews in {:.1} s: {} stacks, {} records, {} buckets (3 objects each)",
        deployed.as_secs_f64(),
        before.0,
        before.1,
        before.2
    );
    println!(
        "  previews prune --ttl 0s   {:.2} s ({calls} API calls)   left: {} stacks, {} records, {} buckets (target: 0, 0, 0)",
        pruned.as_secs_f64(),
        after.0,
        after.1,
        after.2
    );
}

/// The project's stacks (not deleted), records and buckets in the emulator, read with boto3.
fn left(aws: &LocalAws) -> (usize, usize, usize) {
    let script = r#"
import sys, boto3
kw = dict(endpoint_url=sys.argv[1], region_name="us-east-1",
          aws_access_key_id="bench", aws_secret_access_key="bench")
cf, ssm, s3 = (boto3.client(s, **kw) for s in ("cloudformation", "ssm", "s3"))
stacks = sum(1 for p in cf.get_paginator("list_stacks").paginate()
             for s in p["StackSummaries"]
             if s["StackStatus"] != "DELETE_COMPLETE" and s["StackName"].startswith("pvbench-"))
records = sum(len(p["Parameters"]) for p in ssm.get_paginator("get_parameters_by_path")
              .paginate(Path="/ferry/pvbench/", Recursive=True))
buckets = sum(1 for b in s3.list_buckets()["Buckets"] if b["Name"].startswith("pvbench-"))
print(stacks, records, buckets)
"#;
    let out = python(aws, script);
    let v: Vec<usize> = out.split_whitespace().map(|x| x.parse().unwrap()).collect();
    (v[0], v[1], v[2])
}

fn generate(repo: &Path) {
    let write = |path: &str, text: &str| {
        let p = repo.join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    };
    write(
        "ferry.toml",
        "[project]\nname = \"pvbench\"\nstack-name = \"{project}-{service}-{stage}\"\n\n\
         [stages.\"*\"]\nregion = \"us-east-1\"\ndeployment-method = \"direct\"\n\n\
         [ci]\npull-requests = \"pr-{number}\"\n",
    );
    write(
        "services/queue/service.toml",
        "[service]\ntemplate = \"t.yaml\"\n",
    );
    write(
        "services/queue/t.yaml",
        "Resources:\n  Q:\n    Type: AWS::SQS::Queue\nOutputs:\n  QueueArn:\n    Value: !GetAtt Q.Arn\n",
    );
    write(
        "services/files/service.toml",
        "[service]\ntemplate = \"t.yaml\"\n",
    );
    write(
        "services/files/t.yaml",
        "Resources:\n  B:\n    Type: AWS::S3::Bucket\n    Properties:\n      BucketName: !Sub \"${AWS::StackName}\"\n",
    );
    for reader in ["left", "right"] {
        write(
            &format!("services/{reader}/service.toml"),
            "[service]\ntemplate = \"t.yaml\"\n\n[parameters]\nQueue = \"${output:queue.QueueArn}\"\n",
        );
        write(
            &format!("services/{reader}/t.yaml"),
            "Parameters:\n  Queue: {Type: String}\nResources:\n  T:\n    Type: AWS::SNS::Topic\n",
        );
    }
    commit_all(repo, "services");
}
