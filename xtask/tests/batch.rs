//! One deploy spread over many machines, end to end: the nodes of the generated CodeBuild
//! build-graph (`batch files`) run as separate processes of the real binary, each as soon as
//! the nodes it depends on succeeded and siblings at the same time, as CodeBuild runs them; they
//! share the stage's lock for their batch while any other run is refused; the end is the same as
//! a single-machine deploy; a failed node's dependents do not run, a dependency not yet deployed
//! stops a node, and a retried batch redoes only what is missing.

use std::collections::BTreeMap;
use std::process::Child;
use std::time::{Duration, Instant};

use crate::common::{config, records, rt, run, xtask};
use ferry_records::RecordStore;
use ferry_test_support::TestRepo;

const QUEUE: &str = "Resources:\n  Q:\n    Type: AWS::SQS::Queue\nOutputs:\n  QueueArn:\n    Value: !GetAtt Q.Arn\n";
/// Reads `In`, exposes it (so a dependent of this one receives it).
const RELAY: &str = "Parameters:\n  In: {Type: String}\nResources:\n  P:\n    Type: AWS::SSM::Parameter\n    Properties:\n      Name: !Sub \"/batch-test/${AWS::StackName}\"\n      Type: String\n      Value: !Ref In\nOutputs:\n  Out:\n    Value: !Ref In\n";

/// base ← left, right ← top: a diamond, so `left` and `right` are siblings.
fn diamond(project: &str) -> TestRepo {
    let r = TestRepo::new();
    let stage = |name: &str| {
        format!(
            "[stages.{name}]\nregion = \"us-east-1\"\ndeployment-method = \"direct\"\nartifact-bucket = \"{project}-{name}-artifacts\"\n"
        )
    };
    r.write(".gitignore", "target/\n").write(
        "ferry.toml",
        &format!(
            "[project]\nname = \"{project}\"\nstack-name = \"{{project}}-{{service}}-{{stage}}\"\n\n{}\n{}",
            stage("one"),
            stage("many")
        ),
    );
    r.write(
        "services/base/service.toml",
        "[service]\ntemplate = \"t.yaml\"\n",
    )
    .write("services/base/t.yaml", QUEUE);
    for side in ["left", "right"] {
        r.write(
            &format!("services/{side}/service.toml"),
            "[service]\ntemplate = \"t.yaml\"\n\n[parameters]\nIn = \"${output:base.QueueArn}\"\n",
        )
        .write(&format!("services/{side}/t.yaml"), RELAY);
    }
    r.write(
        "services/top/service.toml",
        "[service]\ntemplate = \"t.yaml\"\ndepends-on = [\"right\"]\n\n[parameters]\nIn = \"${output:left.Out}\"\n",
    )
    .write("services/top/t.yaml", RELAY);
    r.commit("services");
    let rt = rt();
    let s3 = ferry_package::s3_client(&config());
    for stage in ["one", "many"] {
        rt.block_on(
            s3.create_bucket()
                .bucket(format!("{project}-{stage}-artifacts"))
                .send(),
        )
        .unwrap();
    }
    r
}

/// A node of the build-graph: its identifier, service ("" for the finishing node), depend-on.
struct GraphNode {
    id: String,
    service: String,
    depends_on: Vec<String>,
}

fn build_graph(r: &TestRepo) -> Vec<GraphNode> {
    let (code, out, err) = run(&mut xtask(r, &["batch", "files"]), None);
    assert_eq!(code, 0, "{out}\n{err}");
    let text = std::fs::read_to_string(r.path().join("buildspec-batch.yml")).unwrap();
    let spec: serde_yaml_ng::Value = serde_yaml_ng::from_str(&text).unwrap();
    spec["batch"]["build-graph"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|n| GraphNode {
            id: n["identifier"].as_str().unwrap().into(),
            service: n["env"]["variables"]["SERVICE"].as_str().unwrap().into(),
            depends_on: n["depend-on"]
                .as_sequence()
                .map(|d| d.iter().map(|i| i.as_str().unwrap().into()).collect())
                .unwrap_or_default(),
        })
        .collect()
}

/// What one node did: exit code, output, when it ran (relative to the batch's start).
#[derive(Debug)]
struct Ran {
    code: i32,
    out: String,
    start: Duration,
    end: Duration,
}

