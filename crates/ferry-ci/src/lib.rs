#![doc = include_str!("../README.md")]
//! Where Ferry runs, read from environment variables.
//!
//! [`CiContext::from_vars`] is a pure function of a variable lookup, so every CI's conventions are
//! tested without touching the process environment; [`CiContext::from_env`] reads the real one.
//! The variables each CI sets are listed beside the code that reads them.

pub mod refs;
mod rules;

use serde::Serialize;

pub use refs::{Ended, LiveRefs, ended, pull_request_number};
pub use rules::{CiStage, NoRule, StageMatch, StageRules, glob_match};

/// The CI system, or none.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Provider {
    CodeBuild,
    GithubActions,
    /// `CI=true` from some other system.
    OtherCi,
    /// A developer's machine.
    Local,
}

/// What triggered the build, where the CI says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Trigger {
    PullRequest { id: String },
    Branch { name: String },
    Tag { name: String },
    Unknown,
}

/// A typed view of where Ferry runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CiContext {
    pub provider: Provider,
    pub trigger: Trigger,
    /// The commit being built, as the CI reports it (a fresh checkout needs no working-tree scan).
    pub commit: Option<String>,
    /// The build id, e.g. `project:uuid` on CodeBuild or the run id on GitHub.
    pub build_id: Option<String>,
    /// The variable the trigger was read from, for messages (`CODEBUILD_WEBHOOK_TRIGGER=pr/42`).
    pub trigger_source: Option<String>,
    /// `FORCE_DEPLOY_ALL=true`, as in the scripts Ferry replaces.
    pub force_deploy_all: bool,
    /// The batch this build is a node of (one deploy spread over many CI machines), shared by
    /// every node: `FERRY_BATCH_ID` when set; on GitHub Actions `github-<GITHUB_RUN_ID>` (all the
    /// jobs of a workflow run, and its re-runs); on a CodeBuild batch build
    /// (`CODEBUILD_BATCH_BUILD_IDENTIFIER` set) `codebuild-<commit>-<CODEBUILD_WEBHOOK_TRIGGER>`
    /// (`codebuild-<commit>` without a trigger), since CodeBuild gives the nodes no shared batch
    /// id: two batch builds of one commit and trigger to one stage share a lock.
    pub batch_id: Option<String>,
    /// The branch or pull request this build's event ends (a pull request merged or closed, a
    /// branch deleted): its preview is to be removed, never deployed again. Not serialised.
    #[serde(skip)]
    pub ended: Vec<Ended>,
    /// Why GitHub's event file (`GITHUB_EVENT_PATH`) could not be read, when it could not: what
    /// it would have said (a pull request closed, its number) is then unknown. Not serialised.
    #[serde(skip)]
    pub event_error: Option<String>,
}

/// GitHub caps a webhook's payload at 25 MB; an event file is never larger.
const MAX_EVENT_FILE: u64 = 25 * 1024 * 1024;

/// The text of GitHub's event file: a regular file of at most [`MAX_EVENT_FILE`] bytes (never a
/// device or a pipe, which could be read forever) holding JSON, else why not.
fn read_event_file(path: &std::path::Path) -> Result<String, String> {
    use std::io::Read as _;
    let shown = path.display();
    // Looked at before it is opened: opening a named pipe waits for a writer.
    let meta = std::fs::metadata(path).map_err(|e| format!("{shown}: {e}"))?;
    if !meta.is_file() {
        return Err(format!("{shown} is not a regular file"));
    }
    if meta.len() > MAX_EVENT_FILE {
        return Err(format!(
            "{shown} is larger than GitHub's 25 MB limit of an event"
        ));
    }
    let file = std::fs::File::open(path).map_err(|e| format!("{shown}: {e}"))?;
    let mut text = String::new();
    file.take(MAX_EVENT_FILE)
        .read_to_string(&mut text)
        .map_err(|e| format!("{shown}: {e}"))?;
    serde_json::from_str::<serde_json::Value>(&text)
        .map_err(|e| format!("{shown} is not JSON ({e})"))?;
    Ok(text)
}

