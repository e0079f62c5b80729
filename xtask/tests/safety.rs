//! Safety through the real binary against the local emulator (and, for what the emulator does
//! not do on its own, a scripted proxy in front of it): no stage, project or branch touches
//! another's stacks or records; locks mean what they say; stacks deleted or changed outside
//! Ferry are noticed; secrets stay out of outputs and records; AWS failures read as one sentence.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use crate::common::{records, row, rt, run, xtask};
use ferry_stacks::{Engine, Method, StackSpec, TemplateSource};
use ferry_test_support::proxy::{Proxy, Request, Rule};
use ferry_test_support::{TestRepo, moto};

const QUEUE: &str = "Resources:\n  Q:\n    Type: AWS::SQS::Queue\nOutputs:\n  QueueArn:\n    Value: !GetAtt Q.Arn\n";
const TOPIC: &str = "Parameters:\n  Queue: {Type: String}\nResources:\n  T:\n    Type: AWS::SNS::Topic\nOutputs:\n  TopicArn:\n    Value: !Ref T\n  Queue:\n    Value: !Ref Queue\n";
/// Two SSM parameters with one name: the emulator answers CreateStack with an error and leaves
/// the stack CREATE_IN_PROGRESS for good (a stack busy with an operation that never ends).
const STUCK: &str = "Resources:\n  A:\n    Type: AWS::SSM::Parameter\n    Properties:\n      Name: !Sub \"/${AWS::StackName}/same\"\n      Type: String\n      Value: a\n  B:\n    Type: AWS::SSM::Parameter\n    Properties:\n      Name: !Sub \"/${AWS::StackName}/same\"\n      Type: String\n      Value: b\n";

/// `project` with stages dev, prod (protected) and previews; services `<prefix>a` (a queue)
/// and `<prefix>b` (a topic that takes a's queue ARN).
fn two_services(project: &str, stack_name: &str, prefix: &str) -> TestRepo {
    let r = TestRepo::new();
    r.write(".gitignore", "target/\n");
    write_config(&r, project, stack_name, "");
    r.write(
        &format!("services/{prefix}a/service.toml"),
        "[service]\ntemplate = \"t.yaml\"\n",
    )
    .write(&format!("services/{prefix}a/t.yaml"), QUEUE)
    .write(
        &format!("services/{prefix}b/service.toml"),
        &format!("[service]\ntemplate = \"t.yaml\"\n\n[parameters]\nQueue = \"${{output:{prefix}a.QueueArn}}\"\n"),
    )
    .write(&format!("services/{prefix}b/t.yaml"), TOPIC);
    r.commit("services");
    r
}

fn write_config(r: &TestRepo, project: &str, stack_name: &str, preview_extra: &str) {
    r.write(
        "ferry.toml",
        &format!(
            "[project]\nname = \"{project}\"\nstack-name = \"{stack_name}\"\n\n\
             [stages.dev]\nregion = \"us-east-1\"\ndeployment-method = \"direct\"\n\n\
             [stages.prod]\nregion = \"us-east-1\"\ndeployment-method = \"direct\"\nprotected = true\n\n\
             [stages.\"*\"]\nregion = \"us-east-1\"\ndeployment-method = \"direct\"\n{preview_extra}"
        ),
    );
}

/// The engine on the shared emulator, for what a person does by hand in the console.
fn by_hand() -> Engine {
    let config = rt().block_on(ferry_credentials::base_config(
        "us-east-1",
        &ferry_credentials::config::Target {
            local_endpoint: Some(moto().endpoint()),
        },
    ));
    Engine::for_config(&config, ferry_stacks::DeployOptions::default())
}

fn quiet(_: ferry_stacks::Progress) {}

fn ok(c: &mut Command) -> (String, String) {
    let (code, out, err) = run(c, None);
    assert_eq!(code, 0, "{out}\n{err}");
    (out, err)
}

fn fails(c: &mut Command) -> (String, String) {
    let (code, out, err) = run(c, None);
    assert_eq!(code, 1, "{out}\n{err}");
    (out, err)
}

// 1. A preview name can never become a named stage, nor another preview.

#[test]
fn preview_names_sharing_an_id_never_share_records_or_stacks() {
    let r = two_services("ids", "{project}-{service}-{stage}", "");
    ok(&mut xtask(&r, &["deploy", "feature/login"]));

    // `feature-login` and `Feature_Login` have the same id, so the same records path: refused.
    let (_, err) = fails(&mut xtask(&r, &["deploy", "feature-login"]));
    assert!(
        err.contains("belongs to stage `feature/login`, not `feature-login`"),
        "{err}"
    );
    let (_, err) = fails(&mut xtask(&r, &["remove", "Feature_Login"]));
    assert!(
        err.contains("belongs to stage `feature/login`, not `Feature_Login`"),
        "{err}"
    );
    let (_, err) = fails(&mut xtask(&r, &["outputs", "feature-login"]));
    assert!(err.contains("belongs to stage `feature/login`"), "{err}");

    // Even with records apart, the stacks themselves say whose they are.
    write_config(
        &r,
        "ids",
        "{project}-{service}-{stage}",
        "records-path = \"/ids-elsewhere/{stage}/\"\n",
    );
    r.commit("records elsewhere");
    let (out, _) = fails(&mut xtask(&r, &["deploy", "feature-login"]));
    assert!(row(&out, "a").contains("FAILED"), "{out}");
    assert!(
        out.contains("refusing to touch stack ids-a-feature-login: its Ferry tags say it belongs to service `a` of stage `feature/login` of project `ids`, not to service `a` of stage `feature-login`"),
        "{out}"
    );
    // Its remove deletes nothing of feature/login's: stacks it never deployed are left alone,
    // each named.
    let (out, _) = ok(&mut xtask(&r, &["remove", "feature-login"]));
    for s in ["a", "b"] {
        assert!(
            out.contains(&format!(
                "left ids-{s}-feature-login alone ({s}): stage `feature-login` never deployed {s}"
            )),
            "{out}"
        );
    }
    assert!(out.contains("0 stack(s) deleted"), "{out}");

    // Its owner still has it all.
    write_config(&r, "ids", "{project}-{service}-{stage}", "");
    r.commit("records back");
    let (out, _) = ok(&mut xtask(
        &r,
        &["outputs", "feature/login", "--format", "env"],
    ));
    assert!(out.contains("FERRY_OUTPUT_A_QUEUEARN="), "{out}");
    let (out, _) = ok(&mut xtask(&r, &["remove", "feature/login"]));
    assert!(out.contains("2 stack(s) deleted"), "{out}");
}

// 2. Another project's stacks.

#[test]
fn another_projects_stacks_are_never_updated_deleted_or_read() {
    // Both projects keep the default `{service}-{stage}`: their stacks have the same names.
    let rel = two_services("rel", "{service}-{stage}", "owned-");
    let other = two_services("other", "{service}-{stage}", "owned-");
    ok(&mut xtask(&rel, &["deploy", "dev"]));

    let (out, _) = fails(&mut xtask(&other, &["deploy", "dev"]));
    assert!(
        out.contains("refusing to touch stack owned-a-dev: its Ferry tags say it belongs to service `owned-a` of stage `dev` of project `rel`"),
        "{out}"
    );
    assert!(
        row(&out, "owned-b").contains("skipped (owned-a failed)"),
        "{out}"
    );
    let (out, _) = ok(&mut xtask(&other, &["remove", "dev"]));
    assert!(
        out.contains("left owned-a-dev alone (owned-a): stage `dev` never deployed owned-a")
            && out.contains("0 stack(s) deleted"),
        "{out}"
    );
    let (_, err) = fails(&mut xtask(&other, &["outputs", "dev"]));
    assert!(err.contains("project `rel`"), "{err}");

    // rel's stacks are as rel left them: nothing to redeploy, the tags unchanged.
    let (out, _) = ok(&mut xtask(&rel, &["deploy", "dev"]));
    assert!(
        row(&out, "owned-a").contains("skipped (up to date)"),
        "{out}"
    );
    let tags = tags_of("owned-a-dev");
    assert_eq!(tags["ferry:project"], "rel");
    let (out, _) = ok(&mut xtask(&rel, &["remove", "dev"]));
    assert!(out.contains("2 stack(s) deleted"), "{out}");
}

/// Stack `name` (a queue) deployed by another tool, with `tags` and none of Ferry's.
fn deployed_by_another_tool(name: &str, tags: &[(&str, &str)]) {
    let spec = StackSpec {
        name: name.into(),
        template: TemplateSource::Body(QUEUE.into()),
        parameters: BTreeMap::new(),
        tags: tags
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        method: Method::Direct,
        termination_protection: false,
        owner: None,
        adopt: false,
        renamed_from: None,
    };
    rt().block_on(by_hand().deploy(&spec, &quiet)).unwrap();
}

/// The tags of stack `name`, which exists.
fn tags_of(name: &str) -> BTreeMap<String, String> {
    rt().block_on(by_hand().describe(name))
        .unwrap()
        .unwrap_or_else(|| panic!("no stack {name}"))
        .tags
}

#[test]
fn a_stack_without_ferry_tags_is_adopted_only_when_asked() {
    let r = two_services("adopt", "{project}-{service}-{stage}", "");
    // First deployed by another tool: no Ferry tags.
    deployed_by_another_tool("adopt-a-dev", &[("made-by", "serverless")]);

    // The plan says so, and what a deploy will need (before, a plain "not deployed yet", and the
    // deploy then failed it).
    let (out, _) = ok(&mut xtask(&r, &["plan", "dev"]));
    assert!(
        out.contains("stack-found: adopt-a-dev exists without Ferry's tags (another tool's, or made by hand): without --adopt a deploy refuses it; --adopt takes it over"),
        "{out}"
    );
    assert!(!out.contains("stack-found: adopt-b-dev"), "{out}");
    let (out, _) = fails(&mut xtask(&r, &["deploy", "dev"]));
    assert!(
        out.contains("stack adopt-a-dev exists but has no Ferry tags")
            && out.contains("pass --adopt to take it over"),
        "{out}"
    );
    let (_, err) = fails(&mut xtask(&r, &["remove", "dev"]));
    assert!(err.contains("has no Ferry tags"), "{err}");

    let (out, _) = ok(&mut xtask(&r, &["deploy", "dev", "--adopt"]));
    assert!(
        row(&out, "a").contains("updated") || row(&out, "a").contains("no changes"),
        "{out}"
    );
    let tags = tags_of("adopt-a-dev");
    assert_eq!(tags["ferry:project"], "adopt");
    assert_eq!(tags["ferry:stage-name"], "dev");
    // The tags the other tool set are kept: Ferry sets only its own (before, an update
    // replaced the stack's whole tag set).
    assert_eq!(tags["made-by"], "serverless");
    // Its record lost: the plan says the deploy updates the stack that is a's.
    let ssm = aws_sdk_ssm::Client::new(&crate::common::config());
    rt().block_on(
        ssm.delete_parameter()
            .name("/ferry/adopt/dev/records/a")
            .send(),
    )
    .unwrap();
    let (out, _) = ok(&mut xtask(&r, &["plan", "dev"]));
    assert!(
        out.contains("stack-found: adopt-a-dev exists and is tagged for this service, though no record names it (a first deploy that stopped before its record, or a record lost): a deploy updates it"),
        "{out}"
    );
    ok(&mut xtask(&r, &["remove", "dev"]));
}

