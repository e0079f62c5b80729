//! The plan of a deploy: for every candidate service of a stage, `deploy` or `skip`, with typed
//! reasons, in execution order and waves.
//!
//! [`plan`] composes the manifest (services, graph, stage), change detection (one diff per
//! distinct base) and the CI context. It makes no AWS call: bases come from `--since` or from
//! deployment records that the caller has already read. Every "deploy everything" fallback carries
//! a named reason.

mod render;

use std::collections::{BTreeMap, BTreeSet};

use ferry_changes::{BaseUnavailable, ChangesError, Head, Owners, Repo, ServiceSpec};
use ferry_ci::CiContext;
use ferry_manifest::{SERVICE_FILE, Workspace};
use serde::Serialize;

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
    /// The service's folder is gone at head but was there at the base. Ferry never deletes a
    /// stack on its own.
    Removed { dir: String },
    /// A dependency deploys and `--with-dependents` was given.
    Dependent { of: Vec<String> },
    /// Nothing of the service changed since `since`.
    Unchanged { since: String },
    /// The stack is gone though the service's record says it was deployed (deleted outside
    /// Ferry).
    StackMissing { stack: String },
    /// The stack is in a failed state (e.g. `ROLLBACK_COMPLETE`, `UPDATE_ROLLBACK_FAILED`).
    StackFailed { stack: String, status: String },
    /// The stack changed outside Ferry since its record (updated, replaced, or busy).
    Drifted { stack: String, detail: String },
}

#[derive(Debug, Clone, Serialize)]
pub struct ServicePlan {
    pub name: String,
    pub stack_name: String,
    pub action: Action,
    pub reasons: Vec<Reason>,
    pub depends_on: Vec<String>,
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
        serde_json::to_writer_pretty(&mut w, self).map_err(std::io::Error::from)?;
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
    let known: Vec<&str> = graph.nodes().collect();
    for s in &req.services {
        if !graph.contains(s) {
            let hint = ferry_manifest::did_you_mean(s, known.iter().copied());
            return Err(PlanError::UnknownService {
                name: s.clone(),
                hint,
                known: known.join(", "),
            });
        }
    }
    let candidates: BTreeSet<String> = if req.services.is_empty() {
        known.iter().map(|s| s.to_string()).collect()
    } else {
        graph.with_dependencies(req.services.iter().map(String::as_str))
    };

    let mut reasons: BTreeMap<String, Vec<Reason>> = BTreeMap::new();
    let mut bases = Vec::new();
    let mut removed: BTreeMap<String, String> = BTreeMap::new();
    let head_commit = match (&req.head, repo) {
        (Head::Rev(rev), Ok(r)) => r.resolve(rev),
        (Head::WorkingTree, Ok(r)) => r.head_commit(),
        (_, Err(_)) => None,
    };

    if let Some(by) = &req.force {
        for c in &candidates {
            reasons
                .entry(c.clone())
                .or_default()
                .push(Reason::Forced { by: by.clone() });
        }
    } else {
        // Group candidates by base: services that share a base share one diff.
        let mut groups: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        for c in &candidates {
            match req
                .since
                .as_deref()
                .or(req.bases.get(c).map(String::as_str))
            {
                Some(base) => groups.entry(base).or_default().push(c),
                None => reasons
                    .entry(c.clone())
                    .or_default()
                    .push(Reason::NotDeployed),
            }
        }
        let owners = if groups.is_empty() {
            None
        } else {
            Some(owners(ws)?)
        };
        for (base, members) in groups {
            let outcome = match repo {
                Ok(r) => r
                    .changed_paths(base, &req.head)
                    .map(|c| (r.resolve(base), c)),
                Err(cause) => Err(ChangesError::BaseUnavailable(cause.clone())),
            };
            let (base_commit, changed) = match outcome {
                Ok(ok) => ok,
                Err(ChangesError::BaseUnavailable(cause)) => {
                    if req.strict {
                        return Err(PlanError::Strict { cause });
                    }
                    let message = cause.to_string();
                    for m in &members {
                        reasons
                            .entry(m.to_string())
                            .or_default()
                            .push(Reason::BaseUnavailable {
                                base: Some(base.to_string()),
                                cause: cause.clone(),
                                message: message.clone(),
                            });
                    }
                    bases.push(BaseInfo {
                        base: base.to_string(),
                        commit: None,
                        services: members.iter().map(|m| m.to_string()).collect(),
                        unavailable: Some(message),
                        paths: None,
                    });
                    continue;
                }
                Err(e) => return Err(PlanError::Changes(e)),
            };
            let owners = owners.as_ref().expect("built when there are groups");
            let affected = owners.classify(&changed.paths);
            let since = base_commit.map_or_else(|| base.to_string(), ferry_changes::short);
            for m in &members {
                let r = reasons.entry(m.to_string()).or_default();
                if let Some(paths) = affected.services.get(*m) {
                    r.push(Reason::Changed {
                        paths: paths.iter().cloned().collect(),
                    });
                }
                if !affected.global.is_empty() {
                    r.push(Reason::GlobalInput {
                        paths: affected.global.iter().cloned().collect(),
                    });
                }
                if r.is_empty() {
                    r.push(Reason::Unchanged {
                        since: since.clone(),
                    });
                }
            }
            if let (Ok(r), Some(commit)) = (repo, base_commit) {
                for (dir, name) in removed_services(ws, r, commit, &changed.deleted) {
                    removed.entry(name).or_insert(dir);
                }
            }
            let paths = req.explain.then(|| {
                changed
                    .paths
                    .iter()
                    .map(|p| PathOwners {
                        path: p.clone(),
                        services: owners
                            .services_of(p)
                            .into_iter()
                            .map(String::from)
                            .collect(),
                        global: owners.is_global(p),
                    })
                    .collect()
            });
            bases.push(BaseInfo {
                base: base.to_string(),
                commit: base_commit.map(|c| c.to_string()),
                services: members.iter().map(|m| m.to_string()).collect(),
                unavailable: None,
                paths,
            });
        }
    }