/// A character that shows nothing or turns the text around it (a byte-order mark, a soft
/// hyphen, a zero-width or invisible operator, a line or paragraph separator, a mark,
/// embedding or isolate of text direction): refused in the one-line text a CI or a person
/// passes Ferry (a stage's name, a live ref, a gate override's reason), where it would hide what is read.
pub fn hides_or_steers(c: char) -> bool {
    matches!(
        c,
        '\u{00ad}'
            | '\u{061c}'
            | '\u{180e}'
            | '\u{feff}'
            | '\u{fff9}'..='\u{fffb}'
            | '\u{200b}'..='\u{200f}'
            | '\u{2028}'..='\u{202e}'
            | '\u{2060}'..='\u{2064}'
            | '\u{2066}'..='\u{2069}'
    )
}

/// A control character or one [`hides_or_steers`]: what a name or a line of text shown to a
/// person (a stage's name, a gate override's reason) may not hold.
pub fn unseen(c: char) -> bool {
    c.is_control() || hides_or_steers(c)
}

/// `text` from outside Ferry (an AWS answer's reason, a lock's holder, a tag) as one line a
/// person reads: a line break or a tab is a space, any other [`unseen`] character is written
/// as its code (`\u{1b}`), so that it can neither steer a terminal nor forge a line of its own.
pub fn one_line(text: &str) -> std::borrow::Cow<'_, str> {
    escaped(text, |c| matches!(c, '\n' | '\r' | '\t').then_some(' '))
}

/// `text` as a terminal may show it: every [`unseen`] character but a line break and a tab
/// written as its code (`\u{1b}`), so that an escape sequence in it can neither set the
/// terminal's title, clear it nor move the cursor to forge what was printed.
pub fn printable(text: &str) -> std::borrow::Cow<'_, str> {
    escaped(text, |c| matches!(c, '\n' | '\t').then_some(c))
}

/// `text` with each [`unseen`] character written as `plain` gives it, else as its code.
fn escaped(text: &str, plain: impl Fn(char) -> Option<char>) -> std::borrow::Cow<'_, str> {
    let changed = |c: char| unseen(c) && plain(c) != Some(c);
    if !text.chars().any(changed) {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match plain(c) {
            Some(p) if unseen(c) => out.push(p),
            _ if unseen(c) => out.extend(c.escape_unicode()),
            _ => out.push(c),
        }
    }
    std::borrow::Cow::Owned(out)
}

/// `text` as a part of a batch id (letters, digits, `-`, `_`, `.`, `:`, `/`), at most `max`
/// characters: as it is when it fits; else any other character as `_`, cut, and ended by 8 hex
/// digits of its SHA-256, so that two triggers alike in their first characters, or but for
/// such a character (`a+b`, `a_b`), stay two batches.
fn batch_id_part(text: &str, max: usize) -> String {
    let allowed = |c: char| c.is_ascii_alphanumeric() || "-_.:/".contains(c);
    if text.len() <= max && text.chars().all(allowed) {
        return text.to_string();
    }
    use sha2::Digest as _;
    let digest = sha2::Sha256::digest(text.as_bytes());
    let hex: String = digest[..4].iter().map(|b| format!("{b:02x}")).collect();
    let kept: String = text
        .chars()
        .map(|c| if allowed(c) { c } else { '_' })
        .take(max - hex.len() - 1)
        .collect();
    format!("{kept}-{hex}")
}

/// A yes/no variable's value (`FORCE_DEPLOY_ALL`, `CI`): `true`, `1` or `yes` is yes; `false`,
/// `0`, `no` or empty is no, in any case and with spaces around; anything else, `None`.
pub fn flag(value: &str) -> Option<bool> {
    match value.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" => Some(true),
        "" | "false" | "0" | "no" => Some(false),
        _ => None,
    }
}

impl CiContext {
    /// Reads the process environment (and, on GitHub Actions, the event file
    /// `GITHUB_EVENT_PATH` names).
    pub fn from_env() -> Self {
        let event = std::env::var_os("GITHUB_EVENT_PATH")
            .filter(|p| !p.is_empty() && std::env::var_os("GITHUB_ACTIONS").is_some())
            .map(|p| read_event_file(std::path::Path::new(&p)));
        let mut ctx = Self::from_vars_and_event(
            |k| std::env::var(k).ok(),
            event.as_ref().and_then(|e| e.as_deref().ok()),
        );
        let set = |k: &str| std::env::var_os(k).is_some_and(|v| !v.is_empty());
        ctx.event_error = match event {
            Some(e) => e.err(),
            // GitHub Actions always writes the event; without it a closed pull request's build
            // looks like one to deploy.
            None if set("GITHUB_ACTIONS") && set("GITHUB_EVENT_NAME") => Some(
                "GITHUB_EVENT_PATH is not set, though GITHUB_ACTIONS and GITHUB_EVENT_NAME are"
                    .to_string(),
            ),
            None => None,
        };
        ctx
    }

