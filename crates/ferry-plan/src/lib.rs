#![doc = include_str!("../README.md")]
//! The plan of a deploy: for every candidate service of a stage, `deploy` or `skip`, with typed
//! reasons, in execution order and waves.
//!
//! [`plan`] composes the manifest (services, graph, stage), change detection (one diff per
//! distinct base) and the CI context. It makes no AWS call: bases come from `--since` or from
//! deployment records that the caller has already read. Every "deploy everything" fallback carries
//! a named reason.

mod bases;
pub mod ci_files;
mod diff;
mod locks;
mod reasons;
mod render;

use std::collections::{BTreeMap, BTreeSet};

use ferry_changes::{BaseUnavailable, ChangesError, Head, Repo};
use ferry_ci::CiContext;
use ferry_manifest::{ServiceKind, Stage, Workspace};
use serde::Serialize;

use crate::diff::{Compared, RemovedService, TakenName};
use crate::reasons::Reasons;

pub use render::{codebuild_batch, github_matrix, reason_text, text};

/// What to plan.
#[derive(Debug, Clone)]
pub struct PlanRequest {
    pub stage: String,
    /// One base for every service (`--since`). Overrides `bases`.
    pub since: Option<String>,
    /// Per-service bases (the commits of their deployment records). A service with no base and
    /// no `since` is `not-deployed`.
    pub bases: BTreeMap<String, String>,
    pub head: Head,
    /// Restrict the candidates to these services and their transitive dependencies.
    pub services: Vec<String>,
    /// Also deploy every dependent of a service that deploys.
    pub with_dependents: bool,
    /// Deploy every candidate; the text names who asked (`--all`, `FORCE_DEPLOY_ALL=true`).
    pub force: Option<String>,
    /// An unusable base is an error instead of "treat as changed".
    pub strict: bool,
    /// Keep every changed path with its owners in the plan.
    pub explain: bool,
    pub ci: CiContext,
    /// The stage is the one `[ci]` gives this build (`--from-ci`): a pull request's build then
    /// deploys its preview stage, where it would otherwise only plan.
    pub from_ci: bool,
    /// What the stacks themselves say, by service (from the caller's one ListStacks pass
    /// against the records): each named candidate deploys with this reason
    /// ([`Reason::StackMissing`], [`Reason::StackFailed`], [`Reason::Drifted`]).
    pub stacks: BTreeMap<String, Reason>,
}

impl PlanRequest {
    pub fn new(stage: impl Into<String>, head: Head, ci: CiContext) -> Self {
        PlanRequest {
            stage: stage.into(),
            since: None,
            bases: BTreeMap::new(),
            head,
            services: Vec::new(),
            with_dependents: false,
            force: None,
            strict: false,
            explain: false,
            ci,
            from_ci: false,
            stacks: BTreeMap::new(),
        }
    }
}