/// Runs `graph` as CodeBuild runs a batch: a node starts when every node it depends on
/// succeeded (all ready ones at once, each a process of the binary with the batch's id); a node
/// whose dependency failed or was skipped is skipped. Gives each node's run (None: skipped).
fn run_batch(
    r: &TestRepo,
    graph: &[GraphNode],
    stage: &str,
    batch: &str,
) -> BTreeMap<String, Option<Ran>> {
    let t0 = Instant::now();
    let mut done: BTreeMap<String, Option<Ran>> = BTreeMap::new();
    let mut running: Vec<(String, Child, Duration, std::path::PathBuf)> = Vec::new();
    let logs = tempfile::tempdir().unwrap();
    while done.len() < graph.len() {
        for n in graph {
            if done.contains_key(&n.id) || running.iter().any(|(id, ..)| *id == n.id) {
                continue;
            }
            let deps: Vec<Option<bool>> = n
                .depends_on
                .iter()
                .map(|d| done.get(d).map(|r| r.as_ref().is_some_and(|r| r.code == 0)))
                .collect();
            if deps.contains(&Some(false)) {
                done.insert(n.id.clone(), None);
                continue;
            }
            if deps.iter().all(|d| *d == Some(true)) {
                let args: Vec<&str> = if n.service.is_empty() {
                    vec!["batch", "finish", stage]
                } else {
                    vec!["batch", "node", stage, &n.service]
                };
                let log = logs.path().join(&n.id);
                let file = std::fs::File::create(&log).unwrap();
                let child = xtask(r, &args)
                    .env("FERRY_BATCH_ID", batch)
                    .stdin(std::process::Stdio::null())
                    .stdout(file.try_clone().unwrap())
                    .stderr(file)
                    .spawn()
                    .unwrap();
                running.push((n.id.clone(), child, t0.elapsed(), log));
            }
        }
        let mut i = 0;
        while i < running.len() {
            if let Some(status) = running[i].1.try_wait().unwrap() {
                let (id, _, start, log) = running.remove(i);
                done.insert(
                    id,
                    Some(Ran {
                        code: status.code().unwrap(),
                        out: std::fs::read_to_string(log).unwrap(),
                        start,
                        end: t0.elapsed(),
                    }),
                );
            } else {
                i += 1;
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    done
}

fn ran<'a>(batch: &'a BTreeMap<String, Option<Ran>>, id: &str) -> &'a Ran {
    batch[id]
        .as_ref()
        .unwrap_or_else(|| panic!("{id} was skipped: {batch:#?}"))
}

#[test]
fn the_nodes_of_a_build_graph_deploy_like_one_machine_and_retry_only_what_is_missing() {
    let p = "batch-e2e";
    let r = diamond(p);
    let graph = build_graph(&r);
    let ids: Vec<&str> = graph.iter().map(|n| n.id.as_str()).collect();
    assert_eq!(ids, ["base", "left", "right", "top", "finish_batch"]);

    // The same commit on one machine.
    let (code, out, err) = run(&mut xtask(&r, &["deploy", "one"]), None);
    assert_eq!(code, 0, "{out}\n{err}");

    // A node whose dependency is not deployed yet stops before anything happens.
    let (code, _, err) = run(
        &mut xtask(&r, &["batch", "node", "many", "top", "--batch", "early"]),
        None,
    );
    assert_eq!(code, 1);
    assert!(
        err.contains("`top` was not deployed: its dependencies `base`, `left` and `right` still have something to deploy in stage `many`") && err.contains("so their outputs are not the ones `top` must receive. Their nodes must succeed first") && err.contains("deploys them all"),
        "{err}"
    );
    assert!(records(p, "many").is_empty());
    // Refused before it took the lock: its batch holds nothing to finish.
    assert!(err.contains("refused before taking the lock"), "{err}");
    let (code, out, err) = run(
        &mut xtask(&r, &["batch", "finish", "many", "--batch", "early"]),
        None,
    );
    assert_eq!(code, 1, "{out}\n{err}");
    assert!(
        err.contains("stage `many` is not locked by batch `early` (no lock)"),
        "{err}"
    );

    let batch = run_batch(&r, &graph, "many", "b1");
    for (id, n) in &batch {
        let n = n.as_ref().unwrap_or_else(|| panic!("{id} skipped"));
        assert_eq!(n.code, 0, "{id}:\n{}", n.out);
    }
    // Siblings ran at the same time, sharing the batch's lock.
    let (left, right) = (ran(&batch, "left"), ran(&batch, "right"));
    assert!(
        left.start < right.end && right.start < left.end,
        "left {left:?} and right {right:?} did not overlap"
    );
    assert!(
        ran(&batch, "base")
            .out
            .contains("lock: stage `many` taken for batch `b1`")
    );
    assert!(left.out.contains("lock: joined batch `b1`"), "{}", left.out);
    // Each node deployed its own service only.
    assert!(left.out.contains("left: created"), "{}", left.out);
    assert!(!left.out.contains("base: deploying"), "{}", left.out);
    // The last node wrote one release of the whole batch and released the lock.
    let finish = &ran(&batch, "finish_batch").out;
    assert!(
        finish.contains("(deploy of stage `many`: base, left, right, top deployed)"),
        "{finish}"
    );
    assert!(
        finish.contains("lock: stage `many` released by batch `b1`"),
        "{finish}"
    );

    // The same records and stacks as the single-machine deploy.
    let (one, many) = (records(p, "one"), records(p, "many"));
    assert_eq!(
        one.keys().collect::<Vec<_>>(),
        many.keys().collect::<Vec<_>>()
    );
    for (service, a) in &one {
        let b = &many[service];
        assert_eq!(a.commit, b.commit, "{service}");
        assert_eq!(a.template_hash, b.template_hash, "{service}");
        assert_eq!(
            a.outputs.keys().collect::<Vec<_>>(),
            b.outputs.keys().collect::<Vec<_>>(),
            "{service}"
        );
        assert_eq!(b.stack, format!("{p}-{service}-many"));
    }
    // What top received went through left from base, in its own stage.
    assert_eq!(many["top"].outputs["Out"], many["base"].outputs["QueueArn"]);
    assert!(many["top"].outputs["Out"].contains("batch-e2e-base-many"));

    // A batch retried: every node finds its service up to date; nothing is deployed.
    let again = run_batch(&r, &graph, "many", "b2");
    for id in ["base", "left", "right", "top"] {
        let n = ran(&again, id);
        assert_eq!(n.code, 0, "{}", n.out);
        assert!(
            n.out.contains(&format!("{id}: skipped (up to date)")),
            "{}",
            n.out
        );
    }
    let after = records(p, "many");
    for (s, rec) in &many {
        assert_eq!(rec.deployed_at, after[s].deployed_at, "{s} was redeployed");
    }

    // A broken `right` (it reads an SSM parameter that does not exist): its node fails, `top`
    // (its dependent) never runs, `left` deploys.
    r.write(
        "services/right/service.toml",
        "[service]\ntemplate = \"t.yaml\"\n\n[parameters]\nIn = \"${ssm:/batch-e2e/missing}\"\n",
    )
    .write("services/left/t.yaml", &format!("{RELAY}# v2\n"));
    r.commit("break right");
    let broken = run_batch(&r, &graph, "many", "b3");
    assert_eq!(ran(&broken, "base").code, 0);
    assert_eq!(ran(&broken, "left").code, 0);
    let right = ran(&broken, "right");
    assert_eq!(right.code, 1, "{}", right.out);
    assert!(
        right
            .out
            .contains("node `right` of batch `b3` failed in stage `many`"),
        "{}",
        right.out
    );
    assert!(broken["top"].is_none() && broken["finish_batch"].is_none());
    // The batch holds the stage: another run is refused, naming it.
    let (code, _, err) = run(&mut xtask(&r, &["deploy", "many"]), None);
    assert_eq!(code, 1);
    assert!(
        err.contains("stage `many` is locked by batch b3: "),
        "{err}"
    );
    let (code, _, err) = run(
        &mut xtask(&r, &["batch", "node", "many", "base", "--batch", "other"]),
        None,
    );
    assert_eq!(code, 1);
    assert!(
        err.contains("stage `many` is locked by batch b3: "),
        "{err}"
    );

    // Fixed and retried as the same batch: only right and top deploy.
    r.write(
        "services/right/service.toml",
        "[service]\ntemplate = \"t.yaml\"\n\n[parameters]\nIn = \"${output:base.QueueArn}\"\n",
    )
    .write("services/right/t.yaml", &format!("{RELAY}# fixed\n"));
    r.commit("fix right");
    let retried = run_batch(&r, &graph, "many", "b3");
    for (id, n) in &retried {
        let n = n
            .as_ref()
            .unwrap_or_else(|| panic!("{id} skipped: {retried:#?}"));
        assert_eq!(n.code, 0, "{id}:\n{}", n.out);
    }
    assert!(
        ran(&retried, "base")
            .out
            .contains("base: skipped (up to date)")
    );
    assert!(
        ran(&retried, "left")
            .out
            .contains("left: skipped (up to date)")
    );
    assert!(
        ran(&retried, "right").out.contains("right: updated in"),
        "{}",
        ran(&retried, "right").out
    );
    let finish = &ran(&retried, "finish_batch").out;
    assert!(
        finish.contains("lock: stage `many` released by batch `b3`"),
        "{finish}"
    );
    // What top receives did not change (left's and right's outputs are the same values): it
    // stays as deployed by b1, like a dependent on one machine.
    assert!(
        ran(&retried, "top")
            .out
            .contains("top: skipped (up to date)"),
        "{}",
        ran(&retried, "top").out
    );
    let fixed = records(p, "many");
    assert_eq!(fixed["base"].commit, many["base"].commit);
    assert_eq!(fixed["top"].deployed_at, many["top"].deployed_at);
    assert_ne!(
        fixed["left"].commit, many["left"].commit,
        "left deployed by b3's first run"
    );
    assert_ne!(
        fixed["right"].commit, fixed["left"].commit,
        "right deployed at the fix"
    );
    // A crashed run's stale lock: a node is refused naming it; --force-unlock takes it over.
    let store = RecordStore::new(
        aws_sdk_ssm::Client::new(&config()),
        "many",
        &format!("/ferry/{p}/many"),
    );
    // (Its process is gone from this host: a lock's age is SSM's clock's, and the emulator
    // stamps every write with the present.)
    let none = |_: &str| None;
    let mut child = std::process::Command::new("true").spawn().unwrap();
    let pid = child.id();
    // (Its start time, read before it is reaped, tells it from a process that reuses the pid.)
    let started = ferry_records::lock::process::started(pid);
    child.wait().unwrap();
    let crashed = ferry_records::LockHolder {
        pid,
        started,
        ..ferry_records::LockHolder::for_this_process(&none, "deploy", "many", None)
    };
    rt().block_on(store.lock(&crashed, false)).unwrap();
    let node = |extra: &[&str]| {
        let mut args = vec!["batch", "node", "many", "base", "--batch", "b9"];
        args.extend_from_slice(extra);
        run(&mut xtask(&r, &args), None)
    };
    let (code, _, err) = node(&[]);
    assert_eq!(code, 1);
    assert!(err.contains("that lock is stale"), "{err}");
    let (code, out, err) = node(&["--force-unlock"]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(
        err.contains(&format!(
            "took over the lock of stage `many` for batch `b9` from {crashed}: it was stale (pid {pid} is no longer running on this host)"
        )),
        "{err}"
    );
    assert!(!err.contains("taken for batch"), "said once: {err}");
    let (code, out, err) = run(
        &mut xtask(&r, &["batch", "finish", "many", "--batch", "b9"]),
        None,
    );
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(
        out.contains("lock: stage `many` released by batch `b9`"),
        "{out}"
    );
}

/// A value it outputs, written in its template (so a new version changes what dependents get).
fn source(value: &str) -> String {
    format!(
        "Resources:\n  P:\n    Type: AWS::SSM::Parameter\n    Properties:\n      Name: !Sub \"/batch-test/${{AWS::StackName}}\"\n      Type: String\n      Value: {value}\nOutputs:\n  Out:\n    Value: {value}\n"
    )
}

/// a → b → c, each passing on what it receives; a's tests fail while `$VERDICTS/a` exists.
fn chain(project: &str, verdicts: &std::path::Path) -> TestRepo {
    let r = TestRepo::new();
    r.write(".gitignore", "target/\n").write(
        "ferry.toml",
        &format!(
            "[project]\nname = \"{project}\"\nstack-name = \"{{project}}-{{service}}-{{stage}}\"\n\n[stages.many]\nregion = \"us-east-1\"\ndeployment-method = \"direct\"\nartifact-bucket = \"{project}-many-artifacts\"\n"
        ),
    );
    r.write(
        "services/a/service.toml",
        &format!(
            "[service]\ntemplate = \"t.yaml\"\n\n[acceptance]\ncommand = [\"sh\", \"-c\", \"test ! -e {}/a\"]\n",
            verdicts.display()
        ),
    )
    .write("services/a/t.yaml", &source("v1"));
    for (s, from) in [("b", "a"), ("c", "b")] {
        r.write(
            &format!("services/{s}/service.toml"),
            &format!("[service]\ntemplate = \"t.yaml\"\n\n[parameters]\nIn = \"${{output:{from}.Out}}\"\n"),
        )
        .write(&format!("services/{s}/t.yaml"), RELAY);
    }
    r.commit("services");
    let s3 = ferry_package::s3_client(&config());
    rt().block_on(
        s3.create_bucket()
            .bucket(format!("{project}-many-artifacts"))
            .send(),
    )
    .unwrap();
    r
}

/// A node runs only once every dependency is up to date in the stage: also one whose files are
/// unchanged but that has not received its own dependency's last deploy (its node has not run
/// again yet, or failed). Before, `c` deployed with the old value `b` passed on.
/// And tests a node runs for a service it finds up to date (owed by an earlier batch whose
/// tests failed) mark the release that holds that deploy, so rollback knows it passed.
#[test]
fn a_node_waits_for_what_its_dependencies_receive_and_owed_tests_mark_their_release() {
    let p = "batch-chain";
    let verdicts = tempfile::tempdir().unwrap();
    let v = verdicts.path();
    let r = chain(p, v);
    let node = |service: &str, batch: &str, extra: &[&str]| {
        let mut args = vec!["batch", "node", "many", service, "--batch", batch];
        args.extend_from_slice(extra);
        run(&mut xtask(&r, &args), None)
    };
    let finish = |batch: &str| {
        let (code, out, err) = run(
            &mut xtask(&r, &["batch", "finish", "many", "--batch", batch]),
            None,
        );
        assert_eq!(code, 0, "{out}\n{err}");
        out
    };
    for s in ["a", "b", "c"] {
        let (code, out, err) = node(s, "x1", &[]);
        assert_eq!(code, 0, "{s}: {out}\n{err}");
    }
    finish("x1");

    // a outputs another value, c's own files change too: c must wait for b.
    r.write("services/a/t.yaml", &source("v2"))
        .write("services/c/t.yaml", &format!("{RELAY}# c2\n"));
    r.commit("a v2, c2");
    let before = records(p, "many");
    assert_eq!(node("a", "x2", &[]).0, 0);
    let (code, _, err) = node("c", "x2", &[]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("`c` was not deployed: its dependency `b` still has something to deploy in stage `many` (b: not-received: a deployed since it last received its outputs (a run that did not come to check it))"),
        "{err}"
    );
    assert_eq!(records(p, "many")["c"].deployed_at, before["c"].deployed_at);
    assert_eq!(node("b", "x2", &[]).0, 0);
    assert_eq!(node("c", "x2", &[]).0, 0);
    finish("x2");
    let now = records(p, "many");
    assert_eq!(now["c"].outputs["Out"], "v2");

    // a v3 fails its tests in its node; the batch finishes (as GitHub's finish job always
    // runs), then the node runs again and its owed tests pass: the release says so.
    r.write("services/a/t.yaml", &source("v3"));
    r.commit("a v3");
    std::fs::write(v.join("a"), "").unwrap();
    assert_eq!(node("a", "x3", &["--test"]).0, 1);
    // Its dependent's node, run anyway (a retried build, a job run by hand), does not deploy on
    // top of it, as on one machine, where it is skipped. Before, it deployed.
    let b_before = records(p, "many")["b"].deployed_at;
    let (code, out, err) = node("b", "x3", &["--test"]);
    assert_eq!(code, 1, "{out}\n{err}");
    assert!(
        err.contains("`b` was not deployed: the acceptance tests of its dependency `a` have not passed in stage `many` at its record"),
        "{err}"
    );
    assert_eq!(records(p, "many")["b"].deployed_at, b_before);
    let out = finish("x3");
    let release = crate::common::id_after(&out, "release: ");
    std::fs::remove_file(v.join("a")).unwrap();
    let (code, out, err) = node("a", "x4", &["--test"]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(err.contains("a: tests passed"), "{out}\n{err}");
    let out = finish("x4");
    assert!(
        out.contains("batch `x4`: no node deployed anything"),
        "{out}"
    );
    let s3 = ferry_package::s3_client(&config());
    let stored = rt().block_on(async {
        let o = s3
            .get_object()
            .bucket(format!("{p}-many-artifacts"))
            .key(format!("{p}/_releases/many/{release}.json"))
            .send()
            .await
            .unwrap();
        let body = o.body.collect().await.unwrap().into_bytes();
        serde_json::from_slice::<serde_json::Value>(&body).unwrap()
    });
    assert_eq!(
        stored["services"]["a"]["acceptance"]["passed"], true,
        "{stored}"
    );
}

/// A `batch finish` run while a node still works released the batch's lock under it: the node
/// then failed, and the release lacked its deploy. Now each node marks itself as at work while
/// it works, and `batch finish` waits for it (failing, lock and release left, past `--wait`); a
/// node killed stops counting once its mark is stale (here at once: its process is gone from
/// this host), and the finish says its work may be half done.
#[test]
fn batch_finish_waits_for_a_node_at_work_and_passes_over_a_killed_one() {
    let p = "batch-early";
    let verdicts = tempfile::tempdir().unwrap();
    let v = verdicts.path();
    let r = chain(p, v);
    // a's tests say they started, then wait for `go`.
    r.write(
        "services/a/service.toml",
        &format!(
            "[service]\ntemplate = \"t.yaml\"\n\n[acceptance]\ncommand = [\"sh\", \"-c\", \"touch {v}/started; while [ ! -e {v}/go ]; do sleep 0.1; done; rm -f {v}/started\"]\n",
            v = v.display()
        ),
    );
    r.commit("slow tests");
    let wait_started = || {
        let started = Instant::now();
        while !v.join("started").exists() {
            assert!(
                started.elapsed() < Duration::from_secs(120),
                "a's tests never started"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    let spawn = |args: &[&str]| {
        xtask(&r, args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    let node = spawn(&["batch", "node", "many", "a", "--batch", "e1", "--test"]);
    wait_started();
    // Too short a wait: nothing is written, the lock stays the batch's.
    let (code, out, err) = run(
        &mut xtask(
            &r,
            &["batch", "finish", "many", "--batch", "e1", "--wait", "1"],
        ),
        None,
    );
    assert_eq!(code, 1, "{out}\n{err}");
    assert!(
        err.contains("batch `e1` still has a node at work in stage `many` after 1s: `a` (")
            && err.contains("the release is not written and the lock is left in place"),
        "{err}"
    );
    let store = RecordStore::new(
        aws_sdk_ssm::Client::new(&config()),
        "many",
        &format!("/ferry/{p}/many/"),
    );
    let holder = rt().block_on(store.lock_holder()).unwrap().unwrap();
    assert_eq!(holder.batch.as_deref(), Some("e1"));
    // A finish that waits ends after the node, with its deploy in the release.
    let finish = spawn(&["batch", "finish", "many", "--batch", "e1"]);
    std::thread::sleep(Duration::from_secs(3));
    std::fs::write(v.join("go"), "").unwrap();
    let end = node.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&end.stderr);
    assert_eq!(end.status.code(), Some(0), "{err}");
    assert!(err.contains("a: acceptance tests passed"), "{err}");
    let done = finish.wait_with_output().unwrap();
    let (out, err) = (
        String::from_utf8_lossy(&done.stdout),
        String::from_utf8_lossy(&done.stderr),
    );
    assert_eq!(done.status.code(), Some(0), "{out}\n{err}");
    assert!(
        err.contains("waiting for batch `e1`'s node at work to end: `a` (renewed "),
        "{err}"
    );
    assert!(
        out.contains("a deployed") && out.contains("released by batch `e1`"),
        "{out}"
    );
    assert!(rt().block_on(store.lock_holder()).unwrap().is_none());

    // A node killed at work: its mark stays, and the finish passes over it, saying so.
    std::fs::remove_file(v.join("go")).unwrap();
    r.write("services/a/t.yaml", &source("v2"));
    r.commit("a v2");
    let mut node = spawn(&["batch", "node", "many", "a", "--batch", "e2", "--test"]);
    wait_started();
    node.kill().unwrap();
    node.wait().unwrap();
    std::fs::write(v.join("go"), "").unwrap();
    let (code, out, err) = run(
        &mut xtask(&r, &["batch", "finish", "many", "--batch", "e2"]),
        None,
    );
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(
        err.contains("warning: batch node `a` (")
            && err.contains("stopped without ending (pid ")
            && err.contains(
                "may have left its deploy half done; `plan many` says what is still to deploy"
            ),
        "{err}"
    );
    assert!(!err.contains("waiting for"), "{err}");
    // Its mark is gone with it.
    let marks = rt()
        .block_on(
            aws_sdk_ssm::Client::new(&config())
                .get_parameters_by_path()
                .path(format!("/ferry/{p}/many/nodes/"))
                .send(),
        )
        .unwrap();
    assert!(marks.parameters().is_empty(), "{marks:?}");
}

/// Two builds of one commit and trigger (a pull request closed and reopened while its build
/// runs, a retried build) share CodeBuild's batch id: their nodes of one service joined each
/// other and deployed one stack at once, and the second failed ("already exists") and was
/// announced as failing. The second waits for its twin, then finds nothing left to do.
#[test]
fn a_node_waits_for_its_twin_in_another_build() {
    let p = "batch-twin";
    let verdicts = tempfile::tempdir().unwrap();
    let v = verdicts.path();
    let r = chain(p, v);
    r.write(
        "services/a/service.toml",
        &format!(
            "[service]\ntemplate = \"t.yaml\"\n\n[acceptance]\ncommand = [\"sh\", \"-c\", \"touch {v}/started; while [ ! -e {v}/go ]; do sleep 0.1; done\"]\n",
            v = v.display()
        ),
    );
    r.commit("slow tests");
    let spawn = |args: &[&str]| {
        xtask(&r, args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    let first = spawn(&["batch", "node", "many", "a", "--batch", "t1", "--test"]);
    let started = Instant::now();
    while !v.join("started").exists() {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "a's tests never started"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut twin = spawn(&["batch", "node", "many", "a", "--batch", "t1", "--test"]);
    // Its standard error, line by line, until it says it waits for its twin.
    let (tx, rx) = std::sync::mpsc::channel();
    let stderr = twin.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        use std::io::BufRead as _;
        let mut all = String::new();
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            let _ = tx.send(line.clone());
            all.push_str(&line);
            all.push('\n');
        }
        all
    });
    let waiting = "batch node `a`: this batch's node of `a` is marked at work by another process (";
    loop {
        let line = rx
            .recv_timeout(Duration::from_secs(120))
            .expect("the twin never said it waits");
        if line.contains(waiting) {
            break;
        }
    }
    std::fs::write(v.join("go"), "").unwrap();
    let end = first.wait_with_output().unwrap();
    assert_eq!(
        end.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&end.stderr)
    );
    let end = twin.wait_with_output().unwrap();
    let err = reader.join().unwrap();
    let out = String::from_utf8_lossy(&end.stdout);
    assert_eq!(end.status.code(), Some(0), "{out}\n{err}");
    assert!(out.contains("skipped (up to date)"), "{out}\n{err}");
    let (code, out, err) = run(
        &mut xtask(&r, &["batch", "finish", "many", "--batch", "t1"]),
        None,
    );
    assert_eq!(code, 0, "{out}\n{err}");
}

/// A batch whose nodes run at different commits (a node retried at a fix commit) makes one
/// release: the node that took the lock names it, and the lock keeps it for the others and for
/// `batch finish`. Before, each commit named a release of its own, and the finish's held only
/// what was deployed at its own commit.
#[test]
fn a_batch_at_several_commits_makes_one_release() {
    let p = "batch-commits";
    let verdicts = tempfile::tempdir().unwrap();
    let v = verdicts.path();
    let r = chain(p, v);
    let node = |service: &str| {
        let (code, out, err) = run(
            &mut xtask(&r, &["batch", "node", "many", service, "--batch", "c1"]),
            None,
        );
        assert_eq!(code, 0, "{service}: {out}\n{err}");
    };
    node("a");
    // b is fixed, and the rest of the batch runs at the fix.
    r.write("services/b/t.yaml", &format!("{RELAY}# fixed\n"));
    r.commit("fix b");
    node("b");
    node("c");
    let (code, out, err) = run(
        &mut xtask(&r, &["batch", "finish", "many", "--batch", "c1"]),
        None,
    );
    assert_eq!(code, 0, "{out}\n{err}");
    let now = records(p, "many");
    let release = now["a"].release.clone().unwrap();
    for s in ["b", "c"] {
        assert_eq!(now[s].release.as_deref(), Some(release.as_str()), "{s}");
    }
    assert!(
        out.contains(&format!("release: {release} (")),
        "{out}\n{err}"
    );
    assert!(out.contains("a, b, c deployed"), "{out}");
}

/// A node that takes the stage's lock for its batch and is then refused (its dependencies have
/// something to deploy; a shallow clone in CI) deployed nothing, yet nodes never release the
/// lock: the stage stayed locked for the batch's 60 minutes, refusing every other run. A node
/// about to take the lock now checks first, and leaves it free when refused; a node that joins
/// its batch's lock is still refused under it.
#[test]
fn a_node_refused_before_it_deploys_leaves_the_stage_unlocked() {
    let p = "batch-refused";
    let verdicts = tempfile::tempdir().unwrap();
    let r = chain(p, verdicts.path());
    let lock_holder = || {
        let store = RecordStore::new(
            aws_sdk_ssm::Client::new(&config()),
            "many",
            &format!("/ferry/{p}/many"),
        );
        rt().block_on(store.lock_holder()).unwrap()
    };
    // Nothing is deployed: c's node, run first, must wait for a's and b's.
    let (code, out, err) = run(
        &mut xtask(&r, &["batch", "node", "many", "c", "--batch", "r1"]),
        None,
    );
    assert_eq!(code, 1, "{out}\n{err}");
    assert!(
        err.contains(
            "node `c` of batch `r1` refused before taking the lock of stage `many` (left as it was)"
        ) && err.contains("its dependencies `a` and `b` still have something to deploy"),
        "{err}"
    );
    assert!(lock_holder().is_none(), "{:?}", lock_holder());
    // Another batch starts at once, in order; its lock is its own.
    for s in ["a", "b"] {
        let (code, out, err) = run(
            &mut xtask(&r, &["batch", "node", "many", s, "--batch", "r2"]),
            None,
        );
        assert_eq!(code, 0, "{s}: {out}\n{err}");
    }
    assert_eq!(lock_holder().unwrap().batch.as_deref(), Some("r2"));
    // A node of the batch holding the lock, refused, leaves the batch's lock as it was.
    r.write("services/a/t.yaml", &source("v2"));
    r.commit("a v2");
    let (code, _, err) = run(
        &mut xtask(&r, &["batch", "node", "many", "c", "--batch", "r2"]),
        None,
    );
    assert_eq!(code, 1, "{err}");
    assert!(!err.contains("refused before taking the lock"), "{err}");
    assert!(
        err.contains("`c` was not deployed: its dependency `a` still has something to deploy"),
        "{err}"
    );
    assert_eq!(lock_holder().unwrap().batch.as_deref(), Some("r2"));
}

/// A node of the batch that joins as `batch finish` releases the lock: its join read the lock
/// just before the release and writes it back just after (SSM has no compare-and-swap). The
/// proxy here writes the lock back the moment the finish's delete is done, as that join would.
/// The finish then says that the lock is the batch's again, and fails; before, it said
/// "released", and the stage stayed locked for an hour. Run again, it releases the lock.
#[test]
fn a_finish_whose_lock_comes_back_says_so() {
    use ferry_test_support::proxy::{Proxy, Request, Rule};
    let p = "batch-rejoined";
    let r = diamond(p);
    let (code, out, err) = run(
        &mut xtask(&r, &["batch", "node", "many", "base", "--batch", "j1"]),
        None,
    );
    assert_eq!(code, 0, "{out}\n{err}");
    let lock = format!("/ferry/{p}/many/lock");
    let ssm = aws_sdk_ssm::Client::new(&config());
    let held = rt()
        .block_on(ssm.get_parameter().name(&lock).send())
        .unwrap()
        .parameter()
        .unwrap()
        .value()
        .unwrap()
        .to_string();
    let upstream = format!("127.0.0.1:{}", ferry_test_support::moto().port);
    let once = std::sync::atomic::AtomicBool::new(false);
    let joiner = Proxy::start(&upstream, move |req: &Request| {
        let deletes_lock = req.action() == "DeleteParameter"
            && String::from_utf8_lossy(&req.body).contains(&format!("{lock}\""));
        if !deletes_lock || once.swap(true, std::sync::atomic::Ordering::SeqCst) {
            return Rule::Forward;
        }
        let (ssm, lock, held) = (ssm.clone(), lock.clone(), held.clone());
        Rule::Rewrite(Box::new(move |answer| {
            // The delete is done upstream: the join's write lands now.
            rt().block_on(
                ssm.put_parameter()
                    .name(&lock)
                    .value(&held)
                    .r#type(aws_sdk_ssm::types::ParameterType::String)
                    .overwrite(true)
                    .send(),
            )
            .unwrap();
            answer
        }))
    });
    let mut finish = xtask(&r, &["batch", "finish", "many", "--batch", "j1"]);
    finish.env("AWS_ENDPOINT_URL", joiner.endpoint());
    let (code, out, err) = run(&mut finish, None);
    assert_eq!(code, 1, "{out}\n{err}");
    assert!(
        err.contains(
            "joined as the lock of stage `many` was released, and holds it again for the batch"
        ) && !out.contains("released by batch"),
        "{out}\n{err}"
    );
    let store = RecordStore::new(
        aws_sdk_ssm::Client::new(&config()),
        "many",
        &format!("/ferry/{p}/many"),
    );
    assert!(rt().block_on(store.lock_holder()).unwrap().is_some());
    // Once that node ended, the finish run again releases it.
    let (code, out, err) = run(
        &mut xtask(&r, &["batch", "finish", "many", "--batch", "j1"]),
        None,
    );
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains("released by batch `j1`"), "{out}");
    assert!(rt().block_on(store.lock_holder()).unwrap().is_none());
}
