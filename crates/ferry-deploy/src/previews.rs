//! Preview stages: the stages `[stages."*"]` makes (a branch, a pull request), found from what
//! exists — the project's stacks (by their Ferry tags) and the records under the previews'
//! records root — rather than from any list Ferry keeps, so a preview whose deploy half failed
//! is still found. [`to_prune`] is the pure rule of which are gone.

use std::collections::{BTreeMap, BTreeSet};

use aws_config::SdkConfig;
use ferry_ci::{Ended, LiveRefs};
use ferry_manifest::{Stage, Workspace};
use ferry_records::RecordError;
use ferry_stacks::{Engine, StackError};

/// One preview stage as its stacks and records show it. Serialised, it is the stable JSON of
/// `previews list --format json` (without `name_known` and `stack_of`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Preview {
    /// The stage name as deployed (from its records, else its stacks' tags, else its id).
    pub name: String,
    /// Whether `name` came from its records or tags (else it is only its id: several branch
    /// names can give one id, such as `feature/login` and `feature-login`).
    #[serde(skip)]
    pub name_known: bool,
    /// The stage id in stack names and records paths.
    pub id: String,
    /// The pull request number, when the name is the `[ci] pull-requests` pattern's.
    pub pull_request: Option<String>,
    /// Services with a stack or a record.
    pub services: BTreeSet<String>,
    /// Stack names that exist.
    pub stacks: BTreeSet<String>,
    /// The stacks that exist, by the service their tags name: removed with the preview though
    /// the checkout that prunes it lacks the service (a service only its branch added).
    #[serde(skip)]
    pub stack_of: BTreeMap<String, String>,
    /// Services that have a record.
    pub recorded: BTreeSet<String>,
    /// The newest deploy (seconds since the epoch): records' times, else stacks' last update.
    pub deployed_at: Option<u64>,
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PreviewError {
    #[error(
        "ferry.toml has no [stages.\"*\"]: there are no preview stages (any stage name not configured is refused)"
    )]
    NoPreviewStages,
    #[error("failed to list the project's stacks: {0}")]
    Stacks(#[from] StackError),
    #[error("failed to list the previews' records: {0}")]
    Records(#[from] RecordError),
}

/// The stage every preview is configured by (`[stages."*"]`), for its credentials and region:
/// named `*`, which no real stage is.
pub fn preview_access(ws: &Workspace) -> Result<Stage, PreviewError> {
    let config = ws
        .default_stage
        .clone()
        .ok_or(PreviewError::NoPreviewStages)?;
    Ok(Stage {
        name: "*".into(),
        id: "*".into(),
        preview: true,
        config,
    })
}

/// The SSM path under which every preview's records path starts with its id (`/ferry/<project>/`
/// by default); `None` when the `"*"` stage's `records-path` does not put the id in a folder of
/// its own (then only stacks tell).
pub fn records_root(ws: &Workspace) -> Option<String> {
    let config = ws.default_stage.as_ref()?;
    match &config.records_path {
        None => Some(format!("/ferry/{}/", ws.project.name)),
        Some(p) => {
            let (before, after) = p.split_once("{stage}")?;
            (before.ends_with('/') && (after.is_empty() || after.starts_with('/')))
                .then(|| before.to_string())
        }
    }
}

/// The pull request number of a preview named by `[ci] pull-requests` (e.g. `pr-{number}`), in
/// the form CI events and live refs give it (`pr-07` is pull request 7's; `pr-0` none's).
pub fn pull_request_of(pattern: Option<&str>, name: &str) -> Option<String> {
    let (prefix, suffix) = pattern?.split_once("{number}")?;
    let n = name.strip_prefix(prefix)?.strip_suffix(suffix)?;
    ferry_ci::pull_request_number(n).map(String::from)
}

/// Every preview stage of the project: stacks tagged with the project and a stage id that is no
/// named stage's, and records under the previews' records root. A stage whose records say it
/// is named (by the ferry.toml of the branch that deployed it) is none, though this checkout
/// does not name it.
pub async fn find(ws: &Workspace, config: &SdkConfig) -> Result<Vec<Preview>, PreviewError> {
    preview_access(ws)?;
    let named: BTreeSet<String> = ws.stages.keys().map(|n| n.to_ascii_lowercase()).collect();
    let mut found: BTreeMap<String, Preview> = BTreeMap::new();
    let entry = |found: &mut BTreeMap<String, Preview>, id: &str| -> Option<()> {
        if named.contains(&id.to_ascii_lowercase()) {
            return None;
        }
        found.entry(id.to_string()).or_insert_with(|| Preview {
            name: id.to_string(),
            name_known: false,
            id: id.to_string(),
            pull_request: None,
            services: BTreeSet::new(),
            stacks: BTreeSet::new(),
            stack_of: BTreeMap::new(),
            recorded: BTreeSet::new(),
            deployed_at: None,
        });
        Some(())
    };

    let engine = Engine::for_config(config, ferry_stacks::DeployOptions::default());
    let mut stack_names: BTreeMap<String, String> = BTreeMap::new();
    // Stages whose stacks or records say they are named: in another branch's ferry.toml, not
    // this one's (its records may lie outside the previews' root: by its tags, then).
    let mut named_elsewhere: BTreeSet<String> = BTreeSet::new();
    for (name, info) in engine.describe_all().await? {
        let tag = |k: &str| info.tags.get(k).cloned();
        if tag(ferry_stacks::ownership::TAG_PROJECT).as_deref() != Some(&ws.project.name) {
            continue;
        }
        let Some(id) = tag(ferry_stacks::ownership::TAG_STAGE) else {
            continue;
        };
        // Ferry's own stacks (`bootstrap '*'`, service `_bootstrap`) are no preview.
        if tag(ferry_stacks::ownership::TAG_SERVICE).is_some_and(|s| s.starts_with('_')) {
            continue;
        }
        if entry(&mut found, &id).is_none() {
            continue;
        }
        if tag(ferry_stacks::ownership::TAG_NAMED_STAGE).as_deref() == Some("true") {
            named_elsewhere.insert(id.clone());
        }
        let p = found.get_mut(&id).expect("just added");
        if let Some(service) = tag(ferry_stacks::ownership::TAG_SERVICE) {
            p.stack_of.insert(service.clone(), name.clone());
            p.services.insert(service);
        }
        p.stacks.insert(name);
        let updated = info.last_updated.map(|ms| (ms / 1000).max(0) as u64);
        p.deployed_at = p.deployed_at.max(updated);
        if let Some(n) = tag(ferry_stacks::ownership::TAG_STAGE_NAME)
            .and_then(|t| ferry_stacks::ownership::decode_tag_value(&t))
        {
            stack_names.insert(id, n);
        }
    }
    let mut record_times: BTreeMap<String, u64> = BTreeMap::new();
    if let Some(root) = records_root(ws) {
        let client = aws_sdk_ssm::Client::new(config);
        let listed = ferry_records::list_stages(&client, &root).await?;
        for (id, records) in listed.stages {
            if entry(&mut found, &id).is_none() {
                continue;
            }
            let p = found.get_mut(&id).expect("just added");
            for (service, r) in records {
                if r.named_stage {
                    named_elsewhere.insert(id.clone());
                }
                if let Some(stage) = r.stage {
                    p.name = stage;
                    p.name_known = true;
                }
                let t = record_times.entry(id.clone()).or_default();
                *t = (*t).max(r.deployed_at);
                p.services.insert(service.clone());
                p.recorded.insert(service);
            }
        }
    }
    for p in found.values_mut() {
        if p.recorded.is_empty()
            && let Some(n) = stack_names.get(&p.id)
        {
            p.name = n.clone();
            p.name_known = true;
        }
        if let Some(t) = record_times.get(&p.id) {
            p.deployed_at = Some(*t);
        }
        p.pull_request = pull_request_of(ws.project.ci.pull_requests.as_deref(), &p.name);
    }
    // A named stage whose id is not its name (its own records-path or stack names) is found
    // under that id: its records and tags name it, and it is no preview.
    found.retain(|_, p| !named.contains(&p.name.to_ascii_lowercase()));
    found.retain(|id, _| !named_elsewhere.contains(id));
    Ok(found.into_values().collect())
}

/// What says which previews are gone.
#[derive(Debug, Clone, Default)]
pub struct Evidence {
    /// Live branches and pull requests (`--live-refs`).
    pub live: Option<LiveRefs>,
    /// Branches and pull requests a CI event ended (`--from-ci`).
    pub ended: Vec<Ended>,
    /// Previews whose newest deploy is at least this many seconds old are gone (`--ttl`).
    pub ttl_secs: Option<u64>,
    /// Seconds since the epoch.
    pub now: u64,
}

/// Why a preview is pruned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Gone {
    /// A CI event ended its branch or pull request.
    Ended(Ended),
    /// Its pull request is not among the live ones.
    PullRequestNotLive(String),
    /// Its branch is not among the live ones.
    BranchNotLive(String),
    /// Not deployed for longer than the TTL.
    Expired { idle_secs: u64, ttl_secs: u64 },
}

