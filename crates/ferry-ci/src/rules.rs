//! `[ci]` of ferry.toml: which stage a CI build deploys, chosen by what triggered it.

use serde::{Deserialize, Serialize};

use crate::{CiContext, Ended, Trigger};

/// Branch and tag patterns (`*` matches any run of characters, `/` included) and their stages,
/// and the stage of a pull request's build.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StageRules {
    /// Branch pattern → stage.
    pub branches: Vec<(String, String)>,
    /// Tag pattern → stage.
    pub tags: Vec<(String, String)>,
    /// The stage of a pull request's build: `{number}` becomes its number (e.g. `pr-{number}`,
    /// a preview stage).
    pub pull_requests: Option<String>,
    /// `[ci] setup`: the shell command lines that make the runner available on a fresh CI
    /// machine, which the generated batch files run first (empty: their default).
    #[serde(default)]
    pub setup: Vec<String>,
}

/// The stage a rule chose, and which rule, for the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StageMatch {
    pub stage: String,
    /// e.g. `[ci] branches "main" = "staging" (CODEBUILD_WEBHOOK_TRIGGER=branch/main)`.
    pub rule: String,
}

/// What a CI build deploys by the `[ci]` rules ([`StageRules::decide`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CiStage {
    /// The stage a rule chose.
    Stage(StageMatch),
    /// The build's event ends a branch or pull request: nothing to deploy (its preview is to
    /// be removed).
    Ended(Ended),
    /// A pull request's build (named by where its trigger was read) while `[ci]` gives pull
    /// requests no stage: nothing to deploy.
    PullRequestWithoutStage(String),
}

/// Why no stage could be chosen.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NoRule {
    #[error(
        "this build's trigger is unknown ({0}): Ferry reads CodeBuild's CODEBUILD_WEBHOOK_TRIGGER and GitHub Actions' GITHUB_EVENT_NAME / GITHUB_REF_TYPE; name the stage instead of --from-ci"
    )]
    UnknownTrigger(String),
    #[error(
        "no [ci] rule of ferry.toml matches {what} ({source_var}); add one (e.g. [ci] {key} = {{ \"{example}\" = \"staging\" }}), or name the stage instead of --from-ci"
    )]
    NoMatch {
        what: String,
        source_var: String,
        key: &'static str,
        example: String,
    },
    #[error(
        "this is a pull request's build ({0}) and [ci] has no pull-requests stage; add e.g. [ci] pull-requests = \"pr-{{number}}\" to deploy a preview stage per pull request"
    )]
    NoPullRequests(String),
    #[error(
        "this is a pull request's build ({source_var}), but {} is no pull request number: [ci] pull-requests names a preview stage by the number alone, so that no two pull requests share one; name the stage instead of --from-ci",
        if id.is_empty() { "what it names".to_string() } else { format!("`{id}`") }
    )]
    NoPullRequestNumber { id: String, source_var: String },
}

/// Whether `pattern` matches `name`, `*` matching any run of characters.
pub fn glob_match(pattern: &str, name: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == name;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !name.starts_with(first) || name.len() < first.len() + last.len() || !name.ends_with(last) {
        return false;
    }
    let mut rest = &name[first.len()..name.len() - last.len()];
    for part in &parts[1..parts.len() - 1] {
        match rest.find(part) {
            Some(i) => rest = &rest[i + part.len()..],
            None => return false,
        }
    }
    true
}

/// The rule of `rules` for `name`: an exact pattern first, else the matching pattern with the
/// most literal characters (ties: the first written).
fn best<'a>(rules: &'a [(String, String)], name: &str) -> Option<&'a (String, String)> {
    if let Some(exact) = rules.iter().find(|(p, _)| p == name) {
        return Some(exact);
    }
    rules
        .iter()
        .filter(|(p, _)| glob_match(p, name))
        .max_by(|a, b| {
            let len = |p: &str| p.chars().filter(|c| *c != '*').count();
            len(&a.0).cmp(&len(&b.0)).then(std::cmp::Ordering::Greater)
        })
}

impl StageRules {
    pub fn is_empty(&self) -> bool {
        self.branches.is_empty() && self.tags.is_empty() && self.pull_requests.is_none()
    }

    /// What the build `ci` describes deploys: nothing when its event ends a branch or pull
    /// request, or when it is a pull request's and no rule gives pull requests a stage; else
    /// [`stage_for`](Self::stage_for).
    pub fn decide(&self, ci: &CiContext) -> Result<CiStage, NoRule> {
        if let Some(ended) = ci.ended.first() {
            return Ok(CiStage::Ended(ended.clone()));
        }
        if ci.is_pull_request() && self.pull_requests.is_none() {
            return Ok(CiStage::PullRequestWithoutStage(
                ci.trigger_source.clone().unwrap_or_else(|| "?".into()),
            ));
        }
        self.stage_for(ci).map(CiStage::Stage)
    }

