#![doc = include_str!("../README.md")]

use std::collections::BTreeMap;
use std::time::Duration;

use ferry_records::Health;

/// One service whose state changed in a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub service: String,
    /// Its health before the run (`None`: never known).
    pub from: Option<Health>,
    pub to: Health,
    /// Why it is what it is now: `deploy failed`, `tests failed`, `tests passed`, `deployed`.
    pub why: String,
}

/// The changes of state between `before` and `after` (service → health and why): a service that
/// went from passing to failing or back, or failed for the first time. A service passing for the
/// first time is no news, and neither is one that stays as it was.
pub fn changes(
    before: &BTreeMap<String, Health>,
    after: &BTreeMap<String, (Health, String)>,
) -> Vec<Change> {
    after
        .iter()
        .filter_map(|(service, (to, why))| {
            let from = before.get(service).copied();
            let news = match (from, to) {
                (None, Health::Passing) => false,
                (from, to) => from != Some(*to),
            };
            news.then(|| Change {
                service: service.clone(),
                from,
                to: *to,
                why: why.clone(),
            })
        })
        .collect()
}

/// A promote or rollback the run made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReleaseNote {
    /// `promote`, `rollback`.
    pub kind: String,
    pub id: String,
    /// What it came from: the source stage of a promote, the release a rollback restored.
    pub from: Option<String>,
    pub services: Vec<String>,
}

/// What one announcement says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice {
    pub project: String,
    pub stage: String,
    pub changes: Vec<Change>,
    pub release: Option<ReleaseNote>,
    pub commit: String,
    /// The commit's author, `Name <email>`.
    pub author: Option<String>,
    /// The CI build's page, when known.
    pub build_url: Option<String>,
}

impl Notice {
    /// Whether there is anything to announce: a change of state, a promote or a rollback.
    pub fn is_news(&self) -> bool {
        !self.changes.is_empty() || self.release.is_some()
    }

    /// A one-line subject (at most 100 characters, as SNS takes).
    pub fn subject(&self) -> String {
        let failing = self
            .changes
            .iter()
            .filter(|c| c.to == Health::Failing)
            .count();
        let recovered = self.changes.len() - failing;
        let mut parts = Vec::new();
        if let Some(r) = &self.release {
            parts.push(r.kind.clone());
        }
        if failing > 0 {
            parts.push(format!("{failing} failing"));
        }
        if recovered > 0 {
            parts.push(format!("{recovered} passing again"));
        }
        let s = format!(
            "Ferry: {} {}: {}",
            self.project,
            self.stage,
            parts.join(", ")
        );
        s.chars().take(100).collect()
    }

    /// The message as text (Slack's mrkdwn: `*bold*`, backticks).
    pub fn text(&self) -> String {
        let mut out = format!("*{}*", self.subject());
        if let Some(r) = &self.release {
            out.push_str(&format!(
                "\n{} `{}`{} of {}",
                r.kind,
                r.id,
                r.from
                    .as_ref()
                    .map(|f| format!(" from `{f}`"))
                    .unwrap_or_default(),
                if r.services.is_empty() {
                    "no service".to_string()
                } else {
                    r.services.join(", ")
                }
            ));
        }
        for c in &self.changes {
            let from = c.from.map_or_else(|| "new".to_string(), |h| h.to_string());
            let mark = if c.to == Health::Failing {
                "✗"
            } else {
                "✓"
            };
            out.push_str(&format!(
                "\n{mark} `{}`: {from} → {} ({})",
                c.service, c.to, c.why
            ));
        }
        let short: String = self.commit.chars().take(12).collect();
        out.push_str(&format!("\ncommit `{short}`"));
        if let Some(a) = &self.author {
            out.push_str(&format!(" by {a}"));
        }
        if let Some(u) = &self.build_url {
            out.push_str(&format!("\nbuild: {u}"));
        }
        out
    }

    /// A Slack-compatible webhook body: `{"text": …}` (Slack, Mattermost, Rocket.Chat, and most
    /// chat webhooks take it). `&`, `<` and `>` are escaped as Slack asks: a branch may be named
    /// `feat/<!channel>`, which would otherwise notify the whole channel.
    pub fn slack_body(&self) -> String {
        let text = self
            .text()
            .replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;");
        serde_json::json!({ "text": text }).to_string()
    }
}