/// A repository that deployed its stacks with a script (`--stack-name shop-network-$STAGE`)
/// adopts Ferry: `init` writes the service that stack name, and Ferry updates the script's
/// stack once `--adopt`ed, never a second one of its own beside it.
#[test]
fn init_keeps_the_stack_names_a_deploy_script_gave() {
    let r = TestRepo::new();
    r.write(".gitignore", "target/\n")
        .write("network/template.yaml", QUEUE)
        .write(
            "network/deploy.sh",
            "#!/bin/sh\naws cloudformation deploy --template-file template.yaml --stack-name \"scripted-network-$STAGE\"\n",
        );
    r.commit("scripts");
    // What the script deployed, before Ferry.
    deployed_by_another_tool("scripted-network-dev", &[]);

    ok(&mut xtask(&r, &["init", "--no-runner"]));
    let toml = std::fs::read_to_string(r.path().join("network/service.toml")).unwrap();
    assert!(
        toml.contains("stack-name = \"scripted-network-{stage}\""),
        "{toml}"
    );
    r.commit("ferry");
    let (out, _) = fails(&mut xtask(&r, &["deploy", "dev"]));
    assert!(
        out.contains("stack scripted-network-dev exists but has no Ferry tags"),
        "{out}"
    );
    // The template is the one the script deployed: only Ferry's tags change, and they are set
    // (a change set that changes only tags is "no change" to CloudFormation; before, the stack
    // stayed untagged and the next deploy refused it again).
    let (out, _) = ok(&mut xtask(&r, &["deploy", "dev", "--adopt"]));
    assert!(row(&out, "network").contains("updated"), "{out}");
    let tags = tags_of("scripted-network-dev");
    assert_eq!(tags["ferry:service"], "network");
    assert!(
        rt().block_on(by_hand().describe("network-dev"))
            .unwrap()
            .is_none(),
        "Ferry deployed a stack of its own beside the script's"
    );
    let (out, _) = ok(&mut xtask(&r, &["deploy", "dev"]));
    assert!(
        row(&out, "network").contains("skipped (up to date)"),
        "{out}"
    );
    // Renamed, it keeps its stack (its name holds no {service}): taken over only with --adopt.
    // Before, the stack was refused as another service's, and --adopt did not help.
    let toml = std::fs::read_to_string(r.path().join("network/service.toml")).unwrap();
    r.write(
        "network/service.toml",
        &toml.replacen("[service]\n", "[service]\nname = \"net\"\n", 1),
    );
    r.commit("network is net");
    let (out, _) = fails(&mut xtask(&r, &["deploy", "dev"]));
    assert!(
        out.contains("is tagged for service `network`, which is no service any more: `net` was renamed from it"),
        "{out}"
    );
    let (out, _) = ok(&mut xtask(&r, &["deploy", "dev", "--adopt"]));
    assert!(!row(&out, "net").contains("FAILED"), "{out}");
    let tags = tags_of("scripted-network-dev");
    assert_eq!(tags["ferry:service"], "net");
    ok(&mut xtask(&r, &["remove", "dev"]));
}

// 3. Locks that mean what they say.

/// A lock held by `pid` (which started at `started`) on this host, renewed just now, as another
/// run would hold it.
fn lock_json(who: &str, pid: u32, started: Option<u64>, since: u64) -> String {
    use ferry_records::lock::process;
    serde_json::json!({
        "who": who,
        "host": process::host(),
        "build": null,
        "pid": pid,
        "since": since,
        "command": "deploy",
        "token": "another-run",
        "renewed": since,
        "boot": process::boot(),
        "started": started,
        "pid_ns": process::pid_ns(),
    })
    .to_string()
}

#[test]
fn locks_name_live_and_stale_holders_and_force_takes_over_only_a_stale_one() {
    let r = two_services("lk", "{project}-{service}-{stage}", "");
    let lock = "/ferry/lk/dev/lock";
    let now = ferry_records::now_secs();
    let host = ferry_records::lock::process::host();
    // A live run on this host: this test process.
    let me = std::process::id();
    let live = lock_json("carol", me, ferry_records::lock::process::started(me), now);
    crate::common::put_parameter(lock, &live);

    let holder = format!(
        "locked by carol on {host} (pid {}, `deploy`)",
        std::process::id()
    );
    for args in [
        &["deploy", "dev"][..],
        &["remove", "dev"],
        &["test-acceptance", "dev", "--all"],
    ] {
        let (_, err) = fails(&mut xtask(&r, args));
        assert!(
            err.contains(&holder) && err.contains("wait for that run to finish"),
            "{args:?}: {err}"
        );
    }
    let (_, err) = fails(&mut xtask(&r, &["deploy", "dev", "--force-unlock"]));
    assert!(
        err.contains("refusing to take over the lock of stage `dev` from carol")
            && err.contains("so that run is alive"),
        "{err}"
    );
    let (out, _) = ok(&mut xtask(&r, &["param", "get", "dev", lock]));
    assert!(out.contains("another-run"), "still carol's: {out}");

    // A lock whose process is gone from this host is stale: named so, and taken over on request.
    // (Its start time, read before it is reaped, tells it from a process that reuses the pid.)
    let mut child = Command::new("true").spawn().unwrap();
    let dead = child.id();
    let started = ferry_records::lock::process::started(dead);
    child.wait().unwrap();
    crate::common::put_parameter(lock, &lock_json("dave", dead, started, now));
    let (_, err) = fails(&mut xtask(&r, &["deploy", "dev"]));
    assert!(
        err.contains(&format!(
            "that lock is stale (pid {dead} is no longer running on this host): take it over with --force-unlock"
        )),
        "{err}"
    );
    let (_, err) = ok(&mut xtask(&r, &["deploy", "dev", "--force-unlock"]));
    assert!(
        err.contains(&format!(
            "took over the lock of stage `dev` from dave on {host} (pid {dead}, `deploy`)"
        )) && err.contains("it was stale (pid"),
        "{err}"
    );
    let (code, _, _) = run(&mut xtask(&r, &["param", "get", "dev", lock]), None);
    assert_eq!(code, 1, "released after the deploy");
}

// Two branches whose builds deploy one stage take turns: the second waits for the first's
// lock (`--wait-lock`) instead of failing, writes nothing while it waits (a batch node no mark),
// stops at Ctrl-C with nothing changed, and past its patience is refused as without it.
#[test]
fn a_run_given_wait_lock_waits_for_a_live_lock_then_deploys() {
    let r = two_services("wl", "{project}-{service}-{stage}", "");
    let lock = "/ferry/wl/dev/lock";
    let me = std::process::id();
    let live = || {
        let now = ferry_records::now_secs();
        let started = ferry_records::lock::process::started(me);
        crate::common::put_parameter(lock, &lock_json("carol", me, started, now));
    };
    let absent = |name: &str| {
        let (code, _, _) = run(&mut xtask(&r, &["param", "get", "dev", name]), None);
        code == 1
    };
    let waiting = "lock: stage `dev` is held by carol on ";
    let release = || {
        rt().block_on(
            aws_sdk_ssm::Client::new(&crate::common::config())
                .delete_parameter()
                .name(lock)
                .send(),
        )
        .unwrap();
    };

    // A batch node waits, unmarked, and once the lock is released checks what would refuse
    // it: `b`'s dependency has something to deploy, so it is refused before it takes the lock
    // (before, it checked nothing under another run's lock, then took it and was refused,
    // leaving its batch holding the stage).
    live();
    let (mut child, rx) = spawn_deploy(
        &r,
        &[
            "batch",
            "node",
            "dev",
            "b",
            "--batch",
            "b0",
            "--wait-lock",
            "120",
        ],
    );
    let mut seen = Vec::new();
    wait_for(&rx, waiting, &mut seen);
    assert!(absent("/ferry/wl/dev/nodes/b"), "no mark while it waits");
    release();
    wait_for(
        &rx,
        "node `b` of batch `b0` refused before taking the lock of stage `dev` (left as it was)",
        &mut seen,
    );
    assert!(!child.wait().unwrap().success());
    assert!(absent(lock), "{seen:?}");

    // Two batches' nodes of one service wait; once the lock is released, one batch takes it
    // and the other's node waits on for that batch, until its finish.
    live();
    let nodes: Vec<_> = ["b1", "b2"]
        .iter()
        .map(|b| {
            let args = [
                "batch",
                "node",
                "dev",
                "a",
                "--batch",
                b,
                "--wait-lock",
                "120",
            ];
            (*b, spawn_deploy(&r, &args))
        })
        .collect();
    let mut seen = Vec::new();
    for (_, (_, rx)) in &nodes {
        wait_for(rx, waiting, &mut seen);
    }
    release();
    let [mut first, mut second] = <[_; 2]>::try_from(nodes).ok().unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    loop {
        if first.1.0.try_wait().unwrap().is_some() {
            break;
        }
        if second.1.0.try_wait().unwrap().is_some() {
            std::mem::swap(&mut first, &mut second);
            break;
        }
        assert!(std::time::Instant::now() < deadline, "no node ended");
        std::thread::sleep(Duration::from_millis(100));
    }
    let (winner, (mut child, rx)) = first;
    seen.extend(rx.try_iter());
    assert!(child.wait().unwrap().success(), "{seen:?}");
    let (loser, (mut child, rx)) = second;
    wait_for(
        &rx,
        &format!("lock: stage `dev` is held by batch {winner}: "),
        &mut seen,
    );
    assert!(
        child.try_wait().unwrap().is_none(),
        "still waiting: {seen:?}"
    );
    ok(&mut xtask(
        &r,
        &["batch", "finish", "dev", "--batch", winner],
    ));
    wait_for(&rx, &format!("taken for batch `{loser}`"), &mut seen);
    assert!(child.wait().unwrap().success(), "{seen:?}");
    ok(&mut xtask(
        &r,
        &["batch", "finish", "dev", "--batch", loser],
    ));

    // Two runs wait; once the lock is released, one deploys and the other, refused as it
    // went for the lock, waits again for that one (both had waited: before, the second failed).
    live();
    // (One with --force-unlock, refused by a live lock in other words: it waits again too.)
    let runs: Vec<_> = [&[][..], &["--force-unlock"]]
        .iter()
        .map(|more| {
            spawn_deploy(
                &r,
                &[&["deploy", "dev", "--wait-lock", "120"], *more].concat(),
            )
        })
        .collect();
    let mut seen = Vec::new();
    for (_, rx) in &runs {
        wait_for(rx, waiting, &mut seen);
    }
    assert!(
        seen.iter().all(|l| l
            .contains("waiting for it to be released (0s waited of at most 2 min, --wait-lock)")),
        "{seen:?}"
    );
    let (out, _) = ok(&mut xtask(&r, &["param", "get", "dev", lock]));
    assert!(out.contains("another-run"), "still carol's: {out}");
    release();
    for (mut child, rx) in runs {
        let status = child.wait().unwrap();
        seen.extend(rx.try_iter());
        assert!(status.success(), "{seen:?}");
    }
    assert!(absent(lock), "released by both");

    // Ctrl-C while it waits: it stops, and the lock stays the holder's.
    live();
    let (mut child, rx) = spawn_deploy(&r, &["deploy", "dev", "--wait-lock", "120"]);
    let mut seen = Vec::new();
    wait_for(&rx, waiting, &mut seen);
    signal(child.id(), "-INT");
    wait_for(
        &rx,
        "stopped waiting for the lock of stage `dev` (Ctrl-C); nothing was changed",
        &mut seen,
    );
    assert!(!child.wait().unwrap().success());
    let (out, _) = ok(&mut xtask(&r, &["param", "get", "dev", lock]));
    assert!(out.contains("another-run"), "still carol's: {out}");

    // Past its patience: refused as without it, saying how long it waited.
    let (_, err) = fails(&mut xtask(&r, &["deploy", "dev", "--wait-lock", "1"]));
    assert!(
        err.contains(waiting)
            && err.contains("failed to lock stage `dev` after waiting 1s for it (--wait-lock 1)")
            && err.contains("wait for that run to finish"),
        "{err}"
    );
    // A node refused by another run's live lock leaves the mark of that run's node of its
    // service alone (it wrote its own over it, then deleted it).
    let mark = "/ferry/wl/dev/nodes/a";
    crate::common::put_parameter(
        mark,
        &lock_json("erin", me, None, ferry_records::now_secs()),
    );
    let (_, err) = fails(&mut xtask(
        &r,
        &["batch", "node", "dev", "a", "--batch", "b2"],
    ));
    assert!(err.contains("locked by carol"), "{err}");
    let (out, _) = ok(&mut xtask(&r, &["param", "get", "dev", mark]));
    assert!(out.contains("erin"), "the other node's mark: {out}");
    let (code, _, err) = run(
        &mut xtask(&r, &["deploy", "dev", "--wait-lock", "86401"]),
        None,
    );
    assert_eq!(code, 2, "a usage error: {err}");
    assert!(err.contains("86401 is not in 0..=86400"), "{err}");
    release();
    ok(&mut xtask(&r, &["remove", "dev"]));
}