/// The workspace as it is at commit `rev`: configuration read from the object database, with
/// folders cached by tree id in the repository's cache folder (`.git/ferry/`), so that an
/// unchanged service folder costs no read at all, and the whole result of the last commit loaded
/// kept by its root tree id, so that loading the same files again costs one read.
pub fn workspace_at(repo: &Repo, rev: &str) -> Result<Workspace, WorkspaceAtError> {
    let source = repo.source_at(rev)?;
    let tree = source.tree_id();
    let memo_path = repo.cache_dir().join("workspace-memo.bin");
    if let Some(ws) = ferry_manifest::read_memo(&memo_path, &tree, repo.root()) {
        return Ok(ws);
    }
    let cache_path = repo.cache_dir().join("manifest-cache.bin");
    let mut cache = ferry_manifest::ManifestCache::read(&cache_path);
    let ws = ferry_manifest::load_from(repo.root(), &source, Some(&mut cache))?;
    // Caches that cannot be written only cost speed next time.
    let _ = cache.write(&cache_path);
    let _ = ferry_manifest::write_memo(&memo_path, &tree, &ws);
    Ok(ws)
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WorkspaceAtError {
    #[error(transparent)]
    Head(#[from] ChangesError),
    #[error(transparent)]
    Manifest(#[from] ferry_manifest::ManifestErrors),
}

/// The head Ferry compares with by default: the working tree on a developer's machine; in CI
/// the built commit (a fresh checkout needs no scan of the working tree).
pub fn default_head(ci: &CiContext) -> Head {
    if ci.is_ci() {
        Head::Rev(ci.commit.clone().unwrap_or_else(|| "HEAD".into()))
    } else {
        Head::WorkingTree
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Deploy,
    Skip,
}

/// Why a service deploys or skips. The JSON `kind` names are a stable contract.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Reason {
    /// Files of the service (folder, manifest, template, declared inputs) changed.
    Changed { paths: Vec<String> },
    /// A global input changed: it affects every service.
    GlobalInput { paths: Vec<String> },
    /// A lock file (npm, pnpm or Yarn) changed what the service installs: an entry the
    /// workspace members serving its folders reach, through the package manager's resolution
    /// and workspace links, differs. `packages`: `left-pad 1.3.0 → 1.3.1`,
    /// `is-odd 3.0.0 (added)`, …
    LockedDependencies {
        lockfile: String,
        packages: Vec<String>,
    },
    /// No base to compare with: never deployed (no record) and no `--since`.
    NotDeployed,
    /// Deploy forced, by `by`.
    Forced { by: String },
    /// The base could not be used, so the service counts as changed.
    BaseUnavailable {
        base: Option<String>,
        #[serde(flatten)]
        cause: BaseUnavailable,
        message: String,
    },
    /// The service's folder is gone at head but was there at the base, or the service in it
    /// has another name now (`renamed_to`), and so another stack. Ferry never deletes a stack
    /// on its own.
    Removed {
        dir: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        renamed_to: Option<String>,
        /// Renamed, and its stack is the one the renamed service deploys to (a Serverless
        /// service's stack is named by its framework), still tagged with the old name.
        #[serde(skip_serializing_if = "std::ops::Not::not")]
        stack_kept: bool,
    },
    /// A dependency deploys and `--with-dependents` was given.
    Dependent { of: Vec<String> },
    /// Nothing of the service changed since `since`.
    Unchanged { since: String },
    /// The base's configuration has no such service: `ferry.toml`'s service globs (or its
    /// folder's manifest) made it one since `since`, though none of its files may have changed.
    Added { since: String },
    /// The stack is gone though the service's record says it was deployed (deleted outside
    /// Ferry).
    StackMissing { stack: String },
    /// The stack is in a failed state (e.g. `ROLLBACK_COMPLETE`, `UPDATE_ROLLBACK_FAILED`).
    StackFailed { stack: String, status: String },
    /// The stack changed outside Ferry since its record (updated, replaced, or busy).
    Drifted { stack: String, detail: String },
    /// No record of the stage names the service, but a stack of the name it deploys to is
    /// there: `detail` says whose by its tags, and so what a deploy does with it (takes it over
    /// only with `--adopt`, refuses another's, updates one of its own whose record was lost).
    StackFound { stack: String, detail: String },
    /// The configuration gives the service's stack in this stage another name or region than at
    /// its base (`[project] stack-name`, its framework's stack name, the stage's `region`): the
    /// stack it deploys to is a new one. The old one is left in place (a plan note says so).
    StackMoved { from: StackPlace, to: StackPlace },
    /// The stage's settings that the service's parameters read changed since its base
    /// (`variables.<name>` it reads with `${var:…}`, `parameters-path` for its relative
    /// `${ssm:…}` names), also when `ferry.toml` is none of its inputs.
    StageSettingsChanged { keys: Vec<String> },
    /// Dependencies (`of`) deployed since the service last received their outputs, by a run
    /// that never came to check it (killed, or limited to them): its stack may still run their
    /// old values. Its deploy brings what it receives up to date.
    NotReceived { of: Vec<String> },
    /// The service's record is of a deploy from a tree with uncommitted changes on top of
    /// `commit`: the stage may run code no commit holds, which no diff from that commit shows
    /// (the changes were discarded, or a plan of a commit runs on another machine). Its deploy
    /// brings it back to a commit.
    DeployedDirty { commit: String },
}

/// Where a stack lives: its name and region.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StackPlace {
    pub stack: String,
    pub region: String,
}

impl std::fmt::Display for StackPlace {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.stack, self.region)
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct ServicePlan {
    pub name: String,
    /// What the service is written in (`null` for a service removed since its base).
    pub kind: Option<ServiceKind>,
    pub stack_name: String,
    pub action: Action,
    pub reasons: Vec<Reason>,
    pub depends_on: Vec<String>,
    /// A service skipped that a deploy still checks against its record (it redeploys only when
    /// what it receives differs), and why: a dependent of what deploys, a reader of SSM. Set
    /// by the caller that knows the stage's records (`ferry_deploy::mark_checks`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub checked: Option<String>,
}

/// One distinct base and what it was compared with.
#[derive(Debug, Clone, Serialize)]
pub struct BaseInfo {
    /// As given: a commit, branch or tag.
    pub base: String,
    /// The commit it resolved to.
    pub commit: Option<String>,
    pub services: Vec<String>,
    /// Set when the base could not be used.
    pub unavailable: Option<String>,
    /// With `explain`: every changed path and who owns it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub paths: Option<Vec<PathOwners>>,
}

#[derive(Debug, Clone, Serialize)]
pub struct PathOwners {
    pub path: String,
    pub services: Vec<String>,
    pub global: bool,
    /// A lock file read as what it locks: `services` are those whose installed packages it
    /// changes, and those outside its folder, for which the whole file counts (a global one
    /// affects no other).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub lock_file: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct HeadInfo {
    /// `working-tree` or `commit`.
    pub kind: &'static str,
    /// The commit (for the working tree: HEAD's commit, if any).
    pub commit: Option<String>,
    pub rev: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct PullRequest {
    pub id: String,
    pub source: Option<String>,
    /// Whether this build deploys: only its preview stage, the one `[ci] pull-requests` gives
    /// it (`--from-ci`). Else it only plans.
    pub deploys: bool,
}

impl Plan {
    /// A pull request's build that only plans: nothing of it deploys.
    pub fn plan_only(&self) -> bool {
        self.pull_request.as_ref().is_some_and(|pr| !pr.deploys)
    }
}

/// A plan. Serialised, this is the documented JSON contract of `plan --format json`.
#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    pub stage: String,
    /// The stage id used in stack names (sanitised for preview stages).
    pub stage_id: String,
    pub preview: bool,
    pub region: String,
    pub head: HeadInfo,
    pub bases: Vec<BaseInfo>,
    /// Every candidate service (and removed ones), in execution order.
    pub services: Vec<ServicePlan>,
    /// Services to deploy, in execution order.
    pub order: Vec<String>,
    /// Services to deploy, grouped for display (the scheduler does not wait for whole waves).
    pub waves: Vec<Vec<String>>,
    /// Set on pull-request builds: nothing is deployed.
    pub pull_request: Option<PullRequest>,
    pub notes: Vec<String>,
}

impl ServicePlan {
    /// Planned only for [`Reason::NotReceived`]: nothing of its own changed, so a deploy
    /// checks it against its record, as a dependent, rather than deploying it whatever it holds.
    pub fn only_not_received(&self) -> bool {
        !self.reasons.is_empty()
            && self
                .reasons
                .iter()
                .all(|r| matches!(r, Reason::NotReceived { .. }))
    }
}

impl Plan {
    pub fn to_deploy(&self) -> impl Iterator<Item = &ServicePlan> {
        self.services.iter().filter(|s| s.action == Action::Deploy)
    }

    pub fn service(&self, name: &str) -> Option<&ServicePlan> {
        self.services.iter().find(|s| s.name == name)
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("a plan serialises")
    }

    /// The JSON of [`Plan::to_json`] and a newline, written straight to `w` (with thousands of
    /// services it is megabytes: no copy of it is built first).
    pub fn write_json(&self, mut w: impl std::io::Write) -> std::io::Result<()> {
        let mut ser = serde_json::Serializer::with_formatter(&mut w, render::Pretty::default());
        self.serialize(&mut ser).map_err(std::io::Error::from)?;
        w.write_all(b"\n")?;
        w.flush()
    }
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PlanError {
    #[error(transparent)]
    Stage(#[from] ferry_manifest::StageError),
    #[error("unknown service `{name}`{hint}; known services: {known}")]
    UnknownService {
        name: String,
        hint: String,
        known: String,
    },
    #[error("{cause} (--strict refuses to treat every service as changed)")]
    Strict { cause: BaseUnavailable },
    #[error(transparent)]
    Changes(ChangesError),
    #[error(transparent)]
    Owners(#[from] ferry_changes::OwnersError),
}

/// Plans a deploy of `req.stage`. `repo` is `Err` when the root is not a git repository; that
/// matters only if a base is needed.
pub fn plan(
    ws: &Workspace,
    repo: Result<&Repo, &BaseUnavailable>,
    req: &PlanRequest,
) -> Result<Plan, PlanError> {
    let stage = ws.stage(&req.stage)?;
    let graph = ws.graph();
    let candidates = reasons::candidates(graph, &req.services)?;

    let mut reasons = Reasons::new();
    let mut compared = match &req.force {
        Some(by) => {
            reasons::forced(&candidates, by, &mut reasons);
            Compared::default()
        }
        None => {
            let groups = bases::group_by_base(&candidates, req.since.as_deref(), &req.bases);
            reasons::not_deployed(&groups.no_base, &mut reasons);
            diff::compare_bases(ws, &stage, repo, req, groups.by_base, &mut reasons)?
        }
    };
    diff::recorded_but_gone(ws, &stage, repo, req, &mut compared);
    let Compared {
        bases,
        removed,
        taken_names,
        notes: compared_notes,
    } = compared;
    reasons::from_stacks(&req.stacks, &candidates, &mut reasons);
    if req.with_dependents {
        reasons::dependents(graph, &mut reasons);
    }

    let deploying = reasons::deploying(&reasons);
    let services = service_plans(ws, graph, &stage, reasons, &deploying, &removed);
    // Indirect dependencies count: a service waits for one it reaches through a skipped one.
    let deploy_graph = graph.reachability_subgraph(&deploying);
    let (pull_request, mut notes) = notes(ws, &stage, req, &removed, &taken_names);
    notes.extend(compared_notes);
    if stage.config.approval && !deploying.is_empty() {
        // What a person does next in such a stage: a plain deploy is refused.
        notes.push(format!(
            "stage `{}` needs review and approval (approval = true): `deploy {} --review` (or `promote … {} --review`) shows these changes and keeps them for `approve {} <release>`, which deploys them",
            stage.name, stage.name, stage.name, stage.name
        ));
    }
    Ok(Plan {
        stage: stage.name.clone(),
        stage_id: stage.id.clone(),
        preview: stage.preview,
        region: stage.config.region.clone(),
        head: head_info(repo, &req.head),
        bases,
        order: deploy_graph.topo_order(),
        waves: deploy_graph.waves(),
        services,
        pull_request,
        notes,
    })
}

/// Every service that has reasons, in execution order, deploying when it is in `deploying`;
/// then the removed services (name → folder), which always skip.
fn service_plans(
    ws: &Workspace,
    graph: &ferry_graph::DepGraph,
    stage: &Stage,
    reasons: Reasons,
    deploying: &BTreeSet<String>,
    removed: &BTreeMap<String, RemovedService>,
) -> Vec<ServicePlan> {
    let sub;
    let order = if reasons.len() == graph.len() {
        graph
    } else {
        sub = graph.subgraph(&reasons.keys().cloned().collect());
        &sub
    };
    // `order`'s names are the keys of `reasons`: both sorted, so a name's position in one is
    // its position in the other. The graph's names are the workspace's services, also sorted,
    // so with every service planned a position names the service too: a thousand services cost
    // no search each.
    let every = order.len() == graph.len();
    let mut slots: Vec<(String, Vec<Reason>)> = reasons.into_iter().collect();
    assert!(
        order.nodes().eq(slots.iter().map(|(n, _)| n.as_str())),
        "the plan's graph and its reasons name the same services"
    );
    let mut deploys = vec![false; graph.len()];
    for d in deploying {
        if let Some(at) = graph.position(d) {
            deploys[at] = true;
        }
    }
    let mut services: Vec<ServicePlan> = order
        .topo_positions()
        .into_iter()
        .map(|pos| {
            let (name, reasons) = std::mem::take(&mut slots[pos]);
            let at = if every {
                Some(pos)
            } else {
                graph.position(&name)
            };
            let service = at
                .and_then(|at| ws.services.get(at))
                .filter(|s| s.name == name)
                .or_else(|| ws.service(&name));
            ServicePlan {
                kind: service.map(|s| s.kind),
                stack_name: match service {
                    Some(s) => ws.service_stack_name(s, stage),
                    None => ws.stack_name(&name, stage),
                },
                action: if at.is_some_and(|at| deploys[at]) {
                    Action::Deploy
                } else {
                    Action::Skip
                },
                depends_on: at
                    .map(|at| graph.dependencies_at(at))
                    .unwrap_or_default()
                    .into_iter()
                    .map(String::from)
                    .collect(),
                reasons,
                name,
                checked: None,
            }
        })
        .collect();
    for (name, removed) in removed {
        services.push(ServicePlan {
            name: name.clone(),
            kind: None,
            stack_name: removed.stack.clone(),
            action: Action::Skip,
            reasons: vec![Reason::Removed {
                dir: removed.dir.clone(),
                renamed_to: removed.renamed_to.clone(),
                stack_kept: removed.stack_kept,
            }],
            depends_on: Vec::new(),
            checked: None,
        });
    }
    services
}

/// The head as given, and the commit it is at.
fn head_info(repo: Result<&Repo, &BaseUnavailable>, head: &Head) -> HeadInfo {
    let commit = match (head, repo) {
        (Head::Rev(rev), Ok(r)) => r.resolve(rev),
        (Head::WorkingTree, Ok(r)) => r.head_commit(),
        (_, Err(_)) => None,
    };
    HeadInfo {
        kind: match head {
            Head::WorkingTree => "working-tree",
            Head::Rev(_) => "commit",
        },
        commit: commit.map(|c| c.to_string()),
        rev: match head {
            Head::Rev(r) => Some(r.clone()),
            Head::WorkingTree => None,
        },
    }
}

/// The pull request of a pull-request build (nothing deploys), and the plan's notes: that
/// pull-request builds skip deployment, that the stage is a preview stage, that removed
/// services keep their stacks, that a name's stack gets another folder's template.
fn notes(
    ws: &Workspace,
    stage: &Stage,
    req: &PlanRequest,
    removed: &BTreeMap<String, RemovedService>,
    taken_names: &[TakenName],
) -> (Option<PullRequest>, Vec<String>) {
    let mut notes = Vec::new();
    let ci = &req.ci;
    let pull_request = match &ci.trigger {
        ferry_ci::Trigger::PullRequest { id } => {
            let id = ferry_ci::pull_request_number(id).unwrap_or(id);
            let source = ci.trigger_source.clone();
            let shown = source.as_deref().unwrap_or("pull request build");
            notes.push(if req.from_ci {
                format!(
                    "this is pull request {id}'s build ({shown}): it deploys only its preview stage `{}`, which [ci] pull-requests gives it",
                    stage.name
                )
            } else {
                format!(
                    "deployment is skipped for pull requests ({shown}); the plan shows what a deploy would do"
                )
            });
            Some(PullRequest {
                id: id.to_string(),
                source,
                deploys: req.from_ci,
            })
        }
        _ => None,
    };
    if stage.preview {
        // A typo of a named stage would otherwise plan a whole new environment without a word.
        let hint = ferry_manifest::did_you_mean(&stage.name, ws.stages.keys().map(String::as_str));
        notes.push(format!(
            "`{}` is a preview stage (configured by [stages.\"*\"]); its stacks use the id `{}`{hint}",
            stage.name, stage.id
        ));
    }
    for (name, r) in removed.iter().filter(|(_, r)| r.stack_kept) {
        let now = r.renamed_to.as_deref().unwrap_or_default();
        let dir = ws.service(now).map_or(r.dir.as_str(), |s| s.dir.as_str());
        notes.push(format!(
            "service {name} was renamed to {now}, whose stack {} is not named after it (its framework or its stack-name names it), so it is the same stack, still tagged for {name}: a deploy of {now} is refused as another service's unless `deploy {} --adopt` takes the stack over for {now} (dropping the record of {name}); or keep `name = \"{name}\"` in {dir}/{}",
            r.stack,
            stage.name,
            ferry_manifest::SERVICE_FILE
        ));
    }
    let removed: Vec<(&String, &RemovedService)> =
        removed.iter().filter(|(_, r)| !r.stack_kept).collect();
    if !removed.is_empty() {
        let names: Vec<String> = removed
            .iter()
            .map(|(name, r)| match &r.renamed_to {
                Some(now) => format!("{name} (renamed to {now})"),
                None => name.to_string(),
            })
            .collect();
        notes.push(format!(
            "removed service(s) {}: a deploy does not delete their stacks; `remove {} --orphans{}` does, once the services that replace them are deployed",
            names.join(", "),
            stage.name,
            if stage.config.protected {
                " --allow-protected"
            } else {
                ""
            }
        ));
    }
    for t in taken_names {
        notes.push(format!(
            "service name `{}` moved from {} to {} while {} goes on as `{}`: its stack {} will be deployed from {}, replacing what {} deployed there; if that is not meant, give the names back",
            t.name,
            t.from_dir,
            t.to_dir,
            t.from_dir,
            t.old_dir_now,
            ws.stack_name(&t.name, stage),
            t.to_dir,
            t.from_dir
        ));
    }
    (pull_request, notes)
}