impl std::fmt::Display for Gone {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Gone::Ended(e) => write!(f, "{e}"),
            Gone::PullRequestNotLive(n) => {
                write!(f, "pull request #{n} is not among the live refs")
            }
            Gone::BranchNotLive(b) => write!(f, "branch `{b}` is not among the live refs"),
            Gone::Expired {
                idle_secs,
                ttl_secs,
            } => write!(
                f,
                "last deployed {} ago, not less than the TTL of {}",
                duration(*idle_secs),
                duration(*ttl_secs)
            ),
        }
    }
}

/// A duration for people: `3d 4h`, `5h 10m`, `12m`, `40s`.
pub fn duration(secs: u64) -> String {
    let (d, h, m) = (secs / 86_400, secs % 86_400 / 3600, secs % 3600 / 60);
    match (d, h, m) {
        (0, 0, 0) => format!("{secs}s"),
        (0, 0, m) => format!("{m}m"),
        (0, h, m) => format!("{h}h {m}m"),
        (d, h, _) => format!("{d}d {h}h"),
    }
}

/// The previews the evidence says are gone, each with its first reason. A preview named after
/// a branch is alive while a live branch has its name (or its stage id); one named by the
/// pull-requests pattern while its number is live. A kind of ref the live list does not mention
/// at all is not judged, and a preview with no known deploy time never expires. A preview that
/// a `[ci] branches` or `tags` rule deploys (`"*" = "sandbox"`, `"v*" = "candidate"`) is no
/// one branch's: many refs share it, and tags are in no list of branches, so only its age
/// judges it.
pub fn to_prune<'p>(
    ws: &Workspace,
    previews: &'p [Preview],
    evidence: &Evidence,
) -> Vec<(&'p Preview, Gone)> {
    let branch_ids = |branches: &BTreeSet<String>| -> BTreeSet<String> {
        branches
            .iter()
            .filter_map(|b| ws.stage(b).ok().map(|s| s.id))
            .collect()
    };
    let live_ids = evidence
        .live
        .as_ref()
        .and_then(|l| l.branches.as_ref())
        .map(branch_ids);
    let ci = &ws.project.ci;
    let by_rule: BTreeSet<String> = ci
        .branches
        .iter()
        .chain(&ci.tags)
        .filter_map(|(_, stage)| ws.stage(stage).ok())
        .filter(|s| s.preview)
        .map(|s| s.id)
        .collect();
    previews
        .iter()
        .filter_map(|p| {
            let ruled = p.pull_request.is_none() && by_rule.contains(&p.id);
            let ended = evidence.ended.iter().find(|e| match (e, &p.pull_request) {
                _ if ruled => false,
                (Ended::PullRequest(n), Some(pr)) => n == pr,
                // By its name when known (another branch may share its id); by its id only
                // when its name is not known.
                // Git's branch names are case-sensitive: `Fix-X` is not `fix-x`.
                (Ended::Branch(b), None) if p.name_known => *b == p.name,
                (Ended::Branch(b), None) => ws.stage(b).is_ok_and(|s| s.id == p.id),
                _ => false,
            });
            if let Some(e) = ended {
                return Some((p, Gone::Ended(e.clone())));
            }
            if let Some(live) = evidence.live.as_ref().filter(|_| !ruled) {
                match (&p.pull_request, &live.pull_requests, &live.branches) {
                    // A live branch of its very name (`pr-6` pushed as a branch) keeps it too:
                    // the name alone cannot tell that branch's preview from the pull request's.
                    (Some(pr), Some(prs), branches)
                        if !prs.contains(pr)
                            && !branches.as_ref().is_some_and(|b| b.contains(&p.name)) =>
                    {
                        return Some((p, Gone::PullRequestNotLive(pr.clone())));
                    }
                    (None, _, Some(branches))
                        if !branches.contains(&p.name)
                            && !live_ids.as_ref().is_some_and(|ids| ids.contains(&p.id)) =>
                    {
                        return Some((p, Gone::BranchNotLive(p.name.clone())));
                    }
                    _ => {}
                }
            }
            let (ttl, at) = (evidence.ttl_secs?, p.deployed_at?);
            let idle = evidence.now.saturating_sub(at);
            (idle >= ttl).then_some((
                p,
                Gone::Expired {
                    idle_secs: idle,
                    ttl_secs: ttl,
                },
            ))
        })
        .collect()
}

