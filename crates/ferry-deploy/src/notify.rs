//! Announcing a run's changes of state (`[notifications]`): each service's health after the run
//! from its report and tests, compared with the health the stage keeps (`RecordStore::health`);
//! a failure, a recovery, a promote or a rollback goes to the webhooks and the SNS topic. A
//! webhook or topic that fails is reported and never fails the run.

use std::collections::BTreeMap;

use ferry_manifest::{Webhook, Workspace};
use ferry_notify::{Notice, ReleaseNote};
use ferry_records::Health;
use ferry_releases::{Release, ReleaseKind};

use crate::{ServiceReport, ServiceResult, StageAccess};

/// What announcing did.
#[derive(Debug, Default)]
pub struct Announced {
    /// The notice, when there was news.
    pub notice: Option<Notice>,
    /// Where it went (webhooks as configured: a URL, or `ssm:<name>`; `sns:<arn>`).
    pub sent: Vec<String>,
    /// What failed, each a sentence (masked).
    pub failed: Vec<String>,
}

/// Each service's health as this run shows it, and why: a failed deploy or failed tests is
/// failing; a deploy followed by passing tests, or of a service without tests, is passing. A
/// service the run did not deploy or test (up to date, skipped, cancelled, its tests skipped
/// after a dependency's failed, or stopped by a cancel before they ended) shows nothing.
pub fn health_after(
    ws: &Workspace,
    services: &[ServiceReport],
    tests: Option<&ferry_acceptance::Report>,
) -> BTreeMap<String, (Health, String)> {
    let mut out = BTreeMap::new();
    for s in services {
        let has_tests = ws.service(&s.name).is_some_and(|x| x.acceptance.is_some());
        match &s.result {
            // Deployed, its tests stopped by a cancel: no outcome, so no news (before, every
            // cancel of a job during tests was announced as a failure, and the next run as a
            // recovery).
            r if r.tests_stopped() => {}
            ServiceResult::Failed { .. } => {
                out.insert(s.name.clone(), (Health::Failing, "deploy failed".into()));
            }
            ServiceResult::Deployed { .. } if !has_tests => {
                out.insert(s.name.clone(), (Health::Passing, "deployed".into()));
            }
            _ => {}
        }
    }
    for o in tests.map(|t| t.outcomes.as_slice()).unwrap_or_default() {
        let entry = match &o.status {
            ferry_acceptance::Status::Passed => (Health::Passing, "tests passed".to_string()),
            // Tests that ran and failed; one skipped (a dependency's failed first) never ran,
            // so says nothing of the service (it was marked failing for good: one without
            // tests of its own never passes again).
            ferry_acceptance::Status::Failed { .. } | ferry_acceptance::Status::TimedOut { .. } => {
                (Health::Failing, "tests failed".to_string())
            }
            _ => continue,
        };
        out.insert(o.service.clone(), entry);
    }
    out
}

/// Keeps the health of the services in `moved`: one parameter per service, so that siblings
/// deploying at once never undo each other's. A failure is said in `failed`.
async fn keep_health(
    records: &ferry_records::RecordStore,
    masker: &ferry_credentials::Masker,
    moved: &[(String, Health)],
    failed: &mut Vec<String>,
) {
    for (service, h) in moved {
        if let Err(e) = records.write_health(service, *h).await {
            failed.push(masker.mask(&format!(
                "notifications: failed to keep the health of `{service}` (the next run may announce its change again): {e}"
            )));
        }
    }
}

