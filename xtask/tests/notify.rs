//! `[notifications]` end to end: a local HTTP receiver on 127.0.0.1 stands for the chat
//! webhooks (one URL in ferry.toml, one kept in SSM as a SecureString) and the emulator's SNS
//! delivers to an SQS queue. A first green deploy says nothing; a failure and the recovery are
//! announced to every target with the stage, service, commit and author; an unchanged deploy
//! says nothing; a webhook that fails is a warning and never fails the deploy; the URL kept in
//! SSM never appears in the output; news that no target took is announced again by the next run.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::common::{config, rt, run, xtask};
use ferry_test_support::TestRepo;

/// Requests (path, body) a receiver on 127.0.0.1 got; it answers 200.
pub(crate) type Got = Arc<Mutex<Vec<(String, String)>>>;

pub(crate) fn receiver() -> (String, Got) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", l.local_addr().unwrap());
    let got: Got = Arc::default();
    let keep = got.clone();
    std::thread::spawn(move || {
        for stream in l.incoming() {
            let Ok(mut s) = stream else { continue };
            let mut buf = Vec::new();
            let mut chunk = [0u8; 8192];
            let (path, body) = loop {
                let n = s.read(&mut chunk).unwrap_or(0);
                buf.extend_from_slice(&chunk[..n]);
                let text = String::from_utf8_lossy(&buf).into_owned();
                if let Some((head, body)) = text.split_once("\r\n\r\n") {
                    let len: usize = head
                        .lines()
                        .find_map(|l| {
                            l.to_ascii_lowercase()
                                .strip_prefix("content-length:")
                                .map(|v| v.trim().parse().unwrap())
                        })
                        .unwrap_or(0);
                    if body.len() >= len || n == 0 {
                        let path = head.split_whitespace().nth(1).unwrap_or("").to_string();
                        break (path, body.to_string());
                    }
                } else if n == 0 {
                    break (String::new(), String::new());
                }
            };
            let _ =
                s.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok");
            keep.lock().unwrap().push((path, body));
        }
    });
    (base, got)
}

/// The emulator's configuration in `region`.
fn config_in(region: &str) -> aws_config::SdkConfig {
    config()
        .to_builder()
        .region(aws_config::Region::new(region.to_string()))
        .build()
}

/// A topic, and a queue subscribed to it: (topic ARN, queue URL).
fn topic_and_queue(name: &str) -> (String, String) {
    topic_and_queue_in(name, "us-east-1")
}

/// [`topic_and_queue`] in `region`.
fn topic_and_queue_in(name: &str, region: &str) -> (String, String) {
    let c = config_in(region);
    let (sns, sqs) = (aws_sdk_sns::Client::new(&c), aws_sdk_sqs::Client::new(&c));
    rt().block_on(async {
        let topic = sns.create_topic().name(name).send().await.unwrap();
        let topic = topic.topic_arn().unwrap().to_string();
        let q = sqs.create_queue().queue_name(name).send().await.unwrap();
        let url = q.queue_url().unwrap().to_string();
        let attrs = sqs
            .get_queue_attributes()
            .queue_url(&url)
            .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
            .send()
            .await
            .unwrap();
        let arn =
            attrs.attributes().unwrap()[&aws_sdk_sqs::types::QueueAttributeName::QueueArn].clone();
        sns.subscribe()
            .topic_arn(&topic)
            .protocol("sqs")
            .endpoint(arn)
            .send()
            .await
            .unwrap();
        (topic, url)
    })
}

/// Messages the queue holds now (SNS envelopes: their Subject and Message).
fn drain(queue: &str) -> Vec<serde_json::Value> {
    drain_in(queue, "us-east-1")
}

/// [`drain`] of a queue in `region`.
fn drain_in(queue: &str, region: &str) -> Vec<serde_json::Value> {
    let sqs = aws_sdk_sqs::Client::new(&config_in(region));
    rt().block_on(async {
        let mut out = Vec::new();
        loop {
            let got = sqs
                .receive_message()
                .queue_url(queue)
                .max_number_of_messages(10)
                .send()
                .await
                .unwrap();
            if got.messages().is_empty() {
                return out;
            }
            for m in got.messages() {
                out.push(serde_json::from_str(m.body().unwrap()).unwrap());
                sqs.delete_message()
                    .queue_url(queue)
                    .receipt_handle(m.receipt_handle().unwrap())
                    .send()
                    .await
                    .unwrap();
            }
        }
    })
}

fn put_secret(name: &str, value: &str) {
    let ssm = aws_sdk_ssm::Client::new(&config());
    rt().block_on(
        ssm.put_parameter()
            .name(name)
            .value(value)
            .r#type(aws_sdk_ssm::types::ParameterType::SecureString)
            .overwrite(true)
            .send(),
    )
    .unwrap();
}