/// Starts `deploy` in the background; its standard error arrives line by line.
fn spawn_deploy(r: &TestRepo, args: &[&str]) -> (std::process::Child, mpsc::Receiver<String>) {
    let mut c = xtask(r, args);
    for v in ["USER", "USERNAME", "LOGNAME"] {
        c.env_remove(v);
    }
    let mut child = c
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, rx) = mpsc::channel();
    // Both outputs, each line whole (the summary's rows are on standard output).
    let out_tx = tx.clone();
    let out = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            let _ = out_tx.send(line);
        }
    });
    let err = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(err).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    (child, rx)
}

/// Waits for a line containing `text`; all lines seen so far are kept in `seen`.
fn wait_for(rx: &mpsc::Receiver<String>, text: &str, seen: &mut Vec<String>) {
    loop {
        let line = rx
            .recv_timeout(Duration::from_secs(120))
            .unwrap_or_else(|_| panic!("no line with `{text}` in:\n{}", seen.join("\n")));
        let hit = line.contains(text);
        seen.push(line);
        if hit {
            return;
        }
    }
}

fn signal(pid: u32, sig: &str) {
    assert!(
        Command::new("kill")
            .args([sig, &pid.to_string()])
            .status()
            .unwrap()
            .success()
    );
}

/// The pid `what` (a command Ferry started) wrote to `file`, once it has (at most a minute).
fn pid_in(file: &std::path::Path, what: &str) -> u32 {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(pid) = std::fs::read_to_string(file)
            .ok()
            .and_then(|p| p.trim().parse().ok())
        {
            return pid;
        }
        assert!(std::time::Instant::now() < deadline, "{what} never started");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn busy_repo(project: &str) -> TestRepo {
    let r = TestRepo::new();
    r.write(".gitignore", "target/\n");
    write_config(&r, project, "{project}-{service}-{stage}", "");
    r.write(
        "services/stuck/service.toml",
        "[service]\ntemplate = \"t.yaml\"\n",
    )
    .write("services/stuck/t.yaml", STUCK);
    r.commit("a stack that never finishes");
    // The first deploy leaves the stack CREATE_IN_PROGRESS for good.
    let (code, out, err) = run(&mut xtask(&r, &["deploy", "dev", "--timeout", "2"]), None);
    assert_eq!(code, 1, "{out}\n{err}");
    r
}

// 4. Stuck operations: --timeout bounds the whole wait.

#[test]
fn a_stack_busy_with_another_operation_is_awaited_at_most_the_timeout() {
    let r = busy_repo("busy");
    let (out, _) = fails(&mut xtask(&r, &["deploy", "dev", "--timeout", "3"]));
    assert!(
        out.contains("stack busy-stuck-dev is still CREATE_IN_PROGRESS after waiting 3s for another operation to finish"),
        "{out}"
    );
}

#[test]
fn sigterm_starts_nothing_new_a_second_one_aborts_and_the_lock_is_released() {
    let r = busy_repo("sig");
    let (mut child, rx) = spawn_deploy(&r, &["deploy", "dev", "--timeout", "300"]);
    let mut seen = Vec::new();
    wait_for(&rx, "waiting for that operation to finish", &mut seen);

    // A second run meets the lock, and its holder is named though USER was unset.
    let (_, err) = fails(&mut xtask(&r, &["deploy", "dev"]));
    let host = ferry_records::lock::process::host();
    assert!(
        err.contains(&format!(" on {host} (pid {}, `deploy`)", child.id())),
        "{err}"
    );
    assert!(!err.contains("locked by unknown"), "{err}");

    signal(child.id(), "-TERM");
    wait_for(
        &rx,
        "interrupted (SIGTERM): starting nothing new",
        &mut seen,
    );
    signal(child.id(), "-TERM");
    wait_for(&rx, "aborted (SIGTERM again)", &mut seen);
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(1), "{}", seen.join("\n"));
    let (code, _, _) = run(
        &mut xtask(&r, &["param", "get", "dev", "/ferry/sig/dev/lock"]),
        None,
    );
    assert_eq!(code, 1, "the lock is released: {}", seen.join("\n"));
}

/// The reader of a deploy's output goes away (`deploy … | tail`, killed): the deploy's next
/// line meets a closed pipe, which must neither kill the task that handles signals nor the
/// run itself. SIGTERM still cancels, a second aborts, and the lock is released.
#[test]
fn a_deploy_whose_reader_is_gone_still_stops_on_sigterm_and_releases_its_lock() {
    let r = busy_repo("sigpipe");
    let mut c = xtask(&r, &["deploy", "dev", "--timeout", "300"]);
    let mut child = c
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut seen = Vec::new();
    for line in lines.by_ref().map_while(Result::ok) {
        let hit = line.contains("waiting for that operation to finish");
        seen.push(line);
        if hit {
            break;
        }
    }
    // The reader goes: both pipes close.
    drop(lines);
    drop(child.stdout.take());
    signal(child.id(), "-TERM");
    std::thread::sleep(Duration::from_secs(2));
    signal(child.id(), "-TERM");
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("the deploy went on after two SIGTERMs: {}", seen.join("\n"));
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(status.code(), Some(1), "{}", seen.join("\n"));
    let (code, _, _) = run(
        &mut xtask(&r, &["param", "get", "dev", "/ferry/sigpipe/dev/lock"]),
        None,
    );
    assert_eq!(code, 1, "the lock is released");
}

/// Runs `args` in a repository whose one service's build never ends, and sends Ferry alone
/// SIGTERM once the build runs (as a CI runner does: the build is not in the signal's way);
/// checks that Ferry says `interrupted`, exits 1 well before the build's 300 s, and that the
/// build is stopped. Gives the repository and all Ferry said.
fn a_build_stopped_by_sigterm(
    project: &str,
    args: &[&str],
    interrupted: &str,
) -> (TestRepo, String) {
    let r = TestRepo::new();
    r.write(".gitignore", "target/\n");
    write_config(&r, project, "{project}-{service}-{stage}", "");
    // The build never ends on its own, and holds packaging (synchronous) while it runs.
    r.write(
        "services/slow/service.toml",
        "[service]\ntemplate = \"t.yaml\"\n\n[package]\nbuild = [\"sh\", \"-c\", \"echo $$ > ../build.pid; exec sleep 300\"]\n",
    )
    .write("services/slow/t.yaml", QUEUE);
    r.commit("a build that never ends");
    let (mut child, rx) = spawn_deploy(&r, args);
    let mut seen = Vec::new();
    wait_for(&rx, "slow: building: sh -c", &mut seen);
    let build = pid_in(&r.path().join("services/build.pid"), "the build");
    let t0 = std::time::Instant::now();
    signal(child.id(), "-TERM");
    wait_for(&rx, interrupted, &mut seen);
    let status = child.wait().unwrap();
    seen.extend(rx.iter());
    let all = seen.join("\n");
    assert_eq!(status.code(), Some(1), "{all}");
    assert!(
        t0.elapsed() < Duration::from_secs(60),
        "stopped in {:?}, not after the build's 300 s: {all}",
        t0.elapsed()
    );
    let running = std::fs::read_to_string(format!("/proc/{build}/stat"))
        .is_ok_and(|s| s[s.rfind(')').unwrap() + 1..].split_whitespace().next() != Some("Z"));
    assert!(!running, "the build (pid {build}) was stopped: {all}");
    (r, all)
}