    /// Reads variables through `var`; empty values count as unset.
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Self {
        Self::from_vars_and_event(var, None)
    }

    /// [`from_vars`](Self::from_vars) with the text of GitHub's event file, which gives a
    /// `pull_request_target` build its pull request's number (its `GITHUB_REF` names the base
    /// branch).
    pub fn from_vars_and_event(
        var: impl Fn(&str) -> Option<String>,
        event_file: Option<&str>,
    ) -> Self {
        let get = |k: &str| var(k).filter(|v| !v.trim().is_empty());
        let truthy = |k: &str| get(k).is_some_and(|v| flag(&v) == Some(true));
        let force_deploy_all = truthy("FORCE_DEPLOY_ALL");
        let ended = refs::ended(&|k: &str| var(k), event_file);
        let explicit_batch = get("FERRY_BATCH_ID").map(|b| b.trim().to_string());

        // A GitHub Actions job on a runner CodeBuild hosts may see CodeBuild's variables too:
        // GitHub's describe its event (a pull request's workflow), CodeBuild's only the runner's.
        // Read as CodeBuild, a pull request's job could change named stages.
        if (get("CODEBUILD_BUILD_ID").is_some()
            || get("CODEBUILD_RESOLVED_SOURCE_VERSION").is_some())
            && !truthy("GITHUB_ACTIONS")
        {
            let raw = get("CODEBUILD_WEBHOOK_TRIGGER");
            let trigger = match raw.as_deref() {
                Some(t) if t.starts_with("pr/") => Trigger::PullRequest {
                    id: t[3..].to_string(),
                },
                Some(t) if t.starts_with("branch/") => Trigger::Branch {
                    name: t[7..].to_string(),
                },
                Some(t) if t.starts_with("tag/") => Trigger::Tag {
                    name: t[4..].to_string(),
                },
                _ => Trigger::Unknown,
            };
            return CiContext {
                provider: Provider::CodeBuild,
                trigger,
                commit: get("CODEBUILD_RESOLVED_SOURCE_VERSION"),
                build_id: get("CODEBUILD_BUILD_ID"),
                trigger_source: raw
                    .clone()
                    .map(|r| format!("CODEBUILD_WEBHOOK_TRIGGER={r}")),
                force_deploy_all,
                batch_id: explicit_batch.or_else(|| {
                    get("CODEBUILD_BATCH_BUILD_IDENTIFIER")?;
                    let commit = get("CODEBUILD_RESOLVED_SOURCE_VERSION")?;
                    // The trigger too: the batch builds of one commit pushed to two branches
                    // are two batches (one's finish released the lock under the other's nodes).
                    Some(match raw.as_deref() {
                        Some(t) => format!("codebuild-{commit}-{}", batch_id_part(t, 60)),
                        None => format!("codebuild-{commit}"),
                    })
                }),
                ended,
                event_error: None,
            };
        }
        if truthy("GITHUB_ACTIONS") {
            let event = get("GITHUB_EVENT_NAME");
            let ref_name = get("GITHUB_REF_NAME").unwrap_or_default();
            // A pull request's ref (`refs/pull/9/merge`), whatever the event: reviews and
            // review comments run on it too, with the pull request's unmerged code.
            let pull_ref = get("GITHUB_REF").and_then(|r| {
                r.strip_prefix("refs/pull/")
                    .map(|p| p.split('/').next().unwrap_or(p).to_string())
            });
            // A merge queue's ref, `refs/heads/gh-readonly-queue/<base>/pr-<n>-<sha>`: the
            // pull request's code before it merges.
            let queued = || {
                let r = get("GITHUB_REF")?;
                let rest = r.strip_prefix("refs/heads/gh-readonly-queue/")?;
                let pr = rest.rsplit('/').next()?.strip_prefix("pr-")?;
                Some(pr.split('-').next().unwrap_or(pr).to_string())
            };
            let trigger = match (event.as_deref(), get("GITHUB_REF_TYPE").as_deref()) {
                (Some("merge_group"), _) => Trigger::PullRequest {
                    // A queue ref of another shape: its last part, never a path, and marked so
                    // that it is never taken for a number.
                    id: queued().unwrap_or_else(|| {
                        format!(
                            "queue ref {}",
                            ref_name.rsplit('/').next().unwrap_or(&ref_name)
                        )
                    }),
                },
                (Some(e), _) if e != "pull_request_target" && pull_ref.is_some() => {
                    Trigger::PullRequest {
                        id: pull_ref.clone().unwrap_or_default(),
                    }
                }
                (
                    Some(
                        "pull_request"
                        | "pull_request_target"
                        | "pull_request_review"
                        | "pull_request_review_comment",
                    ),
                    _,
                ) => {
                    // `pull_request_target` runs on the base branch (GITHUB_REF names it): the
                    // event's number tells pull requests apart then. With no event file only
                    // the pull request's own head branch is known, marked so that it is never
                    // taken for a number (a branch named `7` is not pull request 7): such a
                    // build gets no preview stage.
                    let number = || -> Option<String> {
                        let text = event_file?;
                        let json: serde_json::Value = serde_json::from_str(text).ok()?;
                        Some(json["number"].as_u64()?.to_string())
                    };
                    let id = pull_ref.clone().or_else(number).unwrap_or_else(|| {
                        match get("GITHUB_HEAD_REF") {
                            Some(head) => format!("head branch {head}"),
                            None => format!("ref {ref_name}"),
                        }
                    });
                    Trigger::PullRequest { id }
                }
                (_, Some("tag")) => Trigger::Tag { name: ref_name },
                (_, Some("branch")) => Trigger::Branch { name: ref_name },
                _ => Trigger::Unknown,
            };
            return CiContext {
                provider: Provider::GithubActions,
                trigger,
                commit: get("GITHUB_SHA"),
                build_id: get("GITHUB_RUN_ID"),
                trigger_source: event.map(|e| format!("GITHUB_EVENT_NAME={e}")),
                force_deploy_all,
                batch_id: explicit_batch
                    .or_else(|| get("GITHUB_RUN_ID").map(|r| format!("github-{r}"))),
                ended,
                event_error: None,
            };
        }
        CiContext {
            provider: if truthy("CI") {
                Provider::OtherCi
            } else {
                Provider::Local
            },
            trigger: Trigger::Unknown,
            commit: None,
            build_id: None,
            trigger_source: None,
            force_deploy_all,
            batch_id: explicit_batch,
            ended,
            event_error: None,
        }
    }