    // What the stacks say comes on top of what git says: a stack deleted or changed outside
    // Ferry deploys whatever its files did.
    for (service, reason) in &req.stacks {
        if candidates.contains(service) {
            let r = reasons.entry(service.clone()).or_default();
            r.retain(|x| !matches!(x, Reason::Unchanged { .. }));
            r.push(reason.clone());
        }
    }

    let deploys = |reasons: &BTreeMap<String, Vec<Reason>>| -> BTreeSet<String> {
        reasons
            .iter()
            .filter(|(_, r)| r.iter().any(is_deploy_reason))
            .map(|(n, _)| n.clone())
            .collect()
    };
    if req.with_dependents {
        let deploying = deploys(&reasons);
        for dependent in graph.with_dependents(deploying.iter().map(String::as_str)) {
            if deploying.contains(&dependent) {
                continue;
            }
            let of: Vec<String> = graph
                .with_dependencies([dependent.as_str()])
                .intersection(&deploying)
                .cloned()
                .collect();
            let r = reasons.entry(dependent).or_default();
            r.retain(|x| !matches!(x, Reason::Unchanged { .. }));
            r.push(Reason::Dependent { of });
        }
    }

    let deploying = deploys(&reasons);
    let order = if reasons.len() == graph.len() {
        graph.topo_order()
    } else {
        graph
            .subgraph(&reasons.keys().cloned().collect())
            .topo_order()
    };
    let mut services: Vec<ServicePlan> = order
        .into_iter()
        .map(|name| {
            let r = reasons.remove(&name).unwrap_or_default();
            ServicePlan {
                stack_name: ws.stack_name(&name, &stage),
                action: if deploying.contains(&name) {
                    Action::Deploy
                } else {
                    Action::Skip
                },
                depends_on: graph
                    .dependencies(&name)
                    .into_iter()
                    .map(String::from)
                    .collect(),
                reasons: r,
                name,
            }
        })
        .collect();
    for (name, dir) in &removed {
        services.push(ServicePlan {
            name: name.clone(),
            stack_name: ws.stack_name(name, &stage),
            action: Action::Skip,
            reasons: vec![Reason::Removed { dir: dir.clone() }],
            depends_on: Vec::new(),
        });
    }
    let deploy_graph = graph.subgraph(&deploying);

    let mut notes = Vec::new();
    let pull_request = match &req.ci.trigger {
        ferry_ci::Trigger::PullRequest { id } => {
            let source = req.ci.trigger_source.clone();
            notes.push(format!(
                "deployment is skipped for pull requests ({}); the plan shows what a deploy would do",
                source.as_deref().unwrap_or("pull request build")
            ));
            Some(PullRequest {
                id: id.clone(),
                source,
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
    if !removed.is_empty() {
        notes.push(format!(
            "removed service(s) {}: their stacks are not deleted by a deploy; remove them explicitly",
            removed.keys().cloned().collect::<Vec<_>>().join(", ")
        ));
    }

    Ok(Plan {
        stage: stage.name.clone(),
        stage_id: stage.id.clone(),
        preview: stage.preview,
        region: stage.config.region.clone(),
        head: HeadInfo {
            kind: match req.head {
                Head::WorkingTree => "working-tree",
                Head::Rev(_) => "commit",
            },
            commit: head_commit.map(|c| c.to_string()),
            rev: match &req.head {
                Head::Rev(r) => Some(r.clone()),
                Head::WorkingTree => None,
            },
        },
        bases,
        order: deploy_graph.topo_order(),
        waves: deploy_graph.waves(),
        services,
        pull_request,
        notes,
    })
}

fn is_deploy_reason(r: &Reason) -> bool {
    !matches!(r, Reason::Unchanged { .. } | Reason::Removed { .. })
}

/// Who owns which paths, for every service of the workspace (not only the candidates: a path of
/// a nested service must not be attributed to the folder around it).
fn owners(ws: &Workspace) -> Result<Owners<'_>, PlanError> {
    let specs = ws.services.iter().map(|s| ServiceSpec {
        name: &s.name,
        dir: &s.dir,
        inputs: &s.inputs,
        // Files inside the folder are owned through it already; only a template outside it
        // needs naming.
        files: if s.template.split('/').any(|seg| seg == "..") {
            vec![s.template_path()]
        } else {
            Vec::new()
        },
    });
    Ok(Owners::new(specs, &ws.project.global_inputs)?)
}

/// Services whose manifest was deleted and whose folder is no service at head: `(dir, name)`.
fn removed_services(
    ws: &Workspace,
    repo: &Repo,
    base: ferry_changes::Oid,
    deleted: &BTreeSet<String>,
) -> Vec<(String, String)> {
    deleted
        .iter()
        .filter_map(|p| p.strip_suffix(&format!("/{SERVICE_FILE}")))
        .filter(|dir| !ws.services.iter().any(|s| s.dir == *dir))
        .map(|dir| {
            let folder = dir.rsplit('/').next().unwrap_or(dir).to_string();
            let name = repo
                .file_at(base, &format!("{dir}/{SERVICE_FILE}"))
                .and_then(|src| ferry_manifest::declared_service_name(&src))
                .unwrap_or(folder);
            (dir.to_string(), name)
        })
        .filter(|(_, name)| ws.service(name).is_none())
        .collect()
}