#[test]
fn sigterm_during_a_build_stops_the_build_at_once_and_releases_the_lock() {
    let (r, all) = a_build_stopped_by_sigterm(
        "sigbuild",
        &["deploy", "dev"],
        "interrupted (SIGTERM): starting nothing new",
    );
    assert!(
        all.contains(
            "slow: not packaged: the run was cancelled (interrupted, or its stage lock lost), and a build it was running was stopped"
        ) && all.contains("error: packaging stopped as the run was cancelled (interrupted, or its lock lost); nothing was deployed"),
        "{all}"
    );
    let (code, _, _) = run(
        &mut xtask(&r, &["param", "get", "dev", "/ferry/sigbuild/dev/lock"]),
        None,
    );
    assert_eq!(code, 1, "the lock is released: {all}");
}

/// `package` alone, as `deploy` does: SIGTERM stops the build with its process tree. Before,
/// Ferry ended and the build ran on, writing into the folders of the next package.
#[test]
fn sigterm_during_a_package_build_stops_the_build() {
    let (_, all) = a_build_stopped_by_sigterm(
        "sigpkg",
        &["package"],
        "interrupted (SIGTERM): stopping the build that runs",
    );
    assert!(
        all.contains("slow: not packaged: the run was cancelled"),
        "{all}"
    );
}

/// A cancel while acceptance tests run stops them at once, with what they started (they can
/// stop half way without harm, unlike a stack operation); nothing is recorded of them, so the
/// next `deploy --test` runs them.
#[test]
fn sigterm_during_acceptance_tests_stops_them_and_leaves_them_owed() {
    let outside = tempfile::tempdir().unwrap();
    let (slow, pid_file) = (
        outside.path().join("slow"),
        outside.path().join("tests.pid"),
    );
    let r = TestRepo::new();
    r.write(".gitignore", "target/\n");
    write_config(&r, "sigtests", "{project}-{service}-{stage}", "");
    let script = format!(
        "echo $$ > {}; if [ -f {} ]; then exec sleep 300; fi",
        pid_file.display(),
        slow.display()
    );
    r.write(
        "services/tested/service.toml",
        &format!("[service]\ntemplate = \"t.yaml\"\n\n[acceptance]\ncommand = [\"sh\", \"-c\", {script:?}]\ntimeout = 600\n"),
    )
    .write("services/tested/t.yaml", QUEUE)
    .write(
        "services/after/service.toml",
        "[service]\ntemplate = \"t.yaml\"\n\n[parameters]\nQueue = \"${output:tested.QueueArn}\"\n",
    )
    .write("services/after/t.yaml", TOPIC);
    r.commit("tests that take long while `slow` exists");
    std::fs::write(&slow, "").unwrap();
    let (mut child, rx) = spawn_deploy(&r, &["deploy", "dev", "--test"]);
    let mut seen = Vec::new();
    wait_for(&rx, "tested: running its acceptance tests", &mut seen);
    let tests = pid_in(&pid_file, "the tests");

    let t0 = std::time::Instant::now();
    signal(child.id(), "-TERM");
    let status = child.wait().unwrap();
    seen.extend(rx.iter());
    let all = seen.join("\n");
    assert_eq!(status.code(), Some(1), "{all}");
    assert!(
        t0.elapsed() < Duration::from_secs(30),
        "stopped in {:?}, not after the tests' 300 s: {all}",
        t0.elapsed()
    );
    assert!(
        all.contains("tested: acceptance tests cancelled in"),
        "{all}"
    );
    // Its dependent was not reached because of the cancel, not because anything failed.
    assert!(
        all.lines()
            .any(|l| l.starts_with("after ") && l.contains(" cancelled ")),
        "{all}"
    );
    assert!(!all.contains("skipped (tested failed)"), "{all}");
    let running = std::fs::read_to_string(format!("/proc/{tests}/stat"))
        .is_ok_and(|s| s[s.rfind(')').unwrap() + 1..].split_whitespace().next() != Some("Z"));
    assert!(!running, "the tests (pid {tests}) were stopped: {all}");
    let record = &records("sigtests", "dev")["tested"];
    assert_eq!(record.acceptance, None, "nothing recorded of them: {all}");

    // `test-acceptance` alike: stopped at once, exit 1, nothing recorded.
    std::fs::remove_file(&pid_file).unwrap();
    let (mut child, rx) = spawn_deploy(&r, &["test-acceptance", "dev"]);
    let mut seen = Vec::new();
    wait_for(&rx, "tested: testing", &mut seen);
    pid_in(&pid_file, "the tests");
    let t0 = std::time::Instant::now();
    signal(child.id(), "-TERM");
    let status = child.wait().unwrap();
    seen.extend(rx.iter());
    let all = seen.join("\n");
    assert_eq!(status.code(), Some(1), "{all}");
    assert!(t0.elapsed() < Duration::from_secs(30), "{all}");
    assert!(
        all.contains("interrupted: the acceptance tests still running were stopped"),
        "{all}"
    );
    // In its own words: no stack operation runs here (before: deploy's "letting running
    // stack operations finish").
    assert!(
        all.contains(
            "interrupted (SIGTERM): stopping the acceptance tests that run, starting none"
        ),
        "{all}"
    );
    assert!(!all.contains("stack operations finish"), "{all}");
    assert_eq!(
        records("sigtests", "dev")["tested"].acceptance,
        None,
        "{all}"
    );

    // The next run deploys nothing and runs the tests it owes.
    std::fs::remove_file(&slow).unwrap();
    let (out, err) = ok(&mut xtask(&r, &["deploy", "dev", "--test"]));
    assert!(
        row(&out, "tested").contains("skipped (up to date)")
            && out.contains("the acceptance tests it owed passed"),
        "{out}\n{err}"
    );
    assert_eq!(
        records("sigtests", "dev")["tested"]
            .acceptance
            .as_ref()
            .map(|a| a.passed),
        Some(true)
    );
}

// 5. Stacks deleted or changed outside Ferry; 6. plan and deploy agree.

#[test]
fn a_stack_deleted_outside_ferry_is_noticed_by_outputs_plan_and_deploy() {
    let r = two_services("gone", "{project}-{service}-{stage}", "");
    ok(&mut xtask(&r, &["deploy", "dev"]));
    let (out, err) = ok(&mut xtask(&r, &["plan", "dev"]));
    assert!(
        err.contains("bases from the 2 deployment record(s) of stage `dev`")
            && err.contains("1 ListStacks call(s)"),
        "{err}"
    );
    assert!(
        out.contains("0 to deploy"),
        "plan agrees with deploy: {out}"
    );
    let (out, _) = ok(&mut xtask(&r, &["plan", "dev", "--offline"]));
    assert!(out.contains("not deployed yet"), "{out}");

    // Deleted by hand.
    assert!(
        rt().block_on(by_hand().delete("gone-a-dev", None, false, &quiet))
            .unwrap()
    );
    let (_, err) = fails(&mut xtask(&r, &["outputs", "dev"]));
    assert!(
        err.contains("the stacks of a (stack gone-a-dev, recorded as deployed at")
            && err.contains("`deploy dev` creates them again"),
        "{err}"
    );
    let (out, _) = ok(&mut xtask(&r, &["plan", "dev"]));
    assert!(
        out.contains("stack-missing: gone-a-dev is gone though its record says deployed"),
        "{out}"
    );
    // Asked for its dependent only, the missing dependency is made again first.
    let (out, _) = ok(&mut xtask(&r, &["deploy", "dev", "--service", "b"]));
    assert!(
        row(&out, "a").contains(" created ") && row(&out, "a").contains("stack-missing"),
        "{out}"
    );
    let (out, _) = ok(&mut xtask(&r, &["deploy", "dev"]));
    assert!(row(&out, "a").contains("skipped (up to date)"), "{out}");
    ok(&mut xtask(&r, &["remove", "dev"]));
}

/// Rewrites the ListStacks member of `stack` in a ListStacks answer.
fn rewrite_member(xml: &str, stack: &str, f: impl Fn(&str) -> String) -> String {
    let name = format!("<StackName>{stack}</StackName>");
    xml.split_inclusive("</member>")
        .map(|m| {
            if m.contains(&name) {
                f(m)
            } else {
                m.to_string()
            }
        })
        .collect()
}

#[test]
fn a_failed_or_changed_stack_is_redeployed_with_a_named_reason() {
    let r = two_services("drift", "{project}-{service}-{stage}", "");
    ok(&mut xtask(&r, &["deploy", "dev"]));
    let upstream = format!("127.0.0.1:{}", moto().port);
    let deploy_through = |proxy: &Proxy| {
        let mut c = xtask(&r, &["deploy", "dev"]);
        c.env("AWS_ENDPOINT_URL", proxy.endpoint());
        c
    };

    // ListStacks says a's stack is ROLLBACK_COMPLETE (as after a failed create by another tool).
    let failed = Proxy::start(&upstream, |req: &Request| {
        if req.action() != "ListStacks" {
            return Rule::Forward;
        }
        Rule::Rewrite(Box::new(|xml| {
            rewrite_member(&xml, "drift-a-dev", |m| {
                m.replace("CREATE_COMPLETE", "ROLLBACK_COMPLETE")
                    .replace("UPDATE_COMPLETE", "ROLLBACK_COMPLETE")
            })
        }))
    });
    let (out, _) = ok(&mut deploy_through(&failed));
    assert!(
        row(&out, "a").contains("stack-failed: drift-a-dev is ROLLBACK_COMPLETE"),
        "{out}"
    );
    assert!(!row(&out, "a").contains("skipped"), "{out}");

    // ListStacks says b's stack was updated after its record was written.
    let changed = Proxy::start(&upstream, |req: &Request| {
        if req.action() != "ListStacks" {
            return Rule::Forward;
        }
        Rule::Rewrite(Box::new(|xml| {
            rewrite_member(&xml, "drift-b-dev", |m| {
                m.replace(
                    "</StackName>",
                    "</StackName><LastUpdatedTime>2030-01-01T00:00:00Z</LastUpdatedTime>",
                )
            })
        }))
    });
    let (out, _) = ok(&mut deploy_through(&changed));
    assert!(
        row(&out, "b")
            .contains("drifted: drift-b-dev was changed outside Ferry at 2030-01-01 00:00:00 UTC"),
        "{out}"
    );
    assert!(row(&out, "a").contains("skipped (up to date)"), "{out}");
    ok(&mut xtask(&r, &["remove", "dev"]));
}