    pub fn is_ci(&self) -> bool {
        self.provider != Provider::Local
    }

    pub fn is_pull_request(&self) -> bool {
        matches!(self.trigger, Trigger::PullRequest { .. })
    }

    /// Whether `command` may change stage `stage` (a preview stage when `preview`) from this
    /// build. A pull request's build runs code nobody has merged yet: it never changes a named
    /// stage (a deploy plans there, acceptance tests are skipped, everything else is refused);
    /// it may change preview stages (its own, deployed by `deploy --from-ci`, and their
    /// removal when it closes).
    pub fn check_may_change(
        &self,
        command: &str,
        stage: &str,
        preview: bool,
    ) -> Result<(), PullRequestBuild> {
        self.refuse(command, stage, preview, String::new())
    }

    /// [`check_may_change`](Self::check_may_change) for writing the SSM parameter `name` (a
    /// full name) in stage `stage`: a preview stage's own only under its `parameters_path`, and
    /// never under one of `named` (the named stages' parameters and records paths, which a
    /// previews' path may hold), as any other name is not the preview's.
    pub fn check_may_write_parameter(
        &self,
        stage: &str,
        preview: bool,
        name: &str,
        parameters_path: Option<&str>,
        named: &[String],
    ) -> Result<(), PullRequestBuild> {
        let under = |path: &str| {
            name.strip_prefix(path.trim_end_matches('/'))
                .is_some_and(|rest| rest.starts_with('/'))
        };
        let own = parameters_path.is_some_and(under);
        let theirs = named.iter().find(|p| under(p));
        let detail = match theirs {
            _ if !preview => String::new(),
            Some(path) => format!(" through SSM name {name}, under a named stage's path ({path})"),
            None if !own => format!(
                " through SSM name {name}, outside its parameters-path ({})",
                parameters_path.unwrap_or("none")
            ),
            None => String::new(),
        };
        let own = own && theirs.is_none();
        self.refuse("param set", stage, preview && own, detail)
    }