/// The CI build's page, from the environment through `var`: GitHub Actions
/// (`$GITHUB_SERVER_URL/$GITHUB_REPOSITORY/actions/runs/$GITHUB_RUN_ID`) or CodeBuild (the
/// console page of `CODEBUILD_BUILD_ARN`).
pub fn build_url(var: &dyn Fn(&str) -> Option<String>) -> Option<String> {
    let get = |k: &str| var(k).filter(|v| !v.trim().is_empty());
    if let (Some(server), Some(repo), Some(run)) = (
        get("GITHUB_SERVER_URL"),
        get("GITHUB_REPOSITORY"),
        get("GITHUB_RUN_ID"),
    ) {
        return Some(format!("{server}/{repo}/actions/runs/{run}"));
    }
    // arn:aws:codebuild:<region>:<account>:build/<project>:<uuid>
    let arn = get("CODEBUILD_BUILD_ARN")?;
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    let [_, _, _, region, account, rest] = parts.as_slice() else {
        return None;
    };
    let build = rest.strip_prefix("build/")?;
    let (project, _) = build.split_once(':')?;
    Some(format!(
        "https://{region}.console.aws.amazon.com/codesuite/codebuild/{account}/projects/{project}/build/{}/?region={region}",
        build.replace(':', "%3A")
    ))
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NotifyError {
    #[error("webhook {target}: {message}")]
    Webhook { target: String, message: String },
    #[error("SNS topic {topic}: {message}")]
    Sns { topic: String, message: String },
}

/// How long one webhook may take.
pub const WEBHOOK_TIMEOUT: Duration = Duration::from_secs(10);

/// POSTs `body` (JSON) to `url`; an answer other than 2xx is an error. `shown` is how the
/// webhook is named in errors (never the URL itself when it came from a secret).
pub async fn post(url: &str, body: &str, shown: &str) -> Result<u16, NotifyError> {
    post_within(url, body, shown, WEBHOOK_TIMEOUT).await
}

/// [`post`] with its own limit for the whole exchange.
pub async fn post_within(
    url: &str,
    body: &str,
    shown: &str,
    limit: Duration,
) -> Result<u16, NotifyError> {
    use http_body_util::{BodyExt, Full};
    use hyper::body::Bytes;
    use hyper_util::client::legacy::Client;
    use hyper_util::rt::TokioExecutor;

    let fail = |message: String| NotifyError::Webhook {
        target: shown.to_string(),
        message,
    };
    // The provider named here rather than through hyper-rustls's own feature, so that the AWS
    // SDK's hyper-rustls build is shared.
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_provider_and_native_roots(rustls::crypto::ring::default_provider())
        .map_err(|e| fail(format!("no root certificates: {e}")))?
        .https_or_http()
        .enable_http1()
        .build();
    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build(https);
    let request = hyper::Request::post(url)
        .header("content-type", "application/json")
        .header("user-agent", "ferry")
        .body(Full::new(Bytes::from(body.to_string())))
        .map_err(|_| fail("not a usable URL".into()))?;
    // One limit for the whole exchange, the answer's body included (read at most 4 KB of it).
    let exchange = async {
        let resp = client
            .request(request)
            .await
            .map_err(|e| fail(format!("the request failed: {}", causes(&e))))?;
        let status = resp.status().as_u16();
        if !(200..300).contains(&status) {
            let text: String = http_body_util::Limited::new(resp.into_body(), 4096)
                .collect()
                .await
                .map(|b| {
                    // Marked where it is cut, so that the masker hides the start of a secret
                    // (the hook's token, echoed) that the cut leaves.
                    let text = String::from_utf8_lossy(&b.to_bytes()).into_owned();
                    match text.char_indices().nth(200) {
                        Some((at, _)) => format!("{}…", &text[..at]),
                        None => text,
                    }
                })
                .unwrap_or_default();
            return Err(fail(format!("answered HTTP {status}: {text:?}")));
        }
        Ok(status)
    };
    let status = tokio::time::timeout(limit, exchange)
        .await
        .map_err(|_| fail(format!("no answer within {:.1}s", limit.as_secs_f64())))??;
    Ok(status)
}

fn causes(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        out.push_str(&format!(": {c}"));
        cur = c.source();
    }
    out
}