// 7. Records shared between stages.

#[test]
fn a_record_naming_another_stack_is_never_read_as_this_stages() {
    let r = two_services("rec", "{project}-{service}-{stage}", "");
    ok(&mut xtask(&r, &["deploy", "dev"]));
    let path = "/ferry/rec/dev/records/a";
    let (_, record, _) = run(&mut xtask(&r, &["param", "get", "dev", path]), None);
    let forged = record.trim().replace("\"rec-a-dev\"", "\"rec-a-staging\"");
    crate::common::put_parameter(path, &forged);
    let (_, err) = fails(&mut xtask(&r, &["deploy", "dev"]));
    assert!(
        err.contains("the deployment record of `a` in stage `dev` names stack rec-a-staging, but this stage's stack of `a` is rec-a-dev"),
        "{err}"
    );
    crate::common::put_parameter(path, record.trim());
    ok(&mut xtask(&r, &["remove", "dev"]));
}

// 8. Ferry never dirties the tree it guards.

#[test]
fn ferrys_output_never_makes_a_protected_tree_dirty_and_real_changes_are_named() {
    let r = two_services("tidy", "{project}-{service}-{stage}", "");
    // No `target/` in .gitignore: Ferry's own output lands in the working tree.
    r.remove(".gitignore");
    r.commit("no gitignore");
    ok(&mut xtask(&r, &["deploy", "prod"]));
    assert!(r.path().join("target/ferry/outputs-prod.json").is_file());
    let (out, _) = ok(&mut xtask(&r, &["deploy", "prod"]));
    assert!(row(&out, "a").contains("skipped (up to date)"), "{out}");
    let status = Command::new("git")
        .arg("-C")
        .arg(r.path())
        .args(["status", "--porcelain"])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&status.stdout),
        "",
        "git status stays clean"
    );

    r.write("services/a/notes.txt", "uncommitted\n");
    let (_, err) = fails(&mut xtask(&r, &["deploy", "prod"]));
    assert!(
        err.contains("the working tree has uncommitted changes (services/a/notes.txt)")
            && !err.contains("submodule"),
        "no submodule here, no word of one: {err}"
    );
    // (The emulator does not implement UpdateTerminationProtection, so the protected stacks
    // stay until it stops.)
}

// 9. Inputs outside the repository, names that are not UTF-8, templates that never end.

#[test]
fn a_template_symlinked_from_outside_and_a_folder_name_that_is_not_utf8_are_refused() {
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("t.yaml"), QUEUE).unwrap();
    let r = two_services("links", "{project}-{service}-{stage}", "");
    r.remove("services/a/t.yaml");
    std::os::unix::fs::symlink(
        outside.path().join("t.yaml"),
        r.path().join("services/a/t.yaml"),
    )
    .unwrap();
    let (_, err) = fails(&mut xtask(&r, &["validate"]));
    assert!(
        err.contains("services/a/service.toml:2: service.template: `services/a/t.yaml` is a symlink to a file outside the repository"),
        "{err}"
    );

    let r = two_services("utf", "{project}-{service}-{stage}", "");
    use std::os::unix::ffi::OsStrExt;
    let bad = r
        .path()
        .join("services")
        .join(std::ffi::OsStr::from_bytes(b"caf\xe9"));
    std::fs::create_dir_all(&bad).unwrap();
    std::fs::write(
        bad.join("service.toml"),
        "[service]\ntemplate = \"t.yaml\"\n",
    )
    .unwrap();
    let (_, err) = fails(&mut xtask(&r, &["validate"]));
    assert!(
        err.contains("services/caf\u{fffd}: folder name is not valid UTF-8"),
        "{err}"
    );
}

/// A Serverless Framework service's folder is zipped by its framework, which follows links:
/// a link out of the repository, to another service's file, or to a credential file stops it,
/// as it stops an archive of Ferry's. Before, `validate` passed and the deploy packaged a
/// credentials file from outside the repository.
#[test]
fn a_serverless_service_never_packages_what_a_link_leads_out_to() {
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(
        outside.path().join("credentials"),
        "aws_secret_access_key=x\n",
    )
    .unwrap();
    let r = two_services("slinks", "{project}-{service}-{stage}", "");
    r.write(".gitignore", "target/\n.venv/\nnode_modules/\n")
        .write(
            "services/fn/service.toml",
            "[service]\nkind = \"serverless\"\nstack-name = \"fn-{stage}\"\n\n[package]\nexclude = [\"vendor\"]\n",
        )
        .write(
            "services/fn/serverless.yml",
            "service: fn\nprovider:\n  name: aws\n  runtime: nodejs20.x\nfunctions:\n  hello:\n    handler: src/h.handler\n",
        )
        .write("services/fn/src/h.js", "exports.handler = async () => 1;\n")
        .write("services/fn/.env", "TOKEN=x\n")
        .write("services/fn/node_modules/x/index.js", "module.exports = 1;\n");
    // Committed with the link, as a pull request would bring it.
    let committed = |name: &str, to: &std::path::Path| {
        let at = r.path().join("services/fn/src").join(name);
        std::os::unix::fs::symlink(to, at).unwrap();
        r.commit(name);
    };
    let gone = |name: &str| {
        std::fs::remove_file(r.path().join("services/fn/src").join(name)).unwrap();
        r.commit(name);
    };
    // Out of the repository.
    committed("conf.txt", &outside.path().join("credentials"));
    let (_, err) = fails(&mut xtask(&r, &["validate"]));
    assert!(
        err.contains("services/fn/src/conf.txt") && err.contains("outside the repository"),
        "{err}"
    );
    gone("conf.txt");
    // Another service's file, which the service does not watch.
    committed("shared.yaml", std::path::Path::new("../../a/t.yaml"));
    let (_, err) = fails(&mut xtask(&r, &["validate"]));
    assert!(
        err.contains("leads to services/a/t.yaml, a file of service a"),
        "{err}"
    );
    gone("shared.yaml");
    // A credential file of the repository, under a name that does not say so.
    committed("settings.txt", std::path::Path::new("../.env"));
    let (_, err) = fails(&mut xtask(&r, &["validate"]));
    assert!(
        err.contains("services/fn/src/settings.txt is a symbolic link to a credential file"),
        "{err}"
    );
    gone("settings.txt");
    // Two at once are both said (one validate per link before).
    std::os::unix::fs::symlink(
        outside.path().join("credentials"),
        r.path().join("services/fn/src/one.txt"),
    )
    .unwrap();
    committed("two.yaml", std::path::Path::new("../../a/t.yaml"));
    let (_, err) = fails(&mut xtask(&r, &["validate"]));
    assert!(
        err.contains("2 of its committed links are refused")
            && err.contains("services/fn/src/one.txt")
            && err.contains("leads to services/a/t.yaml, a file of service a"),
        "{err}"
    );
    std::fs::remove_file(r.path().join("services/fn/src/one.txt")).unwrap();
    gone("two.yaml");
    // One the service's `exclude` names: the framework, not Ferry, decides what its archive
    // holds, and Ferry re-zips all of it.
    std::fs::create_dir_all(r.path().join("services/fn/vendor")).unwrap();
    std::os::unix::fs::symlink(
        outside.path().join("credentials"),
        r.path().join("services/fn/vendor/notes.txt"),
    )
    .unwrap();
    r.commit("an excluded link");
    let (_, err) = fails(&mut xtask(&r, &["validate"]));
    assert!(err.contains("vendor/notes.txt leads to"), "{err}");
    std::fs::remove_file(r.path().join("services/fn/vendor/notes.txt")).unwrap();
    r.commit("no excluded link");
    // A link to a declared folder is walked: what it holds is checked as the framework reaches
    // it (a link out of the repository in it), and a `/**` input covers its files.
    r.write("shared/lib.js", "module.exports = 1;\n");
    std::os::unix::fs::symlink(
        outside.path().join("credentials"),
        r.path().join("shared/readme.txt"),
    )
    .unwrap();
    r.write(
        "services/fn/service.toml",
        "[service]\nkind = \"serverless\"\nstack-name = \"fn-{stage}\"\ninputs = [\"shared/**\"]\n",
    );
    committed("sh", std::path::Path::new("../../../shared"));
    let (_, err) = fails(&mut xtask(&r, &["validate"]));
    assert!(
        err.contains("src/sh/readme.txt") && err.contains("outside the repository"),
        "{err}"
    );
    std::fs::remove_file(r.path().join("shared/readme.txt")).unwrap();
    r.commit("no outward link in shared");
    let (code, out, err) = run(&mut xtask(&r, &["validate"]), None);
    assert_eq!(code, 0, "{out}\n{err}");

    // What is left alone: one named as a credential file (stripped from the archive by its
    // name), and links git does not hold (installed packages, ignored here as they usually
    // are; a local virtualenv's link to its interpreter).
    for (at, to) in [
        (
            "services/fn/node_modules/linked",
            outside.path().to_path_buf(),
        ),
        ("services/fn/src/.env", r.path().join("services/fn/.env")),
    ] {
        std::os::unix::fs::symlink(to, r.path().join(at)).unwrap();
    }
    r.commit("links left alone");
    std::fs::create_dir_all(r.path().join("services/fn/.venv/bin")).unwrap();
    std::os::unix::fs::symlink(
        "/usr/bin/python3",
        r.path().join("services/fn/.venv/bin/python3"),
    )
    .unwrap();
    let (code, out, err) = run(&mut xtask(&r, &["validate"]), None);
    assert_eq!(code, 0, "{out}\n{err}");
}