    /// The stage of the build `ci` describes.
    pub fn stage_for(&self, ci: &CiContext) -> Result<StageMatch, NoRule> {
        let source = ci
            .trigger_source
            .clone()
            .unwrap_or_else(|| "no CI variables".into());
        let (rules, name, key, what) = match &ci.trigger {
            Trigger::Unknown => return Err(NoRule::UnknownTrigger(source)),
            Trigger::PullRequest { id } => {
                let Some(pattern) = &self.pull_requests else {
                    return Err(NoRule::NoPullRequests(source));
                };
                // `pr/-1` would be pull request 1's stage, `pr/` every such build's, and
                // `pr/007` another stage than `pr/7`'s.
                let Some(number) = crate::refs::pull_request_number(id) else {
                    return Err(NoRule::NoPullRequestNumber {
                        id: id.clone(),
                        source_var: source,
                    });
                };
                return Ok(StageMatch {
                    stage: pattern.replace("{number}", number),
                    rule: format!("[ci] pull-requests = \"{pattern}\" ({source})"),
                });
            }
            Trigger::Branch { name } => (&self.branches, name, "branches", "branch"),
            Trigger::Tag { name } => (&self.tags, name, "tags", "tag"),
        };
        match best(rules, name) {
            Some((pattern, stage)) => Ok(StageMatch {
                stage: stage.clone(),
                rule: format!("[ci] {key} \"{pattern}\" = \"{stage}\" ({source})"),
            }),
            None => Err(NoRule::NoMatch {
                what: format!("{what} `{name}`"),
                source_var: source,
                key,
                example: name.clone(),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ci(vars: &[(&str, &str)]) -> CiContext {
        CiContext::from_vars(|k| {
            vars.iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.to_string())
        })
    }

    fn codebuild(trigger: &str) -> CiContext {
        ci(&[
            ("CODEBUILD_BUILD_ID", "shop:1"),
            ("CODEBUILD_WEBHOOK_TRIGGER", trigger),
        ])
    }

    fn rules() -> StageRules {
        StageRules {
            branches: vec![
                ("release/*".into(), "staging".into()),
                ("*".into(), "dev".into()),
                ("main".into(), "staging".into()),
                ("release/hotfix-*".into(), "prod".into()),
            ],
            tags: vec![("v*".into(), "prod".into())],
            pull_requests: Some("pr-{number}".into()),
            setup: Vec::new(),
        }
    }

    #[test]
    fn a_build_whose_event_ends_a_pull_request_or_has_no_rule_for_it_deploys_nothing() {
        let r = rules();
        // A merged pull request's build: its preview goes, nothing deploys (a rule matches).
        let merged = ci(&[
            ("CODEBUILD_BUILD_ID", "shop:1"),
            ("CODEBUILD_WEBHOOK_TRIGGER", "pr/7"),
            ("CODEBUILD_WEBHOOK_EVENT", "PULL_REQUEST_MERGED"),
        ]);
        assert_eq!(
            r.decide(&merged).unwrap(),
            CiStage::Ended(Ended::PullRequest("7".into()))
        );
        // An open pull request: its preview stage; without a pull-requests rule, nothing.
        let open = codebuild("pr/7");
        assert!(matches!(r.decide(&open).unwrap(), CiStage::Stage(m) if m.stage == "pr-7"));
        let no_previews = StageRules {
            pull_requests: None,
            ..rules()
        };
        assert_eq!(
            no_previews.decide(&open).unwrap(),
            CiStage::PullRequestWithoutStage("CODEBUILD_WEBHOOK_TRIGGER=pr/7".into())
        );
        // A branch: its rule; an unknown trigger: an error naming it.
        assert!(
            matches!(r.decide(&codebuild("branch/main")).unwrap(), CiStage::Stage(m) if m.stage == "staging")
        );
        assert!(matches!(
            r.decide(&ci(&[])).unwrap_err(),
            NoRule::UnknownTrigger(_)
        ));
    }

    #[test]
    fn globs() {
        assert!(glob_match("v*", "v1.2.3"));
        assert!(glob_match("*", ""));
        assert!(glob_match("release/*/x", "release/a/b/x"));
        assert!(glob_match("a*b*c", "abc"));
        assert!(!glob_match("a*b*c", "acb"));
        assert!(!glob_match("ab*ba", "aba"), "the ends may not overlap");
        assert!(!glob_match("main", "main2"));
    }

    #[test]
    fn the_most_specific_rule_wins() {
        let r = rules();
        let m = r.stage_for(&codebuild("branch/main")).unwrap();
        assert_eq!(m.stage, "staging");
        assert_eq!(
            m.rule,
            "[ci] branches \"main\" = \"staging\" (CODEBUILD_WEBHOOK_TRIGGER=branch/main)"
        );
        assert_eq!(
            r.stage_for(&codebuild("branch/release/hotfix-7"))
                .unwrap()
                .stage,
            "prod"
        );
        assert_eq!(
            r.stage_for(&codebuild("branch/release/2.0")).unwrap().stage,
            "staging"
        );
        assert_eq!(
            r.stage_for(&codebuild("branch/feature/x")).unwrap().stage,
            "dev"
        );
        assert_eq!(r.stage_for(&codebuild("tag/v2.0.1")).unwrap().stage, "prod");
        assert_eq!(r.stage_for(&codebuild("pr/42")).unwrap().stage, "pr-42");
        let gh = ci(&[
            ("GITHUB_ACTIONS", "true"),
            ("GITHUB_EVENT_NAME", "push"),
            ("GITHUB_REF_TYPE", "tag"),
            ("GITHUB_REF_NAME", "v3"),
        ]);
        assert_eq!(r.stage_for(&gh).unwrap().stage, "prod");
    }

    #[test]
    fn a_pull_request_without_a_number_gets_no_stage() {
        // Another pull request's stage (`pr/-1` → `pr--1`, whose id is `pr-1`), or one that
        // every such build would share (`pr/` → `pr-`).
        let r = rules();
        for (trigger, shown) in [
            ("pr/", "what it names"),
            ("pr/-1", "`-1`"),
            ("pr/1/2", "`1/2`"),
            ("pr/abc", "`abc`"),
            ("pr/0", "`0`"),
            ("pr/000", "`000`"),
        ] {
            let err = r.stage_for(&codebuild(trigger)).unwrap_err();
            assert!(
                matches!(err, NoRule::NoPullRequestNumber { .. }),
                "{trigger}: {err:?}"
            );
            assert_eq!(
                err.to_string(),
                format!(
                    "this is a pull request's build (CODEBUILD_WEBHOOK_TRIGGER={trigger}), but {shown} is no pull request number: [ci] pull-requests names a preview stage by the number alone, so that no two pull requests share one; name the stage instead of --from-ci"
                )
            );
        }
        // GitHub: a ref with no number, and a pull_request_target whose event file is missing
        // (only its head branch is known).
        for vars in [
            &[
                ("GITHUB_ACTIONS", "true"),
                ("GITHUB_EVENT_NAME", "pull_request"),
                ("GITHUB_REF", "refs/pull//merge"),
            ][..],
            &[
                ("GITHUB_ACTIONS", "true"),
                ("GITHUB_EVENT_NAME", "pull_request_target"),
                ("GITHUB_REF", "refs/heads/main"),
                ("GITHUB_HEAD_REF", "7"),
            ][..],
        ] {
            let build = ci(vars);
            assert!(build.is_pull_request());
            assert!(
                matches!(r.stage_for(&build), Err(NoRule::NoPullRequestNumber { .. })),
                "{vars:?}"
            );
        }
    }

    #[test]
    fn a_pull_request_number_has_one_stage_however_written() {
        let r = rules();
        let seven = r.stage_for(&codebuild("pr/7")).unwrap().stage;
        assert_eq!(r.stage_for(&codebuild("pr/007")).unwrap().stage, seven);
        assert_ne!(r.stage_for(&codebuild("pr/70")).unwrap().stage, seven);
    }

    #[test]
    fn no_rule_says_what_to_add() {
        let r = StageRules::default();
        assert_eq!(
            r.stage_for(&codebuild("tag/v1")).unwrap_err().to_string(),
            "no [ci] rule of ferry.toml matches tag `v1` (CODEBUILD_WEBHOOK_TRIGGER=tag/v1); add one (e.g. [ci] tags = { \"v1\" = \"staging\" }), or name the stage instead of --from-ci"
        );
        assert!(matches!(
            r.stage_for(&codebuild("pr/1")),
            Err(NoRule::NoPullRequests(_))
        ));
        assert!(matches!(
            r.stage_for(&ci(&[])),
            Err(NoRule::UnknownTrigger(_))
        ));
    }
}