/// Announces what a run's `services` (and `tests`, `release`) changed in the stage, when
/// `[notifications]` covers it: updates the stage's health, and sends a notice when there is
/// news. A run that only tested (`test-acceptance`) gives no services.
pub async fn announce(
    access: &StageAccess<'_>,
    services: &[ServiceReport],
    tests: Option<&ferry_acceptance::Report>,
    release: Option<&Release>,
    commit: &str,
) -> Announced {
    let StageAccess {
        ws,
        stage,
        config,
        records,
        masker,
        ..
    } = *access;
    let n = &ws.project.notifications;
    let mut out = Announced::default();
    if !n.covers(&stage.name, stage.preview) {
        return out;
    }
    let after = health_after(ws, services, tests);
    let before = match records.health().await {
        Ok(h) => h,
        Err(e) => {
            out.failed.push(masker.mask(&format!(
                "notifications: failed to read the stage's health, so nothing was announced: {e}"
            )));
            return out;
        }
    };
    let changes = ferry_notify::changes(&before, &after);
    // The services whose health moved, a first passing too, so that a later failure is a
    // change. Kept only once the news went somewhere: news no target took is announced again
    // by the next run.
    let moved: Vec<(String, Health)> = after
        .iter()
        .filter(|(service, (h, _))| before.get(*service) != Some(h))
        .map(|(service, (h, _))| (service.clone(), *h))
        .collect();
    let release = release
        .filter(|r| matches!(r.kind, ReleaseKind::Promote | ReleaseKind::Rollback))
        .map(|r| ReleaseNote {
            kind: r.kind.to_string(),
            id: r.id.clone(),
            from: r.from.clone().or_else(|| r.restores.clone()),
            services: r.deployed.clone(),
        });
    let repo = ferry_changes::Repo::open(&ws.root).ok();
    let notice = Notice {
        project: ws.project.name.clone(),
        stage: stage.name.clone(),
        changes,
        release,
        commit: commit.to_string(),
        author: repo.and_then(|r| r.author_of(commit)),
        build_url: ferry_notify::build_url(&|k| std::env::var(k).ok()),
    };
    if !notice.is_news() {
        keep_health(records, masker, &moved, &mut out.failed).await;
        return out;
    }
    let body = masker.mask(&notice.slack_body());
    let ssm = aws_sdk_ssm::Client::new(config);
    // Each webhook's URL first, then every post at once: a slow webhook (each may take up to
    // its time limit) holds up no other.
    let mut posts = tokio::task::JoinSet::new();
    for (i, hook) in n.webhooks.iter().enumerate() {
        let (url, shown) = match hook {
            Webhook::Url(u) => (u.clone(), ferry_manifest::shown_url(u)),
            Webhook::Ssm(name) => {
                let shown = format!("ssm:{name}");
                match ssm
                    .get_parameter()
                    .name(name)
                    .with_decryption(true)
                    .send()
                    .await
                {
                    Ok(p) => match p.parameter().and_then(|p| p.value()) {
                        Some(v) => {
                            // The URL is a secret: masked wherever it could reappear, and so
                            // are its token-like pieces, which an error page may echo alone.
                            masker.register(v);
                            for piece in secret_pieces(v) {
                                masker.register(piece);
                            }
                            // It goes out only as one in ferry.toml may (its token never in
                            // clear text); the error leaves the URL out.
                            if ferry_manifest::check_webhook_url(v).is_err() {
                                out.failed.push(format!(
                                    "webhook {shown}: the parameter does not hold an https URL (plain http only to a loopback address); nothing was sent to it"
                                ));
                                continue;
                            }
                            (v.to_string(), shown)
                        }
                        None => {
                            out.failed
                                .push(format!("webhook {shown}: the parameter is empty"));
                            continue;
                        }
                    },
                    Err(e) => {
                        out.failed.push(format!(
                            "webhook {shown}: {}",
                            ferry_aws::explain("GetParameter", &e)
                        ));
                        continue;
                    }
                }
            }
        };
        let body = body.clone();
        posts.spawn(async move {
            (
                i,
                shown.clone(),
                ferry_notify::post(&url, &body, &shown).await,
            )
        });
    }
    // Said in the order ferry.toml lists them.
    let mut posted = posts.join_all().await;
    posted.sort_by_key(|(i, ..)| *i);
    for (_, shown, result) in posted {
        match result {
            Ok(_) => out.sent.push(shown),
            Err(e) => out.failed.push(masker.mask(&e.to_string())),
        }
    }
    if let Some(topic) = &n.sns_topic {
        // In the topic's region, which may not be the stage's (one topic for every stage).
        let mut sns_config = aws_sdk_sns::config::Builder::from(config);
        if let Some([_, _, _, region, _, _]) = ferry_manifest::arn_fields(topic)
            && !region.is_empty()
        {
            sns_config.set_region(Some(aws_sdk_sns::config::Region::new(region.to_string())));
        }
        let sns = aws_sdk_sns::Client::from_conf(sns_config.build());
        match ferry_notify::publish(&sns, topic, &notice).await {
            Ok(()) => out.sent.push(format!("sns:{topic}")),
            Err(e) => out.failed.push(masker.mask(&e.to_string())),
        }
    }
    let targets = n.webhooks.len() + usize::from(n.sns_topic.is_some());
    if out.sent.is_empty() && targets > 0 {
        out.failed.push(
            "notifications: no target took the news, so the stage's health was left as it was: the next run announces it again".to_string(),
        );
    } else {
        keep_health(records, masker, &moved, &mut out.failed).await;
    }
    out.notice = Some(notice);
    out
}