/// A repository that commits something in Ferry's output folder (here a link from where the
/// deploy summary goes to a file outside, as a pull request could add): every command that
/// writes there refuses, and the file outside stays as it was. So does a `target` that is a
/// link. Before, a deploy wrote its summary through the link.
#[test]
fn nothing_committed_in_the_output_folder_makes_ferry_write_through_it() {
    let outside = tempfile::tempdir().unwrap();
    let victim = outside.path().join("victim");
    std::fs::write(&victim, "untouched\n").unwrap();
    let r = two_services("outlink", "{project}-{service}-{stage}", "");
    std::fs::create_dir_all(r.path().join("target/ferry/reports")).unwrap();
    std::os::unix::fs::symlink(&victim, r.path().join("target/ferry/reports/deploy-dev.md"))
        .unwrap();
    ferry_test_support::git(
        r.path(),
        &["add", "-f", "target/ferry/reports/deploy-dev.md"],
    );
    ferry_test_support::git(r.path(), &["commit", "-q", "-m", "a link"]);
    // (`local up` is checked too, when the emulator's state is kept there; the tests keep it
    // elsewhere, FERRY_LOCAL_DIR.)
    for args in [&["package"][..], &["deploy", "dev"][..]] {
        let (code, out, err) = run(&mut xtask(&r, args), None);
        assert_eq!(code, 1, "{args:?}: {out}\n{err}");
        assert!(
            err.contains("the repository commits target/ferry/reports/deploy-dev.md")
                && err.contains("git rm -r --cached target/ferry"),
            "{args:?}: {err}"
        );
    }
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "untouched\n");

    // `target` itself a committed link.
    let r = two_services("outlink2", "{project}-{service}-{stage}", "");
    std::os::unix::fs::symlink(outside.path(), r.path().join("target")).unwrap();
    ferry_test_support::git(r.path(), &["add", "-f", "target"]);
    ferry_test_support::git(r.path(), &["commit", "-q", "-m", "a linked target"]);
    let (code, out, err) = run(&mut xtask(&r, &["package"]), None);
    assert_eq!(code, 1, "{out}\n{err}");
    assert!(
        err.contains("the repository commits target:") && err.contains("git rm -r --cached target"),
        "{err}"
    );
    assert!(!outside.path().join("ferry").exists());
    // A link the developer made (target on another disk) is theirs: Ferry writes through it.
    let r = two_services("outlink3", "{project}-{service}-{stage}", "");
    let disk = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(disk.path(), r.path().join("target")).unwrap();
    let (code, out, err) = run(&mut xtask(&r, &["package"]), None);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(disk.path().join("ferry/package").is_dir());
}

/// An output a service reads that the template naming it does not declare is refused by
/// `validate`, and by `deploy` before anything deploys. Before, both passed it, and the deploy
/// stopped at the reader after its dependencies had deployed.
#[test]
fn an_output_no_template_declares_is_refused_before_anything_deploys() {
    let r = two_services("noout", "{project}-{service}-{stage}", "");
    r.write(
        "services/b/service.toml",
        "[service]\ntemplate = \"t.yaml\"\n\n[parameters]\nQueue = \"${output:a.QueueUrl}\"\n",
    );
    r.commit("b reads an output a does not have");
    let (_, err) = fails(&mut xtask(&r, &["validate"]));
    assert!(
        err.contains("b: parameters.Queue reads output `QueueUrl` of `a`, which its template does not declare (its outputs are QueueArn)"),
        "{err}"
    );
    let (code, out, err) = run(&mut xtask(&r, &["deploy", "dev"]), None);
    assert_eq!(code, 1, "{out}\n{err}");
    assert!(
        err.contains("template problem(s); nothing was deployed")
            && err.contains("reads output `QueueUrl` of `a`"),
        "{err}"
    );
    assert!(records("noout", "dev").is_empty());
    // A macro may add outputs (here in its short form): not judged.
    r.write(
        "services/a/t.yaml",
        "Resources:\n  Q:\n    Type: AWS::SQS::Queue\nOutputs: !Transform {Name: AddStandardOutputs}\n",
    );
    let (code, out, err) = run(&mut xtask(&r, &["validate"]), None);
    assert!(
        !err.contains("reads output `QueueUrl`"),
        "{code}\n{out}\n{err}"
    );
}

/// A link inside the repository too: the plan sees changes by path, and the link's path does
/// not change when the linked file does. From a commit as from the working tree.
#[test]
fn a_template_or_manifest_linked_inside_the_repository_or_not_a_file_is_refused_in_commits_too() {
    let r = two_services("inlinks", "{project}-{service}-{stage}", "");
    let base = r.head().to_string();
    r.write("shared/t.yaml", QUEUE)
        .write("shared/service.toml", "[service]\ntemplate = \"t.yaml\"\n");
    r.remove("services/a/t.yaml");
    r.remove("services/b/service.toml");
    std::os::unix::fs::symlink("../../shared/t.yaml", r.path().join("services/a/t.yaml")).unwrap();
    std::os::unix::fs::symlink(
        "../../shared/service.toml",
        r.path().join("services/b/service.toml"),
    )
    .unwrap();
    // And a manifest that is a folder, and a service folder that is a link.
    r.write("services/c/service.toml/notes.md", "a folder\n")
        .write("apps/d/service.toml", "[service]\ntemplate = \"t.yaml\"\n")
        .write("apps/d/t.yaml", QUEUE);
    std::os::unix::fs::symlink("../apps/d", r.path().join("services/d")).unwrap();
    // And a template reached through a linked folder.
    r.write(
        "services/f/service.toml",
        "[service]\ntemplate = \"cfn/t.yaml\"\n",
    );
    std::os::unix::fs::symlink("../../shared", r.path().join("services/f/cfn")).unwrap();
    r.commit("links");
    let commit_plan = [
        "plan",
        "dev",
        "--since",
        &base,
        "--head",
        "HEAD",
        "--offline",
    ];
    for args in [&["validate"][..], &commit_plan[..]] {
        let (_, err) = fails(&mut xtask(&r, args));
        assert!(
            err.contains("services/a/service.toml:2: service.template: `services/a/t.yaml` is a symlink to `shared/t.yaml`, whose edits a plan would never see")
                && err.contains("`template = \"../../shared/t.yaml\"`"),
            "{args:?}: {err}"
        );
        assert!(
            err.contains(
                "services/b/service.toml: is a symbolic link (to `../../shared/service.toml`)"
            ),
            "{args:?}: {err}"
        );
        assert!(
            err.contains("services/c/service.toml: is a folder, not a file"),
            "{args:?}: {err}"
        );
        assert!(
            err.contains("services/d: is a symbolic link to the service folder `apps/d`"),
            "{args:?}: {err}"
        );
        assert!(
            err.contains("`services/f/cfn/t.yaml` is reached through the symlink `services/f/cfn` to `shared/t.yaml`"),
            "{args:?}: {err}"
        );
    }
}

#[test]
fn a_template_nested_200000_levels_deep_is_refused_before_it_is_parsed() {
    let r = two_services("deep", "{project}-{service}-{stage}", "");
    let depth = 200_000;
    r.write(
        "services/a/t.yaml",
        &format!(
            "Resources:\n  Q:\n    Type: AWS::SQS::Queue\n    Metadata: {}1{}\n",
            "{a: ".repeat(depth),
            "}".repeat(depth)
        ),
    );
    let (_, err) = fails(&mut xtask(&r, &["validate"]));
    assert!(
        err.contains("its flow collections ([…], {…}) nest deeper than 100 levels at line 4"),
        "{err}"
    );
}

// 10. Secrets through outputs.

#[test]
fn a_secret_a_stack_output_echoes_is_masked_everywhere_and_never_recorded() {
    let r = TestRepo::new();
    r.write(".gitignore", "target/\n");
    write_config(&r, "vault", "{project}-{service}-{stage}", "");
    r.write(
        "services/vault/service.toml",
        "[service]\ntemplate = \"t.yaml\"\n\n[parameters]\nToken = \"${ssm:/vault-test/token}\"\n\n\
         [acceptance]\ncommand = [\"sh\", \"-c\", \"echo token is $FERRY_OUTPUT_VAULT_ECHO; echo 'test correct-horse-battery ... ok'; cat $FERRY_OUTPUTS_FILE\"]\n",
    )
    // No NoEcho, and an output that hands the value back.
    .write(
        "services/vault/t.yaml",
        "Parameters:\n  Token: {Type: String}\nResources:\n  Q:\n    Type: AWS::SQS::Queue\nOutputs:\n  Echo:\n    Value: !Ref Token\n",
    );
    r.commit("vault");
    let secret = "correct-horse-battery";
    let (code, _, err) = run(
        &mut xtask(
            &r,
            &["param", "set", "dev", "/vault-test/token", "--secure"],
        ),
        Some(secret),
    );
    assert_eq!(code, 0, "{err}");

    // An output reading the parameter itself is refused before anything deploys.
    let (code, out, err) = run(&mut xtask(&r, &["deploy", "dev"]), None);
    assert_eq!(code, 1, "{out}\n{err}");
    let said = format!("{out}{err}");
    assert!(
        said.contains("vault: output Echo of services/vault/t.yaml reads parameter Token, which receives a SecureString")
            && said.contains("nothing was deployed"),
        "{said}"
    );
    assert!(!said.contains(secret));
    // One that hands it back through a resource (the queue's name) cannot be seen in the
    // template: its value is masked wherever it reappears.
    r.write(
        "services/vault/t.yaml",
        "Parameters:\n  Token: {Type: String}\nResources:\n  Q:\n    Type: AWS::SQS::Queue\n    Properties:\n      QueueName: !Ref Token\nOutputs:\n  Echo:\n    Value: !GetAtt Q.QueueName\n",
    );
    r.commit("vault, echoing through its queue");

    let (out, err) = ok(&mut xtask(&r, &["deploy", "dev", "--test"]));
    assert!(
        err.contains("warning: parameter Token receives SecureString /vault-test/token, but services/vault/t.yaml does not declare it `NoEcho: true`"),
        "{err}"
    );
    let mut seen = vec![out, err];
    for format in ["text", "json", "env"] {
        let (out, _) = ok(&mut xtask(&r, &["outputs", "dev", "--format", format]));
        assert!(out.contains("****"), "{format}: {out}");
        seen.push(out);
    }
    let (out, err) = ok(&mut xtask(&r, &["test-acceptance", "dev", "--all"]));
    assert!(out.contains("passed"), "{out}\n{err}");
    seen.extend([out, err]);
    let (record, _) = ok(&mut xtask(
        &r,
        &["param", "get", "dev", "/ferry/vault/dev/records/vault"],
    ));
    assert!(record.contains("\"Echo\":\"****\""), "{record}");
    seen.push(record);
    for file in [
        "target/ferry/outputs-dev.json",
        "target/ferry/acceptance/dev/vault.outputs.json",
        "target/ferry/reports/acceptance-dev.xml",
    ] {
        seen.push(std::fs::read_to_string(r.path().join(file)).unwrap());
    }
    // A test whose name holds the secret (a libtest line) is a case of the JUnit report, masked.
    assert!(
        seen.last().unwrap().contains("name=\"****\""),
        "{}",
        seen.last().unwrap()
    );
    for text in &seen {
        assert!(!text.contains(secret), "the secret leaked:\n{text}");
    }
    // Rotated in SSM, the secret's old value still runs in the stack until it deploys again:
    // masked as the new one is.
    let (code, _, err) = run(
        &mut xtask(
            &r,
            &[
                "param",
                "set",
                "dev",
                "/vault-test/token",
                "--secure",
                "--overwrite",
            ],
        ),
        Some("a-rotated-token-value"),
    );
    assert_eq!(code, 0, "{err}");
    let (out, _) = ok(&mut xtask(&r, &["outputs", "dev"]));
    assert!(out.contains("****") && !out.contains(secret), "{out}");
    // A site whose config file would hold that output: the site is public, so nothing is
    // published and the service fails, saying why.
    r.write(
        "services/web/service.toml",
        "[service]\ntemplate = \"t.yaml\"\ndepends-on = [\"vault\"]\n\n[package.site]\npath = \"site\"\nbucket-output = \"BucketName\"\nconfig-file = \"config.json\"\n",
    )
    .write(
        "services/web/t.yaml",
        "Resources:\n  B:\n    Type: AWS::S3::Bucket\nOutputs:\n  BucketName:\n    Value: !Ref B\n",
    )
    .write("services/web/site/index.html", "<p>hi</p>\n");
    r.commit("a site reading vault's outputs");
    let (code, out, err) = run(&mut xtask(&r, &["deploy", "dev"]), None);
    assert_eq!(code, 1, "{out}\n{err}");
    let said = format!("{out}{err}");
    assert!(
        said.contains("web: its site's config file would publish a secret: output Echo of `vault` holds a SecureString value"),
        "{said}"
    );
    assert!(!said.contains(secret), "{said}");
    assert!(
        !records("vault", "dev").contains_key("web"),
        "web recorded nothing"
    );
    ok(&mut xtask(&r, &["remove", "dev"]));
}