/// Publishes the notice to an SNS topic (subject and text).
pub async fn publish(
    client: &aws_sdk_sns::Client,
    topic: &str,
    notice: &Notice,
) -> Result<(), NotifyError> {
    client
        .publish()
        .topic_arn(topic)
        .subject(notice.subject())
        .message(notice.text())
        .send()
        .await
        .map(|_| ())
        .map_err(|e| NotifyError::Sns {
            topic: topic.to_string(),
            message: ferry_aws::explain("Publish", &e).to_string(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn after(items: &[(&str, Health, &str)]) -> BTreeMap<String, (Health, String)> {
        items
            .iter()
            .map(|(s, h, w)| (s.to_string(), (*h, w.to_string())))
            .collect()
    }

    #[test]
    fn only_changes_of_state_are_news() {
        use Health::*;
        let before: BTreeMap<String, Health> =
            [("api", Passing), ("db", Failing), ("web", Passing)]
                .into_iter()
                .map(|(s, h)| (s.to_string(), h))
                .collect();
        let got = changes(
            &before,
            &after(&[
                ("api", Failing, "tests failed"),
                ("db", Passing, "deployed"),
                ("web", Passing, "deployed"),
                ("new", Passing, "deployed"),
                ("broken", Failing, "deploy failed"),
            ]),
        );
        let names: Vec<(&str, Option<Health>, Health)> = got
            .iter()
            .map(|c| (c.service.as_str(), c.from, c.to))
            .collect();
        assert_eq!(
            names,
            [
                ("api", Some(Passing), Failing),
                ("broken", None, Failing),
                ("db", Some(Failing), Passing)
            ]
        );
        // Every green build after the first says nothing.
        assert!(changes(&before, &after(&[("web", Passing, "deployed")])).is_empty());
    }

    #[test]
    fn the_message_names_stage_services_commit_author_and_build() {
        let n = Notice {
            project: "shop".into(),
            stage: "prod".into(),
            changes: vec![Change {
                service: "api".into(),
                from: Some(Health::Passing),
                to: Health::Failing,
                why: "tests failed".into(),
            }],
            release: Some(ReleaseNote {
                kind: "rollback".into(),
                id: "20261202-1-abc".into(),
                from: Some("20261201-9-def".into()),
                services: vec!["api".into()],
            }),
            commit: "3e18202aaaaaaaaaaaaa".into(),
            author: Some("Ada <ada@example.com>".into()),
            build_url: Some("https://ci/run/1".into()),
        };
        assert!(n.is_news());
        assert_eq!(n.subject(), "Ferry: shop prod: rollback, 1 failing");
        let t = n.text();
        for part in [
            "rollback `20261202-1-abc` from `20261201-9-def` of api",
            "✗ `api`: passing → failing (tests failed)",
            "commit `3e18202aaaaa` by Ada <ada@example.com>",
            "build: https://ci/run/1",
        ] {
            assert!(t.contains(part), "{part} in {t}");
        }
        // The webhook's text escapes what Slack reads as markup (`<…>` links and mentions).
        let body: serde_json::Value = serde_json::from_str(&n.slack_body()).unwrap();
        assert_eq!(
            body["text"].as_str(),
            Some(t.replace('<', "&lt;").replace('>', "&gt;").as_str())
        );
        let hostile = Notice {
            stage: "feat/<!channel>&co".into(),
            ..n.clone()
        };
        let body: serde_json::Value = serde_json::from_str(&hostile.slack_body()).unwrap();
        let text = body["text"].as_str().unwrap();
        assert!(
            text.contains("feat/&lt;!channel&gt;&amp;co") && !text.contains("<!"),
            "{text}"
        );
        let quiet = Notice {
            changes: vec![],
            release: None,
            ..n
        };
        assert!(!quiet.is_news());
    }

    #[test]
    fn build_pages_of_github_and_codebuild() {
        let gh = |k: &str| match k {
            "GITHUB_SERVER_URL" => Some("https://github.com".to_string()),
            "GITHUB_REPOSITORY" => Some("acme/shop".to_string()),
            "GITHUB_RUN_ID" => Some("42".to_string()),
            _ => None,
        };
        assert_eq!(
            build_url(&gh).as_deref(),
            Some("https://github.com/acme/shop/actions/runs/42")
        );
        let cb = |k: &str| {
            (k == "CODEBUILD_BUILD_ARN").then(|| {
                "arn:aws:codebuild:eu-west-1:111122223333:build/shop-deploy:b1e6-61e".to_string()
            })
        };
        assert_eq!(
            build_url(&cb).as_deref(),
            Some(
                "https://eu-west-1.console.aws.amazon.com/codesuite/codebuild/111122223333/projects/shop-deploy/build/shop-deploy%3Ab1e6-61e/?region=eu-west-1"
            )
        );
        assert_eq!(build_url(&|_| None), None);
    }

    /// A receiver on 127.0.0.1 that answers `status` and hands back what it got.
    async fn receiver(status: u16) -> (String, tokio::task::JoinHandle<String>) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", l.local_addr().unwrap());
        let h = tokio::spawn(async move {
            let (mut s, _) = l.accept().await.unwrap();
            let mut got = Vec::new();
            let mut buf = [0u8; 4096];
            loop {
                let n = s.read(&mut buf).await.unwrap();
                got.extend_from_slice(&buf[..n]);
                let text = String::from_utf8_lossy(&got);
                if let Some((head, body)) = text.split_once("\r\n\r\n") {
                    let len: usize = head
                        .lines()
                        .find_map(|l| {
                            l.to_ascii_lowercase()
                                .strip_prefix("content-length:")
                                .map(|v| v.trim().parse().unwrap())
                        })
                        .unwrap_or(0);
                    if body.len() >= len {
                        break;
                    }
                }
                if n == 0 {
                    break;
                }
            }
            let reply =
                format!("HTTP/1.1 {status} X\r\ncontent-length: 2\r\nconnection: close\r\n\r\nno");
            s.write_all(reply.as_bytes()).await.unwrap();
            String::from_utf8_lossy(&got).into_owned()
        });
        (url, h)
    }

    #[tokio::test]
    async fn a_webhook_that_stalls_in_its_answer_is_cut_off() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", l.local_addr().unwrap());
        let _server = tokio::spawn(async move {
            let (mut s, _) = l.accept().await.unwrap();
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf).await;
            // Headers of a refusal with a long body, then nothing.
            s.write_all(b"HTTP/1.1 500 X\r\ncontent-length: 100000\r\n\r\nstart")
                .await
                .unwrap();
            tokio::time::sleep(Duration::from_secs(30)).await;
        });
        let t = std::time::Instant::now();
        let e = post_within(&url, "{}", "slow", Duration::from_millis(300))
            .await
            .unwrap_err()
            .to_string();
        assert_eq!(e, "webhook slow: no answer within 0.3s");
        assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
    }

    #[tokio::test]
    async fn a_webhook_gets_the_json_and_a_refusal_is_an_error() {
        let (url, got) = receiver(200).await;
        assert_eq!(post(&url, r#"{"text":"hi"}"#, "hook 1").await.unwrap(), 200);
        let req = got.await.unwrap();
        assert!(req.starts_with("POST /hook HTTP/1.1"), "{req}");
        assert!(req.contains("content-type: application/json"), "{req}");
        assert!(req.ends_with(r#"{"text":"hi"}"#), "{req}");

        let (url, _) = receiver(500).await;
        let e = post(&url, "{}", "hook 2").await.unwrap_err().to_string();
        assert_eq!(e, "webhook hook 2: answered HTTP 500: \"no\"");
        // Nothing listens: an error naming the webhook as shown, never its URL.
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let closed = format!("http://{}/secret-token", l.local_addr().unwrap());
        drop(l);
        let e = post(&closed, "{}", "ssm:/shop/hook")
            .await
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("webhook ssm:/shop/hook: the request failed"),
            "{e}"
        );
        assert!(!e.contains("secret-token"), "{e}");
    }
}