/// Waits up to 5 s for `n` requests (1 s when none is expected: a notification is sent before
/// the command exits, so this only catches one arriving late).
fn wait_for(got: &Got, n: usize) -> Vec<(String, String)> {
    let t = Instant::now();
    let limit = Duration::from_secs(if n == 0 { 1 } else { 5 });
    while got.lock().unwrap().len() < n.max(1) && t.elapsed() < limit {
        std::thread::sleep(Duration::from_millis(20));
    }
    std::mem::take(&mut *got.lock().unwrap())
}

const QUEUE: &str = "Resources:\n  Q:\n    Type: AWS::SQS::Queue\n";
/// A service whose tests fail while `$VERDICTS/fail` exists.
const API: &str = "[service]\ntemplate = \"t.yaml\"\n\n[acceptance]\ncommand = [\"sh\", \"-c\", \"test ! -e \\\"$VERDICTS/fail\\\"\"]\n";

/// A repository with `ferry_toml` and the service `api`, committed.
fn api_repo(ferry_toml: &str) -> TestRepo {
    let r = TestRepo::new();
    r.write("ferry.toml", ferry_toml)
        .write("services/api/service.toml", API)
        .write("services/api/t.yaml", QUEUE);
    r.commit("services");
    r
}

/// `ferry.toml` of project `p` with a direct `dev` stage and `notifications` (the keys of
/// `[notifications]`).
fn project(p: &str, notifications: &str) -> String {
    format!(
        "[project]\nname = \"{p}\"\nstack-name = \"{{project}}-{{service}}-{{stage}}\"\n\n\
         [stages.dev]\nregion = \"us-east-1\"\ndeployment-method = \"direct\"\n\n\
         [notifications]\n{notifications}"
    )
}

fn deploy(r: &TestRepo, verdicts: &Path) -> (i32, String, String) {
    let mut c = xtask(r, &["deploy", "dev", "--test"]);
    c.env("VERDICTS", verdicts);
    run(&mut c, None)
}

#[test]
fn changes_of_state_are_announced_once_to_every_target_and_green_builds_say_nothing() {
    let p = "nt-state";
    let (base, got) = receiver();
    let (topic, queue) = topic_and_queue(p);
    let secret_path = "/nt-state/notify/chat";
    let secret_url = format!("{base}/hook-held-in-ssm-T0KEN");
    put_secret(secret_path, &secret_url);
    // A URL in SSM that would send its token in clear text: refused like one in ferry.toml.
    let plain_path = "/nt-state/notify/plain";
    put_secret(plain_path, "http://198.51.100.7/hook-PLAIN");
    // A port nothing listens on: that webhook fails.
    let dead = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}/dead", l.local_addr().unwrap())
    };
    let r = api_repo(&project(
        p,
        &format!(
            "webhooks = [\"{base}/hook\", \"ssm:{secret_path}\", \"ssm:{plain_path}\", \"{dead}\"]\nsns-topic = \"{topic}\"\n"
        ),
    ));
    let verdicts = tempfile::tempdir().unwrap();
    let v = verdicts.path();

    // The first green deploy is no news.
    let (code, out, err) = deploy(&r, v);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(wait_for(&got, 0).is_empty());
    assert!(drain(&queue).is_empty());

    // The tests fail: announced to both live webhooks and the topic; the dead one is a
    // warning, the deploy's exit is the tests' (1), not the webhook's.
    std::fs::write(v.join("fail"), "").unwrap();
    r.write("services/api/t.yaml", &format!("{QUEUE}# v2\n"));
    let commit = r.commit("api v2").to_string();
    let (code, out, err) = deploy(&r, v);
    assert_eq!(code, 1, "{out}\n{err}");
    let sent = wait_for(&got, 2);
    let mut paths: Vec<&str> = sent.iter().map(|(p, _)| p.as_str()).collect();
    paths.sort();
    assert_eq!(paths, ["/hook", "/hook-held-in-ssm-T0KEN"]);
    let body: serde_json::Value = serde_json::from_str(&sent[0].1).unwrap();
    let text = body["text"].as_str().unwrap();
    assert!(
        text.starts_with("*Ferry: nt-state dev: 1 failing*"),
        "{text}"
    );
    assert!(
        text.contains("✗ `api`: passing → failing (tests failed)"),
        "{text}"
    );
    assert!(
        text.contains(&format!("commit `{}`", &commit[..12])),
        "{text}"
    );
    assert!(text.contains(" by "), "the author: {text}");
    let all = format!("{out}{err}");
    assert!(all.contains("warning: webhook http://127.0.0.1:"), "{all}");
    assert!(
        all.contains(&format!("warning: webhook ssm:{plain_path}: the parameter does not hold an https URL (plain http only to a loopback address); nothing was sent to it")),
        "{all}"
    );
    assert!(!all.contains("PLAIN"), "{all}");
    // A URL written in ferry.toml is shown by its host only; the one from SSM by its name.
    assert!(
        all.contains(&format!(
            "notified {base}/…, ssm:{secret_path}, sns:{topic}"
        )),
        "{all}"
    );
    assert!(!all.contains("/hook"), "{all}");
    assert!(
        !all.contains("T0KEN"),
        "the URL kept in SSM is masked: {all}"
    );
    let messages = drain(&queue);
    assert_eq!(messages.len(), 1, "{messages:?}");
    assert_eq!(messages[0]["Subject"], "Ferry: nt-state dev: 1 failing");
    assert!(
        messages[0]["Message"]
            .as_str()
            .unwrap()
            .contains("passing → failing"),
        "{messages:?}"
    );

    // Fixed, and tested again by `test-acceptance`: the recovery is announced.
    std::fs::remove_file(v.join("fail")).unwrap();
    let mut retest = xtask(&r, &["test-acceptance", "dev"]);
    retest.env("VERDICTS", v);
    let (code, out, err) = run(&mut retest, None);
    assert_eq!(code, 0, "{out}\n{err}");
    let sent = wait_for(&got, 2);
    assert_eq!(sent.len(), 2);
    assert!(
        sent[0].1.contains("failing → passing (tests passed)"),
        "{sent:?}"
    );
    assert_eq!(drain(&queue).len(), 1);
    // A new version that passes, and an unchanged deploy: no news.
    r.write("services/api/t.yaml", &format!("{QUEUE}# v3\n"));
    r.commit("api v3");
    for _ in 0..2 {
        let (code, out, err) = deploy(&r, v);
        assert_eq!(code, 0, "{out}\n{err}");
        assert!(wait_for(&got, 0).is_empty());
        assert!(drain(&queue).is_empty());
    }
}