/// A SecureString a template reads itself (`{{resolve:ssm-secure:…}}`, which CloudFormation
/// resolves) is registered too: an output that echoes its resolved value is masked in the
/// record, the outputs file and `outputs`. The emulator fails a stack whose resource reads an
/// `ssm-secure` reference, so the reference stands in the template's `Metadata` (Ferry reads the
/// whole text), and the output is the resolved value written out, as CloudFormation would give
/// it. Before, it was recorded and printed in clear.
#[test]
fn a_secret_a_template_resolves_itself_is_masked_in_its_outputs() {
    let r = TestRepo::new();
    r.write(".gitignore", "target/\n");
    write_config(&r, "dynsec", "{project}-{service}-{stage}", "");
    let secret = "dynamic-secret-4711";
    r.write("services/vault/service.toml", "[service]\ntemplate = \"t.yaml\"\n")
        .write(
            "services/vault/t.yaml",
            &format!(
                "Metadata:\n  Password: \"{{{{resolve:ssm-secure:/dynsec-test/token}}}}\"\nResources:\n  Q:\n    Type: AWS::SQS::Queue\nOutputs:\n  Echo:\n    Value: {secret}\n"
            ),
        );
    r.commit("vault");
    let (code, _, err) = run(
        &mut xtask(
            &r,
            &["param", "set", "dev", "/dynsec-test/token", "--secure"],
        ),
        Some(secret),
    );
    assert_eq!(code, 0, "{err}");
    let (out, err) = ok(&mut xtask(&r, &["deploy", "dev"]));
    let mut seen = vec![out, err];
    let (out, _) = ok(&mut xtask(&r, &["outputs", "dev"]));
    assert!(out.contains("Echo") && out.contains("****"), "{out}");
    seen.push(out);
    seen.push(std::fs::read_to_string(r.path().join("target/ferry/outputs-dev.json")).unwrap());
    let record = records("dynsec", "dev")["vault"].clone();
    seen.push(serde_json::to_string(&record).unwrap());
    for text in &seen {
        assert!(!text.contains(secret), "the secret leaked:\n{text}");
    }
    ok(&mut xtask(&r, &["remove", "dev"]));
}

/// Another stage's secret, handed back by an output of that stage and read here with
/// `${output:staging:…}`, is masked too: the secrets of every stage whose outputs the services
/// read are registered, with that stage's own credentials.
#[test]
fn another_stages_secret_read_through_its_outputs_is_masked() {
    let r = TestRepo::new();
    r.write(".gitignore", "target/\n").write(
        "ferry.toml",
        "[project]\nname = \"xsec\"\nstack-name = \"{project}-{service}-{stage}\"\n\n\
         [stages.dev]\nregion = \"us-east-1\"\ndeployment-method = \"direct\"\nparameters-path = \"/xsec/dev/\"\n\n\
         [stages.staging]\nregion = \"us-east-1\"\ndeployment-method = \"direct\"\nparameters-path = \"/xsec/staging/\"\n",
    );
    r.write(
        "services/vault/service.toml",
        "[service]\ntemplate = \"t.yaml\"\n\n[parameters]\nToken = \"${ssm:token}\"\n",
    )
    .write(
        "services/vault/t.yaml",
        "Parameters:\n  Token: {Type: String, NoEcho: true}\nResources:\n  Q:\n    Type: AWS::SQS::Queue\n    Properties:\n      QueueName: !Ref Token\nOutputs:\n  Echo:\n    Value: !GetAtt Q.QueueName\n",
    )
    .write(
        "services/reader/service.toml",
        "[service]\ntemplate = \"t.yaml\"\n\n[parameters]\nIn = \"${output:staging:vault.Echo}\"\n",
    )
    .write(
        "services/reader/t.yaml",
        "Parameters:\n  In: {Type: String}\nResources:\n  Q:\n    Type: AWS::SQS::Queue\nOutputs:\n  Out:\n    Value: !Ref In\n",
    );
    r.commit("vault and reader");
    let staging_secret = "staging-secret-value-a1";
    for (stage, value) in [("staging", staging_secret), ("dev", "dev-secret-value-b2")] {
        let (code, _, err) = run(
            &mut xtask(&r, &["param", "set", stage, "token", "--secure"]),
            Some(value),
        );
        assert_eq!(code, 0, "{err}");
    }
    ok(&mut xtask(&r, &["deploy", "staging", "--service", "vault"]));
    let (out, err) = ok(&mut xtask(&r, &["deploy", "dev"]));
    let mut seen = vec![out, err];
    for format in ["text", "json", "env"] {
        let (out, _) = ok(&mut xtask(&r, &["outputs", "dev", "--format", format]));
        assert!(out.contains("****"), "{format}: {out}");
        seen.push(out);
    }
    seen.push(std::fs::read_to_string(r.path().join("target/ferry/outputs-dev.json")).unwrap());
    let (record, _) = ok(&mut xtask(
        &r,
        &["param", "get", "dev", "/ferry/xsec/dev/records/reader"],
    ));
    seen.push(record);
    for text in &seen {
        assert!(
            !text.contains(staging_secret),
            "staging's secret leaked:\n{text}"
        );
    }
    ok(&mut xtask(&r, &["remove", "dev"]));
    ok(&mut xtask(&r, &["remove", "staging"]));
}

// 11. AWS failures read as one sentence that says what to do.

#[test]
fn aws_failures_read_as_one_sentence_with_the_endpoint_and_what_to_do() {
    let r = two_services("errs", "{project}-{service}-{stage}", "");
    let html = Proxy::answering(
        200,
        "text/html",
        "<html><body><h1>Welcome to nginx!</h1></body></html>",
    );
    let html404 = Proxy::answering(404, "text/html", "<html><body>Not Found</body></html>");
    let broken = Proxy::answering(
        500,
        "text/html",
        "<!doctype html><title>500 Internal Server Error</title>",
    );
    let dropped = Proxy::start("127.0.0.1:9", |_| Rule::Drop);
    let cases: Vec<(String, &[&str])> = vec![
        (
            "http://127.0.0.1:9".to_string(),
            &[
                "GetCallerIdentity could not reach http://127.0.0.1:9 (AWS_ENDPOINT_URL)",
                "Connection refused",
                "with --local Ferry starts the emulator itself",
            ],
        ),
        (
            "not a url".to_string(),
            &[
                "GetCallerIdentity was not sent",
                "`not a url`",
                "set AWS_ENDPOINT_URL to a URL such as http://127.0.0.1:5000",
            ],
        ),
        (
            html.endpoint(),
            &[
                "answered HTTP 200 with something that is not an AWS response (text/html: `Welcome to nginx!`)",
                "is AWS_ENDPOINT_URL an AWS endpoint or the emulator (--local)?",
            ],
        ),
        (
            html404.endpoint(),
            &[
                "answered HTTP 404 with something that is not an AWS response (text/html: `Not Found`)",
            ],
        ),
        (
            broken.endpoint(),
            &[
                "GetCallerIdentity failed inside",
                "(HTTP 500: text/html: `500 Internal Server Error`)",
                "run again",
            ],
        ),
        (
            dropped.endpoint(),
            &[
                "GetCallerIdentity could not reach",
                "check AWS_ENDPOINT_URL, the network and any proxy",
            ],
        ),
    ];
    for (endpoint, expected) in &cases {
        let mut c = xtask(&r, &["whoami", "dev"]);
        c.env("AWS_ENDPOINT_URL", endpoint);
        let (_, err) = fails(&mut c);
        for e in *expected {
            assert!(err.contains(e), "{endpoint}: `{e}` missing in:\n{err}");
        }
        for dump in [
            "DispatchFailure",
            "ConnectorError",
            "hyper",
            "<html",
            "<title",
            "Response {",
        ] {
            assert!(
                !err.contains(dump),
                "{endpoint}: a debug dump ({dump}):\n{err}"
            );
        }
        assert!(err.lines().count() <= 3, "{endpoint}: {err}");
    }

    // Instance metadata that refuses (403) when no other credentials exist.
    let imds = Proxy::answering(403, "text/plain", "Forbidden");
    let mut c = xtask(&r, &["whoami", "dev"]);
    c.env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .env_remove("AWS_EC2_METADATA_DISABLED")
        .env("AWS_EC2_METADATA_SERVICE_ENDPOINT", imds.endpoint());
    let (_, err) = fails(&mut c);
    assert!(
        err.contains("no AWS credentials were found for stage `dev`")
            && err.contains("IMDS")
            && err.contains("or use --local for the local emulator"),
        "{err}"
    );
    assert!(
        !err.contains("DispatchFailure") && !err.contains("ProviderError"),
        "{err}"
    );

    // The emulator failing one call (HTTP 500) in the middle of a deploy.
    let upstream = format!("127.0.0.1:{}", moto().port);
    let fault = Proxy::start(&upstream, |req: &Request| {
        if req.action() == "ListStacks" {
            Rule::Respond {
                status: 500,
                content_type: "text/html".into(),
                body: "<html><body>Internal Server Error</body></html>".into(),
            }
        } else {
            Rule::Forward
        }
    });
    let mut c = xtask(&r, &["deploy", "dev"]);
    c.env("AWS_ENDPOINT_URL", fault.endpoint());
    let (_, err) = fails(&mut c);
    assert!(
        err.contains("ListStacks failed inside")
            && err.contains("HTTP 500: text/html: `Internal Server Error`"),
        "{err}"
    );
    assert!(!err.contains("<html"), "{err}");
}