    fn refuse(
        &self,
        command: &str,
        stage: &str,
        allowed: bool,
        detail: String,
    ) -> Result<(), PullRequestBuild> {
        match &self.trigger {
            Trigger::PullRequest { id } if !allowed => Err(PullRequestBuild {
                command: command.to_string(),
                stage: stage.to_string(),
                detail,
                pull_request: refs::pull_request_number(id).unwrap_or(id).to_string(),
                trigger_source: self.trigger_source.clone().unwrap_or_default(),
            }),
            _ => Ok(()),
        }
    }
}

/// A command refused in a pull request's build, because it would change a named stage.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "`{command}` would change stage `{stage}`{detail}, and this is the build of pull request {pull_request}{}, which never changes a named stage (it plans, and deploys only the preview stage [ci] pull-requests gives it); run `{command}` from a branch or tag build, or by hand",
    if trigger_source.is_empty() { String::new() } else { format!(" ({trigger_source})") }
)]
pub struct PullRequestBuild {
    pub command: String,
    pub stage: String,
    /// How the command would reach beyond a preview stage, if that is the refusal (empty when
    /// the stage itself is a named one).
    pub detail: String,
    pub pull_request: String,
    /// The variable that says so (`CODEBUILD_WEBHOOK_TRIGGER=pr/9`), empty when unknown.
    pub trigger_source: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_from_outside_steers_no_terminal() {
        for plain in ["plain\ttext\nnext line", "plain text"] {
            assert!(matches!(printable(plain), std::borrow::Cow::Borrowed(_)));
        }
        assert!(matches!(
            one_line("plain text"),
            std::borrow::Cow::Borrowed(_)
        ));
        assert_eq!(
            printable("a\u{1b}]0;pwned\u{7}b\rc\u{202e}d"),
            "a\\u{1b}]0;pwned\\u{7}b\\u{d}c\\u{202e}d"
        );
        assert_eq!(
            one_line("a\nerror: FORGED\r\tb\u{1b}]0;x\u{7}\u{202e}c"),
            "a error: FORGED  b\\u{1b}]0;x\\u{7}\\u{202e}c"
        );
    }