#[test]
fn news_that_no_target_took_is_announced_again_by_the_next_run() {
    let p = "nt-again";
    let (base, got) = receiver();
    // The one webhook first points at a port nothing listens on.
    let dead = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}/dead", l.local_addr().unwrap())
    };
    let project = |hook: &str| project(p, &format!("webhooks = [\"{hook}\"]\n"));
    let r = api_repo(&project(&dead));
    let verdicts = tempfile::tempdir().unwrap();
    let v = verdicts.path();
    let (code, out, err) = deploy(&r, v);
    assert_eq!(code, 0, "{out}\n{err}");

    // The tests fail and the news reaches nobody: the run says it will be told again.
    std::fs::write(v.join("fail"), "").unwrap();
    r.write("services/api/t.yaml", &format!("{QUEUE}# v2\n"));
    r.commit("api v2");
    let (code, out, err) = deploy(&r, v);
    assert_eq!(code, 1, "{out}\n{err}");
    let all = format!("{out}{err}");
    assert!(
        all.contains("no target took the news, so the stage's health was left as it was: the next run announces it again"),
        "{all}"
    );

    // The webhook fixed; the tests still fail: the same news goes out now.
    r.write("ferry.toml", &project(&format!("{base}/hook")));
    r.commit("webhook fixed");
    let mut retest = xtask(&r, &["test-acceptance", "dev", "--all"]);
    retest.env("VERDICTS", v);
    let (code, out, err) = run(&mut retest, None);
    assert_eq!(code, 1, "{out}\n{err}");
    let sent = wait_for(&got, 1);
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert!(sent[0].1.contains("passing → failing"), "{sent:?}");
    // Told once: no news the time after.
    let mut again = xtask(&r, &["test-acceptance", "dev", "--all"]);
    again.env("VERDICTS", v);
    let (code, _, _) = run(&mut again, None);
    assert_eq!(code, 1);
    assert!(wait_for(&got, 0).is_empty());
}