/// The parts of a webhook URL that may be its token on their own: the path with its query, and
/// each path segment or query value of at least 8 characters holding a digit (long enough
/// not to mask ordinary words such as `services`).
fn secret_pieces(url: &str) -> Vec<&str> {
    let Some(after_scheme) = url.split_once("://").map(|(_, rest)| rest) else {
        return Vec::new();
    };
    let Some(slash) = after_scheme.find('/') else {
        return Vec::new();
    };
    let path_and_query = &after_scheme[slash..];
    let mut out = Vec::new();
    if path_and_query.len() >= 8 {
        out.push(path_and_query);
    }
    out.extend(
        path_and_query
            .split(['/', '?', '&', '=', '#'])
            .filter(|p| p.len() >= 8 && p.bytes().any(|b| b.is_ascii_digit())),
    );
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_webhooks_token_is_masked_in_pieces_too() {
        assert_eq!(
            super::secret_pieces("https://hooks.slack.com/services/T0001/B0002/XyZ123abcDEF456"),
            ["/services/T0001/B0002/XyZ123abcDEF456", "XyZ123abcDEF456"]
        );
        assert_eq!(
            super::secret_pieces("http://127.0.0.1:18765/hook/T0KENxyz?sig=abc12345678"),
            ["/hook/T0KENxyz?sig=abc12345678", "T0KENxyz", "abc12345678"]
        );
        assert!(super::secret_pieces("https://example.com").is_empty());
    }

    // Deployed, its tests stopped by a cancel (Ctrl-C, a CI's cancel): no outcome, no news.
    // Before, it was announced as "passing → failing (deploy failed)", and the next run as a
    // recovery.
    #[test]
    fn tests_a_cancel_stopped_leave_the_health_alone() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("ferry.toml"),
            "[project]\nname = \"shop\"\n\n[stages.dev]\nregion = \"us-east-1\"\n",
        )
        .unwrap();
        std::fs::create_dir_all(dir.path().join("services/api")).unwrap();
        std::fs::write(
            dir.path().join("services/api/service.toml"),
            "[service]\ntemplate = \"t.yaml\"\n\n[acceptance]\ncommand = [\"true\"]\n",
        )
        .unwrap();
        std::fs::write(dir.path().join("services/api/t.yaml"), "Resources: {}\n").unwrap();
        let ws = ferry_manifest::load(dir.path()).unwrap();
        let report = |result| crate::ServiceReport {
            name: "api".into(),
            kind: None,
            stack: "api-dev".into(),
            result,
            duration: std::time::Duration::ZERO,
            tests: None,
            why: String::new(),
        };
        let stopped = crate::ServiceResult::Failed {
            error: std::sync::Arc::new(crate::ServiceError::TestsStopped {
                action: "deployed (updated)".into(),
            }),
        };
        assert!(super::health_after(&ws, &[report(stopped)], None).is_empty());
        let failed = crate::ServiceResult::Failed {
            error: std::sync::Arc::new(crate::ServiceError::StackNameDiffers {
                service: "api".into(),
                framework: "a".into(),
                ferry: "b".into(),
            }),
        };
        assert_eq!(
            super::health_after(&ws, &[report(failed)], None)["api"].0,
            ferry_records::Health::Failing
        );
    }

    // Tests skipped because a dependency's failed never ran: the service's health stays as it
    // was. (It was marked failing, and one without tests of its own never passed again.)
    #[test]
    fn tests_skipped_after_a_dependencys_failed_leave_the_health_alone() {
        use ferry_acceptance::{Report, Status, TestOutcome};
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("ferry.toml"),
            "[project]\nname = \"shop\"\n\n[stages.dev]\nregion = \"us-east-1\"\n",
        )
        .unwrap();
        std::fs::create_dir_all(dir.path().join("services/db")).unwrap();
        std::fs::write(
            dir.path().join("services/db/service.toml"),
            "[service]\ntemplate = \"t.yaml\"\n",
        )
        .unwrap();
        std::fs::write(dir.path().join("services/db/t.yaml"), "Resources: {}\n").unwrap();
        let ws = ferry_manifest::load(dir.path()).unwrap();
        let outcome = |service: &str, status| TestOutcome {
            service: service.into(),
            status,
            duration: std::time::Duration::ZERO,
            cases: Vec::new(),
            output: Vec::new(),
        };
        let report = Report {
            outcomes: vec![
                outcome(
                    "db",
                    Status::Failed {
                        message: "exit 1".into(),
                    },
                ),
                outcome(
                    "api",
                    Status::Skipped {
                        failed_dependency: "db".into(),
                    },
                ),
                outcome("web", Status::Passed),
            ],
        };
        let health = super::health_after(&ws, &[], Some(&report));
        let got: Vec<(&str, ferry_records::Health)> =
            health.iter().map(|(s, (h, _))| (s.as_str(), *h)).collect();
        assert_eq!(
            got,
            [
                ("db", ferry_records::Health::Failing),
                ("web", ferry_records::Health::Passing)
            ]
        );
    }
}