    /// A GitHub Actions job on a runner CodeBuild hosts sees CodeBuild's variables beside
    /// GitHub's: a pull request's workflow there was read as a CodeBuild build of no known
    /// trigger, and deployed named stages.
    #[test]
    fn a_github_job_on_a_codebuild_runner_is_read_as_github_s() {
        let vars = [
            ("CI", "true"),
            ("CODEBUILD_BUILD_ID", "runner:1"),
            ("CODEBUILD_RESOLVED_SOURCE_VERSION", "abc"),
            ("GITHUB_ACTIONS", "true"),
            ("GITHUB_EVENT_NAME", "pull_request"),
            ("GITHUB_REF", "refs/pull/7/merge"),
            ("GITHUB_REF_NAME", "7/merge"),
            ("GITHUB_SHA", "def"),
        ];
        let ci = CiContext::from_vars(|k| {
            vars.iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.to_string())
        });
        assert_eq!(ci.provider, Provider::GithubActions);
        assert!(ci.is_pull_request(), "{:?}", ci.trigger);
        assert!(ci.check_may_change("deploy", "dev", false).is_err());
        assert_eq!(ci.commit.as_deref(), Some("def"));
    }

    #[test]
    fn a_pull_requests_build_changes_no_named_stage() {
        let vars = [
            ("CODEBUILD_BUILD_ID", "shop:1"),
            ("CODEBUILD_WEBHOOK_TRIGGER", "pr/9"),
        ];
        let pr = CiContext::from_vars(|k| {
            vars.iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.to_string())
        });
        let err = pr.check_may_change("promote", "prod", false).unwrap_err();
        assert_eq!(
            err.to_string(),
            "`promote` would change stage `prod`, and this is the build of pull request 9 (CODEBUILD_WEBHOOK_TRIGGER=pr/9), which never changes a named stage (it plans, and deploys only the preview stage [ci] pull-requests gives it); run `promote` from a branch or tag build, or by hand"
        );
        assert_eq!(pr.check_may_change("remove", "pr-9", true), Ok(()));
        // A preview's own parameters, under its parameters-path, and nothing else.
        let path = Some("/shop/preview/");
        assert_eq!(
            pr.check_may_write_parameter("pr-9", true, "/shop/preview/pr-9/x", path, &[]),
            Ok(())
        );
        for name in [
            "/ferry/shop/dev/records/db",
            "/shop/previewx",
            "/shop/dev/x",
        ] {
            let err = pr
                .check_may_write_parameter("pr-9", true, name, path, &[])
                .unwrap_err();
            assert!(
                err.to_string().starts_with(&format!(
                    "`param set` would change stage `pr-9` through SSM name {name}, outside its parameters-path (/shop/preview/), and this is the build of pull request 9"
                )),
                "{err}"
            );
        }
        assert!(
            pr.check_may_write_parameter("dev", false, "/shop/dev/x", Some("/shop/dev"), &[])
                .is_err()
        );
        // A previews' path holding a named stage's: that stage's names are not the preview's.
        let err = pr
            .check_may_write_parameter(
                "pr-9",
                true,
                "/shop/prod/db",
                Some("/shop/"),
                &["/shop/prod/".to_string()],
            )
            .unwrap_err();
        assert!(
            err.to_string().contains(
                "through SSM name /shop/prod/db, under a named stage's path (/shop/prod/)"
            ),
            "{err}"
        );
        assert_eq!(
            pr.check_may_write_parameter(
                "pr-9",
                true,
                "/shop/pr-9/db",
                Some("/shop/"),
                &["/shop/prod/".to_string()]
            ),
            Ok(())
        );

        let branch = CiContext::from_vars(|k| match k {
            "CODEBUILD_BUILD_ID" => Some("shop:1".into()),
            "CODEBUILD_WEBHOOK_TRIGGER" => Some("branch/main".into()),
            _ => None,
        });
        assert_eq!(branch.check_may_change("promote", "prod", false), Ok(()));
        assert_eq!(
            branch.check_may_write_parameter("dev", false, "/ferry/shop/dev/records/db", None, &[]),
            Ok(())
        );
        let local = CiContext::from_vars(|_| None);
        assert_eq!(local.check_may_change("remove", "dev", false), Ok(()));
    }

    #[test]
    fn an_event_file_is_read_only_when_it_is_a_regular_file_of_a_sane_size() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("event.json");
        std::fs::write(&file, "{\"number\": 7}").unwrap();
        assert_eq!(read_event_file(&file).as_deref(), Ok("{\"number\": 7}"));
        let not_regular =
            |e: Result<String, String>| e.unwrap_err().ends_with("is not a regular file");
        assert!(not_regular(read_event_file(std::path::Path::new(
            "/dev/zero"
        ))));
        assert!(not_regular(read_event_file(dir.path())));
        std::fs::write(&file, "{\"number\": 7").unwrap();
        assert!(read_event_file(&file).unwrap_err().contains("is not JSON"));
        let fifo = dir.path().join("pipe");
        assert!(
            std::process::Command::new("mkfifo")
                .arg(&fifo)
                .status()
                .unwrap()
                .success()
        );
        assert!(not_regular(read_event_file(&fifo)));
        assert!(read_event_file(&dir.path().join("missing")).is_err());
    }

    fn ctx(vars: &[(&str, &str)]) -> CiContext {
        CiContext::from_vars(|k| {
            vars.iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.to_string())
        })
    }

    #[test]
    fn the_batch_a_build_belongs_to() {
        // A CodeBuild build that is no batch node belongs to no batch.
        assert_eq!(
            ctx(&[
                ("CODEBUILD_BUILD_ID", "x:1"),
                ("CODEBUILD_RESOLVED_SOURCE_VERSION", "abc")
            ])
            .batch_id,
            None
        );
        let node = ctx(&[
            ("CODEBUILD_BUILD_ID", "x:1"),
            ("CODEBUILD_RESOLVED_SOURCE_VERSION", "abc"),
            ("CODEBUILD_BATCH_BUILD_IDENTIFIER", "api"),
        ]);
        assert_eq!(node.batch_id.as_deref(), Some("codebuild-abc"));
        // One commit pushed to two branches: two batch builds, two batches.
        let on = |branch: &str| {
            ctx(&[
                ("CODEBUILD_BUILD_ID", "x:1"),
                ("CODEBUILD_RESOLVED_SOURCE_VERSION", "abc"),
                ("CODEBUILD_BATCH_BUILD_IDENTIFIER", "api"),
                ("CODEBUILD_WEBHOOK_TRIGGER", branch),
            ])
            .batch_id
            .unwrap()
        };
        assert_eq!(on("branch/feat-c"), "codebuild-abc-branch/feat-c");
        // Changed or cut: a digest of the whole keeps two alike triggers apart.
        let changed = on("branch/feat+d");
        assert!(
            changed.starts_with("codebuild-abc-branch/feat_d-"),
            "{changed}"
        );
        assert_ne!(changed, on("branch/feat_d"));
        let long = |end: &str| on(&format!("branch/{}{end}", "a".repeat(70)));
        assert_eq!(long("-v2").len(), "codebuild-abc-".len() + 60);
        assert_ne!(long("-v2"), long("-v3"));
        let gh = ctx(&[("GITHUB_ACTIONS", "true"), ("GITHUB_RUN_ID", "991")]);
        assert_eq!(gh.batch_id.as_deref(), Some("github-991"));
        // FERRY_BATCH_ID wins everywhere, also outside CI.
        for extra in [
            &[][..],
            &[("GITHUB_ACTIONS", "true"), ("GITHUB_RUN_ID", "991")][..],
        ] {
            let mut vars = vec![("FERRY_BATCH_ID", " mine ")];
            vars.extend_from_slice(extra);
            assert_eq!(ctx(&vars).batch_id.as_deref(), Some("mine"));
        }
        assert_eq!(ctx(&[]).batch_id, None);
    }

    #[test]
    fn codebuild_pull_request_branch_and_tag() {
        let pr = ctx(&[
            ("CODEBUILD_BUILD_ID", "shop:1234"),
            ("CODEBUILD_RESOLVED_SOURCE_VERSION", "abc123"),
            ("CODEBUILD_WEBHOOK_TRIGGER", "pr/42"),
        ]);
        assert_eq!(pr.provider, Provider::CodeBuild);
        assert_eq!(pr.trigger, Trigger::PullRequest { id: "42".into() });
        assert!(pr.is_pull_request());
        assert_eq!(pr.commit.as_deref(), Some("abc123"));
        assert_eq!(pr.build_id.as_deref(), Some("shop:1234"));
        assert_eq!(
            pr.trigger_source.as_deref(),
            Some("CODEBUILD_WEBHOOK_TRIGGER=pr/42")
        );
        // A refusal names the pull request in its one form, the trigger as CI wrote it.
        let zeros = ctx(&[
            ("CODEBUILD_BUILD_ID", "shop:1235"),
            ("CODEBUILD_WEBHOOK_TRIGGER", "pr/042"),
        ]);
        let refused = zeros.check_may_change("deploy", "prod", false).unwrap_err();
        assert_eq!(refused.pull_request, "42");
        assert!(
            refused
                .to_string()
                .contains("pull request 42 (CODEBUILD_WEBHOOK_TRIGGER=pr/042)"),
            "{refused}"
        );

        let branch = ctx(&[
            ("CODEBUILD_BUILD_ID", "x:1"),
            ("CODEBUILD_WEBHOOK_TRIGGER", "branch/main"),
        ]);
        assert_eq!(
            branch.trigger,
            Trigger::Branch {
                name: "main".into()
            }
        );
        let tag = ctx(&[
            ("CODEBUILD_BUILD_ID", "x:1"),
            ("CODEBUILD_WEBHOOK_TRIGGER", "tag/v1.2"),
        ]);
        assert_eq!(
            tag.trigger,
            Trigger::Tag {
                name: "v1.2".into()
            }
        );
        let manual = ctx(&[("CODEBUILD_BUILD_ID", "x:1")]);
        assert_eq!(manual.trigger, Trigger::Unknown);
        assert!(!manual.is_pull_request());
    }

    #[test]
    fn github_actions_events() {
        let pr = ctx(&[
            ("GITHUB_ACTIONS", "true"),
            ("GITHUB_EVENT_NAME", "pull_request"),
            ("GITHUB_REF", "refs/pull/7/merge"),
            ("GITHUB_SHA", "def456"),
            ("GITHUB_RUN_ID", "99"),
        ]);
        assert_eq!(pr.provider, Provider::GithubActions);
        assert_eq!(pr.trigger, Trigger::PullRequest { id: "7".into() });
        assert_eq!(pr.commit.as_deref(), Some("def456"));
        // pull_request_target runs on the base branch: with no event file, only the head branch
        // is known, and it is no number.
        let target = ctx(&[
            ("GITHUB_ACTIONS", "true"),
            ("GITHUB_EVENT_NAME", "pull_request_target"),
            ("GITHUB_REF", "refs/heads/main"),
            ("GITHUB_REF_NAME", "main"),
            ("GITHUB_HEAD_REF", "feature/login"),
        ]);
        assert_eq!(
            target.trigger,
            Trigger::PullRequest {
                id: "head branch feature/login".into()
            }
        );
        // With its event file, the pull request's number, as for `pull_request`.
        let with_event = CiContext::from_vars_and_event(
            |k| {
                [
                    ("GITHUB_ACTIONS", "true"),
                    ("GITHUB_EVENT_NAME", "pull_request_target"),
                    ("GITHUB_REF", "refs/heads/main"),
                    ("GITHUB_HEAD_REF", "feature/login"),
                ]
                .iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.to_string())
            },
            Some(r#"{"action": "opened", "number": 12, "pull_request": {"number": 12}}"#),
        );
        assert_eq!(with_event.trigger, Trigger::PullRequest { id: "12".into() });
        // Reviews, review comments and any other event on a pull request's ref run its
        // unmerged code; a merge queue runs it before it merges.
        for event in [
            "pull_request_review",
            "pull_request_review_comment",
            "workflow_dispatch",
        ] {
            let on_pr = ctx(&[
                ("GITHUB_ACTIONS", "true"),
                ("GITHUB_EVENT_NAME", event),
                ("GITHUB_REF", "refs/pull/9/merge"),
                ("GITHUB_REF_NAME", "9/merge"),
                ("GITHUB_REF_TYPE", "branch"),
            ]);
            assert_eq!(
                on_pr.trigger,
                Trigger::PullRequest { id: "9".into() },
                "{event}"
            );
        }
        let queue = ctx(&[
            ("GITHUB_ACTIONS", "true"),
            ("GITHUB_EVENT_NAME", "merge_group"),
            (
                "GITHUB_REF",
                "refs/heads/gh-readonly-queue/main/pr-42-0123456789abcdef",
            ),
            (
                "GITHUB_REF_NAME",
                "gh-readonly-queue/main/pr-42-0123456789abcdef",
            ),
            ("GITHUB_REF_TYPE", "branch"),
        ]);
        assert_eq!(queue.trigger, Trigger::PullRequest { id: "42".into() });
        let push = ctx(&[
            ("GITHUB_ACTIONS", "true"),
            ("GITHUB_EVENT_NAME", "push"),
            ("GITHUB_REF_TYPE", "branch"),
            ("GITHUB_REF_NAME", "main"),
        ]);
        assert_eq!(
            push.trigger,
            Trigger::Branch {
                name: "main".into()
            }
        );
    }

    #[test]
    fn developer_machine_and_generic_ci() {
        let dev = ctx(&[]);
        assert_eq!(dev.provider, Provider::Local);
        assert!(!dev.is_ci());
        let ci = ctx(&[("CI", "true"), ("FORCE_DEPLOY_ALL", "TRUE")]);
        assert_eq!(ci.provider, Provider::OtherCi);
        assert!(ci.force_deploy_all);
        assert!(!ctx(&[("FORCE_DEPLOY_ALL", "false")]).force_deploy_all);
        // Empty values count as unset.
        assert_eq!(
            ctx(&[("CODEBUILD_BUILD_ID", " ")]).provider,
            Provider::Local
        );
    }
}