/// One topic for every stage, in a region that is not the stage's: the news is published in the
/// topic's region. Before, it went to the stage's region, where no such topic is.
#[test]
fn a_topic_in_another_region_than_the_stage_gets_the_news() {
    let p = "nt-region";
    let (topic, queue) = topic_and_queue_in(p, "eu-west-1");
    assert!(topic.starts_with("arn:aws:sns:eu-west-1:"), "{topic}");
    let r = api_repo(&project(p, &format!("sns-topic = \"{topic}\"\n")));
    let verdicts = tempfile::tempdir().unwrap();
    let v = verdicts.path();
    let (code, out, err) = deploy(&r, v);
    assert_eq!(code, 0, "{out}\n{err}");
    std::fs::write(v.join("fail"), "").unwrap();
    r.write("services/api/t.yaml", &format!("{QUEUE}# v2\n"));
    r.commit("api v2");
    let (code, out, err) = deploy(&r, v);
    assert_eq!(code, 1, "{out}\n{err}");
    assert!(
        format!("{out}{err}").contains(&format!("sns:{topic}")),
        "{out}\n{err}"
    );
    let got = drain_in(&queue, "eu-west-1");
    assert_eq!(got.len(), 1, "{got:?}");
    assert!(
        got[0]["Message"]
            .as_str()
            .unwrap()
            .contains("passing → failing"),
        "{got:?}"
    );
}

/// A webhook kept in SSM is a secret, and so is its token alone: a receiver whose error page
/// echoes the path it was asked for shows up in the warning masked.
#[test]
fn a_webhooks_token_never_shows_in_a_warning_even_when_its_answer_echoes_it() {
    let p = "nt-mask";
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let token = "T0KEN12345xyz";
    let url = format!("http://{}/hook/{token}", l.local_addr().unwrap());
    std::thread::spawn(move || {
        for stream in l.incoming() {
            let Ok(mut s) = stream else { continue };
            let mut chunk = [0u8; 8192];
            let n = s.read(&mut chunk).unwrap_or(0);
            let head = String::from_utf8_lossy(&chunk[..n]).into_owned();
            let path = head.split_whitespace().nth(1).unwrap_or("").to_string();
            let body = format!("Cannot POST {path}");
            let _ = s.write_all(
                format!(
                    "HTTP/1.1 500 Internal Server Error\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                )
                .as_bytes(),
            );
        }
    });
    put_secret("/nt-mask/hook", &url);
    let r = api_repo(&project(p, "webhooks = [\"ssm:/nt-mask/hook\"]\n"));
    let verdicts = tempfile::tempdir().unwrap();
    let v = verdicts.path();
    let (code, out, err) = deploy(&r, v);
    assert_eq!(code, 0, "{out}\n{err}");
    // The tests fail: news, which the webhook refuses, echoing its path.
    std::fs::write(v.join("fail"), "").unwrap();
    r.write("services/api/t.yaml", &format!("{QUEUE}# v2\n"));
    r.commit("api v2");
    let (code, out, err) = deploy(&r, v);
    assert_eq!(code, 1, "{out}\n{err}");
    let all = format!("{out}{err}");
    assert!(
        all.contains("webhook ssm:/nt-mask/hook: answered HTTP 500"),
        "{all}"
    );
    assert!(!all.contains(token), "the token leaked:\n{all}");
}

/// Webhooks are posted to at once: each receiver here answers only once both have been asked,
/// which a post made after the other's answer would wait for until its time limit, and fail.
/// (One slow webhook used to hold up the next, 10 s each.)
#[test]
fn webhooks_are_posted_to_at_once() {
    let p = "nt-once";
    let asked = Arc::new((Mutex::new(0usize), std::sync::Condvar::new()));
    let mut hooks = Vec::new();
    for name in ["first", "second"] {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        hooks.push(format!("\"http://{}/{name}\"", l.local_addr().unwrap()));
        let asked = asked.clone();
        std::thread::spawn(move || {
            for stream in l.incoming() {
                let Ok(mut s) = stream else { continue };
                let mut chunk = [0u8; 8192];
                let _ = s.read(&mut chunk);
                let (count, both) = &*asked;
                let mut n = count.lock().unwrap();
                *n += 1;
                both.notify_all();
                // Up to 30 s for the other request: longer than a post's time limit.
                let _ = both
                    .wait_timeout_while(n, Duration::from_secs(30), |n| *n < 2)
                    .unwrap();
                let _ = s.write_all(
                    b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok",
                );
            }
        });
    }
    let r = api_repo(&project(p, &format!("webhooks = [{}]\n", hooks.join(", "))));
    let verdicts = tempfile::tempdir().unwrap();
    let v = verdicts.path();
    let (code, out, err) = deploy(&r, v);
    assert_eq!(code, 0, "{out}\n{err}");
    // The tests fail: news for both.
    std::fs::write(v.join("fail"), "").unwrap();
    r.write("services/api/t.yaml", &format!("{QUEUE}# v2\n"));
    r.commit("api v2");
    let (code, out, err) = deploy(&r, v);
    assert_eq!(code, 1, "{out}\n{err}");
    let all = format!("{out}{err}");
    assert!(!all.contains("warning: webhook"), "{all}");
    assert_eq!(*asked.0.lock().unwrap(), 2, "{all}");
    assert!(all.contains("notified http://127.0.0.1:"), "{all}");
}