#[test]
fn a_deploy_killed_outright_leaves_a_lock_the_next_run_names_as_stale() {
    let r = busy_repo("killed");
    let (mut child, rx) = spawn_deploy(&r, &["deploy", "dev", "--timeout", "300"]);
    let mut seen = Vec::new();
    wait_for(&rx, "waiting for that operation to finish", &mut seen);
    let pid = child.id();
    signal(pid, "-KILL");
    child.wait().unwrap();
    let (_, err) = fails(&mut xtask(&r, &["deploy", "dev", "--timeout", "1"]));
    assert!(
        err.contains(&format!(
            "that lock is stale (pid {pid} is no longer running on this host)"
        )),
        "{err}"
    );
    let (out, err) = fails(&mut xtask(
        &r,
        &["deploy", "dev", "--timeout", "1", "--force-unlock"],
    ));
    assert!(err.contains("took over the lock of stage `dev`"), "{err}");
    assert!(out.contains("still CREATE_IN_PROGRESS"), "{out}");
    let (code, _, _) = run(
        &mut xtask(&r, &["param", "get", "dev", "/ferry/killed/dev/lock"]),
        None,
    );
    assert_eq!(code, 1, "released by the run that took it over");
}

/// An endpoint that echoes the request's credentials in its error (a proxy, a look-alike of
/// AWS behind `AWS_ENDPOINT_URL`) cannot have them printed: every credential Ferry loads is
/// registered with the masker before a call signs with it. Before, the session token and the
/// signature's key id were printed, and written into the deploy report.
#[test]
fn credentials_an_endpoint_echoes_in_its_error_are_masked() {
    const TOKEN: &str = "probeTOKENprobeTOKENprobeTOKEN5678";
    const KEY_ID: &str = "AKIAPROBEPROBE123456";
    let r = TestRepo::new();
    r.write(".gitignore", "target/\n")
        .write(
            "ferry.toml",
            "[project]\nname = \"echoes\"\n\n[stages.dev]\nregion = \"us-east-1\"\n",
        )
        .write(
            "services/q/service.toml",
            "[service]\ntemplate = \"t.yaml\"\n",
        )
        .write("services/q/t.yaml", QUEUE);
    r.commit("one service");
    let upstream = format!("127.0.0.1:{}", moto().port);
    let echoing = Proxy::start(&upstream, |req: &Request| {
        let action = req.action();
        if action == "ListStacks" || action == "DescribeStacks" || action == "CreateStack" {
            let echoed = format!(
                "{} / {}",
                req.header("x-amz-security-token").unwrap_or_default(),
                req.header("authorization").unwrap_or_default()
            );
            Rule::Respond {
                status: 403,
                content_type: "text/xml".into(),
                body: format!(
                    "<ErrorResponse><Error><Type>Sender</Type><Code>InvalidClientTokenId</Code><Message>The security token included in the request is invalid: {echoed}</Message></Error><RequestId>1</RequestId></ErrorResponse>"
                ),
            }
        } else {
            Rule::Forward
        }
    });
    for args in [&["deploy", "dev"][..], &["plan", "dev"]] {
        let mut c = xtask(&r, args);
        c.env("AWS_ENDPOINT_URL", echoing.endpoint())
            .env("AWS_ACCESS_KEY_ID", KEY_ID)
            .env("AWS_SESSION_TOKEN", TOKEN);
        let (_, out, err) = run(&mut c, None);
        let said = format!("{out}{err}");
        assert!(
            said.contains("The security token included in the request is invalid: ****"),
            "{args:?}: {said}"
        );
        assert!(
            !said.contains(TOKEN) && !said.contains(KEY_ID),
            "{args:?}: {said}"
        );
    }
    // Nor is anything written with them.
    let mut written = String::new();
    for entry in walk(&r.path().join("target")) {
        written.push_str(&String::from_utf8_lossy(&std::fs::read(entry).unwrap()));
    }
    assert!(!written.contains(TOKEN) && !written.contains(KEY_ID));
}

/// Every file below `dir`.
fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                todo.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out
}

/// A template in a folder git ignores, or in `.git`, is refused by validate: no commit holds
/// it, so its edits were never planned and a clone failed with "does not exist".
#[test]
fn a_template_git_does_not_hold_is_refused() {
    let r = two_services("tignored", "{project}-{service}-{stage}", "");
    r.write("target/t.yaml", QUEUE).write(
        "services/a/service.toml",
        "[service]\ntemplate = \"../../target/t.yaml\"\n",
    );
    let (_, err) = fails(&mut xtask(&r, &["validate"]));
    assert!(
        err.contains(
            "services/a/service.toml:2: service.template: `target/t.yaml` is ignored by git"
        ),
        "{err}"
    );
    std::fs::create_dir_all(r.path().join(".git/evil")).unwrap();
    std::fs::write(r.path().join(".git/evil/t.yaml"), QUEUE).unwrap();
    r.write(
        "services/a/service.toml",
        "[service]\ntemplate = \"../../.git/evil/t.yaml\"\n",
    );
    let (_, err) = fails(&mut xtask(&r, &["validate"]));
    assert!(
        err.contains("`.git/evil/t.yaml` lies in git's own folder"),
        "{err}"
    );
}

/// A `[ci]` rule deploying to a preview whose stack would be a named stage's is refused by
/// validate; the same preview named by hand is refused by deploy, before any call, and by plan
/// (which said it deploys, and gave CI nodes that all failed), and stays removable.
#[test]
fn a_preview_taking_a_named_stages_stack_is_refused_before_it_deploys() {
    let r = two_services("pclash", "{project}-{service}-{stage}", "");
    r.write(
        "services/a-x/service.toml",
        "[service]\ntemplate = \"t.yaml\"\n",
    )
    .write("services/a-x/t.yaml", QUEUE);
    let toml = std::fs::read_to_string(r.path().join("ferry.toml")).unwrap();
    r.write(
        "ferry.toml",
        &format!("{toml}\n[ci]\nbranches = {{ main = \"x-dev\" }}\n"),
    );
    r.commit("a-x, and a rule to a clashing preview");
    let (_, err) = fails(&mut xtask(&r, &["validate"]));
    assert!(
        err.contains("[ci] \"main\" = \"x-dev\"")
            && err.contains("its service `a` would be the stack `pclash-a-x-dev`, which is service `a-x`'s in the named stage `dev`"),
        "{err}"
    );
    let (code, out, err) = run(&mut xtask(&r, &["deploy", "x-dev"]), None);
    assert_eq!(code, 1, "{out}\n{err}");
    assert!(
        err.contains("which is service `a-x`'s in the named stage `dev`"),
        "{err}"
    );
    assert!(records("pclash", "x-dev").is_empty());
    for format in ["text", "github-matrix"] {
        let (code, out, err) = run(
            &mut xtask(&r, &["plan", "x-dev", "--offline", "--format", format]),
            None,
        );
        assert_eq!(code, 1, "{out}\n{err}");
        assert!(
            err.contains("which is service `a-x`'s in the named stage `dev`"),
            "{err}"
        );
    }
    // Resolving it is not refused: a remove of it runs (and finds nothing to remove).
    let (code, out, err) = run(&mut xtask(&r, &["remove", "x-dev"]), None);
    assert_eq!(code, 0, "{out}\n{err}");
}

/// With `{stage}` first in stack names, `[ci] pull-requests = "{number}"` would give every pull
/// request's preview stacks CloudFormation refuses: validate says so.
#[test]
fn a_pull_request_pattern_making_stack_names_aws_refuses_is_refused_by_validate() {
    let r = two_services("pdigit", "{stage}-{service}", "");
    let toml = std::fs::read_to_string(r.path().join("ferry.toml")).unwrap();
    r.write(
        "ferry.toml",
        &format!("{toml}\n[ci]\npull-requests = \"{{number}}\"\n"),
    );
    r.commit("pull requests by number alone");
    let (_, err) = fails(&mut xtask(&r, &["validate"]));
    assert!(
        err.contains("[ci] pull-requests = \"{number}\"")
            && err.contains("which CloudFormation refuses"),
        "{err}"
    );
}

/// An artifact that is not on disk, in a service no build of which makes it, is warned of by
/// validate (packaging would fail on it); validate still passes, as a CI step before Ferry may
/// build it.
#[test]
fn an_artifact_nothing_makes_is_warned_of_by_validate() {
    let r = two_services("absent", "{project}-{service}-{stage}", "");
    r.write(
        "services/a/service.toml",
        "[service]\ntemplate = \"t.yaml\"\n\n[package.artifacts]\nFn = \"dist\"\n",
    )
    .write(
        "services/a/t.yaml",
        "Resources:\n  Role:\n    Type: AWS::IAM::Role\n    Properties:\n      AssumeRolePolicyDocument: {}\n  Fn:\n    Type: AWS::Lambda::Function\n    Properties:\n      Runtime: python3.12\n      Handler: app.handle\n      Role: !GetAtt Role.Arn\n      Code: dist\nOutputs:\n  QueueArn:\n    Value: !GetAtt Fn.Arn\n",
    );
    r.commit("an artifact nothing builds");
    let (code, out, err) = run(&mut xtask(&r, &["validate"]), None);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(
        err.contains("warning: services/a/service.toml: package.artifacts.Fn: `dist` does not exist in services/a, and the service has no [package] build to make it"),
        "{err}"
    );
    r.write("services/a/dist/x.txt", "x\n");
    let (code, _, err) = run(&mut xtask(&r, &["validate"]), None);
    assert_eq!(code, 0, "{err}");
    assert!(!err.contains("does not exist"), "{err}");
}