/// When a record of the preview's stage, read under its lock just before its removal, shows a
/// deploy newer than what [`to_prune`] judged (a push to its branch between the judging and the
/// removal, which can be minutes apart when several previews go): that newest time. Such a
/// preview is not gone; removing it would delete what was just deployed.
pub fn deployed_since(
    judged: &Preview,
    records: &BTreeMap<String, ferry_records::Record>,
) -> Option<u64> {
    let newest = records.values().map(|r| r.deployed_at).max()?;
    (newest > judged.deployed_at.unwrap_or(0)).then_some(newest)
}

/// A TTL such as `7d`, `36h`, `90m`, `45s` (a bare number is days), in seconds.
pub fn parse_ttl(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let (n, unit) = match t.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => (&t[..i], &t[i..]),
        None => (t, "d"),
    };
    let n: u64 = n.parse().map_err(|e: std::num::ParseIntError| {
        if *e.kind() == std::num::IntErrorKind::PosOverflow {
            format!("`{text}` is too long a TTL")
        } else {
            format!("`{text}` is not a TTL: a number and d, h, m or s (e.g. 7d)")
        }
    })?;

    let unit = match unit {
        "d" => 86_400,
        "h" => 3600,
        "m" => 60,
        "s" => 1,
        _ => {
            return Err(format!(
                "`{text}` is not a TTL: a number and d, h, m or s (e.g. 7d)"
            ));
        }
    };
    if n == 0 {
        return Err(format!(
            "`{text}` would prune every preview, one deployed a moment ago too; give an age, e.g. 7d"
        ));
    }
    n.checked_mul(unit)
        .ok_or_else(|| format!("`{text}` is too long a TTL"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ws() -> (ferry_test_support::TestRepo, Workspace) {
        let r = ferry_test_support::TestRepo::new();
        r.write(
            "ferry.toml",
            "[project]\nname = \"p\"\n\n[stages.dev]\nregion = \"us-east-1\"\n\n[stages.\"*\"]\nregion = \"us-east-1\"\n\n[ci]\npull-requests = \"pr-{number}\"\nbranches = { main = \"dev\", \"*\" = \"Sandbox\" }\ntags = { \"v*\" = \"candidate\" }\n",
        )
        .write("services/a/service.toml", "[service]\ntemplate = \"t.yaml\"\n")
        .write(
            "services/a/t.yaml",
            "Resources:\n  Q:\n    Type: AWS::SQS::Queue\n",
        );
        let ws = ferry_manifest::load(r.path()).unwrap();
        (r, ws)
    }

    fn preview(ws: &Workspace, name: &str, at: Option<u64>) -> Preview {
        Preview {
            name: name.into(),
            name_known: true,
            id: ws.stage(name).unwrap().id,
            pull_request: pull_request_of(Some("pr-{number}"), name),
            services: BTreeSet::from(["a".to_string()]),
            stacks: BTreeSet::new(),
            stack_of: BTreeMap::new(),
            recorded: BTreeSet::new(),
            deployed_at: at,
        }
    }

    fn names(pruned: &[(&Preview, Gone)]) -> Vec<String> {
        pruned
            .iter()
            .map(|(p, g)| format!("{}: {g}", p.name))
            .collect()
    }

    #[test]
    fn which_previews_are_gone() {
        let (_d, ws) = ws();
        let day = 86_400;
        let now = 100 * day;
        let all = [
            preview(&ws, "pr-7", Some(now - day)),
            preview(&ws, "pr-8", Some(now - 10 * day)),
            preview(&ws, "feature/Login", Some(now - day)),
            preview(&ws, "old-branch", None),
        ];
        let by = |evidence: Evidence| names(&to_prune(&ws, &all, &evidence));

        // Live refs from `git ls-remote`: branches only, so no pull request is judged; a
        // branch is alive by its name or its stage id.
        let live = LiveRefs::parse("a\trefs/heads/feature/login\nb\trefs/heads/main\n").unwrap();
        assert_eq!(
            by(Evidence {
                live: Some(live),
                now,
                ..Default::default()
            }),
            ["old-branch: branch `old-branch` is not among the live refs"]
        );
        // Open pull requests only: branches are not judged.
        assert_eq!(
            by(Evidence {
                live: Some(LiveRefs::parse("#8\n").unwrap()),
                now,
                ..Default::default()
            }),
            ["pr-7: pull request #7 is not among the live refs"]
        );
        // A live branch named like a pull request's preview keeps it, though its pull request
        // is gone (a branch `pr-7`).
        assert_eq!(
            by(Evidence {
                live: Some(LiveRefs::parse("1a\trefs/heads/pr-7\n#8\n").unwrap()),
                now,
                ..Default::default()
            }),
            [
                "feature/Login: branch `feature/Login` is not among the live refs",
                "old-branch: branch `old-branch` is not among the live refs"
            ]
        );
        // A CI event ends one; a TTL expires the old; unknown times never expire.
        assert_eq!(
            by(Evidence {
                ended: vec![Ended::PullRequest("7".into())],
                ttl_secs: Some(7 * day),
                now,
                ..Default::default()
            }),
            [
                "pr-7: pull request #7 was closed",
                "pr-8: last deployed 10d 0h ago, not less than the TTL of 7d 0h"
            ]
        );
        assert_eq!(
            by(Evidence {
                ended: vec![Ended::Branch("feature/Login".into())],
                now,
                ..Default::default()
            }),
            ["feature/Login: branch `feature/Login` was deleted"]
        );
        // Another branch, by git's case-sensitive names, though its stage id is the same.
        assert!(
            by(Evidence {
                ended: vec![Ended::Branch("feature/login".into())],
                now,
                ..Default::default()
            })
            .is_empty()
        );
        // Another branch with the same stage id is not that branch: by name when the name is
        // known, by id only when it is not.
        let twins = [
            preview(&ws, "feature-login", Some(now - day)),
            Preview {
                name_known: false,
                ..preview(&ws, "feature-signup", Some(now - day))
            },
        ];
        let deleted = |b: &str| {
            names(&to_prune(
                &ws,
                &twins,
                &Evidence {
                    ended: vec![Ended::Branch(b.into())],
                    now,
                    ..Default::default()
                },
            ))
        };
        assert!(deleted("feature/login").is_empty());
        assert_eq!(
            deleted("feature/signup"),
            ["feature-signup: branch `feature/signup` was deleted"]
        );
        // A preview written with leading zeros (`deploy pr-07`) is pull request 7's, as CI's
        // events and live refs name it; `pr-0` is no pull request's.
        let zeros = [
            preview(&ws, "pr-07", Some(now - day)),
            preview(&ws, "pr-0", Some(now - day)),
        ];
        assert_eq!(zeros[1].pull_request, None);
        let pruned = |evidence: Evidence| names(&to_prune(&ws, &zeros, &evidence));
        assert_eq!(
            pruned(Evidence {
                ended: vec![Ended::PullRequest("7".into())],
                now,
                ..Default::default()
            }),
            ["pr-07: pull request #7 was closed"]
        );
        assert!(
            pruned(Evidence {
                live: Some(LiveRefs::parse("7\n").unwrap()),
                now,
                ..Default::default()
            })
            .is_empty()
        );
        // Previews a [ci] rule deploys are shared by every ref it matches (tags are in no list
        // of branches): neither a list of live branches, nor a deleted branch of the same
        // name, judges them; their age does. (The rule names `Sandbox`; a deploy by hand as
        // `sandbox` has the same id.)
        let ruled = [
            preview(&ws, "sandbox", Some(now - 10 * day)),
            preview(&ws, "candidate", Some(now - day)),
        ];
        let pruned = |evidence: Evidence| names(&to_prune(&ws, &ruled, &evidence));
        assert!(
            pruned(Evidence {
                live: Some(
                    LiveRefs::parse("a\trefs/heads/main\nb\trefs/heads/feature/x\n").unwrap()
                ),
                ended: vec![
                    Ended::Branch("sandbox".into()),
                    Ended::Branch("candidate".into())
                ],
                now,
                ..Default::default()
            })
            .is_empty()
        );
        assert_eq!(
            pruned(Evidence {
                ttl_secs: Some(7 * day),
                now,
                ..Default::default()
            }),
            ["sandbox: last deployed 10d 0h ago, not less than the TTL of 7d 0h"]
        );
        // No evidence, nothing pruned.
        assert!(
            by(Evidence {
                now,
                ..Default::default()
            })
            .is_empty()
        );
    }

    #[test]
    fn a_preview_deployed_after_it_was_judged_is_left_alone() {
        let (_d, ws) = ws();
        let record = |at: u64| ferry_records::Record {
            deployed_at: at,
            ..Default::default()
        };
        let judged = preview(&ws, "pr-8", Some(1_000));
        let records = |times: &[u64]| -> BTreeMap<String, ferry_records::Record> {
            times
                .iter()
                .enumerate()
                .map(|(i, t)| (format!("s{i}"), record(*t)))
                .collect()
        };
        assert_eq!(deployed_since(&judged, &records(&[])), None);
        assert_eq!(deployed_since(&judged, &records(&[900, 1_000])), None);
        assert_eq!(
            deployed_since(&judged, &records(&[900, 1_001])),
            Some(1_001)
        );
        // Judged from its stacks alone (no record then): any record now is a new deploy.
        let unrecorded = preview(&ws, "pr-9", None);
        assert_eq!(deployed_since(&unrecorded, &records(&[5])), Some(5));
    }

    #[test]
    fn ttl_and_pull_request_patterns() {
        assert_eq!(parse_ttl("7d"), Ok(7 * 86_400));
        assert_eq!(parse_ttl("3"), Ok(3 * 86_400));
        assert_eq!(parse_ttl("36h"), Ok(36 * 3600));
        // 0 pruned every preview, one deployed a moment ago too.
        for zero in ["0", "0s", "0d", "00h"] {
            assert_eq!(
                parse_ttl(zero),
                Err(format!(
                    "`{zero}` would prune every preview, one deployed a moment ago too; give an age, e.g. 7d"
                ))
            );
        }
        for bad in ["", "d", "7w", "-1d", "1.5d"] {
            assert!(
                parse_ttl(bad).unwrap_err().contains("is not a TTL"),
                "{bad}"
            );
        }
        // A number past u64 is too long, not "not a TTL" (as a product past it was).
        for long in ["99999999999999999999d", "999999999999999999d"] {
            assert_eq!(
                parse_ttl(long),
                Err(format!("`{long}` is too long a TTL")),
                "{long}"
            );
        }
        assert_eq!(
            pull_request_of(Some("pr-{number}"), "pr-42").as_deref(),
            Some("42")
        );
        assert_eq!(pull_request_of(Some("pr-{number}"), "pr-x"), None);
        assert_eq!(
            pull_request_of(Some("preview-{number}-x"), "preview-3-x").as_deref(),
            Some("3")
        );
        assert_eq!(pull_request_of(None, "pr-42"), None);
        assert_eq!(duration(59), "59s");
        assert_eq!(duration(3600 * 5 + 600), "5h 10m");
    }
}
