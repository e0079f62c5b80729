//! What must hold before a deploy starts: the working tree a protected stage deploys from, and
//! the commit a deploy records.

use ferry_changes::Repo;
use ferry_ci::CiContext;
use ferry_manifest::{Stage, Workspace};
use ferry_plan::Plan;

use crate::Source;

/// Why a deploy does not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PreflightError {
    #[error(
        "stage `{stage}` is protected and the working tree has uncommitted changes ({paths}); commit or stash them, so that what is deployed is a commit{}",
        if .submodules.is_empty() { String::new() } else { format!(" (submodules at another commit than HEAD records or with changes of their own, {}: `git submodule update --recursive` checks out what HEAD records)", .submodules) }
    )]
    DirtyProtected {
        stage: String,
        paths: String,
        /// Those of the paths that are submodules.
        submodules: String,
    },
    #[error(
        "stage `{stage}` is protected and {root} is not a git repository, so nothing tells which commit would be deployed; deploy it from a git checkout"
    )]
    NotARepository { stage: String, root: String },
    #[error(
        "stage `{stage}` runs newer code than this build's commit for {services}: a CI build of an older commit (an old build run again?) does not take a stage back; nothing was deployed. To go back, `rollback {stage}`; to deploy this commit anyway, deploy it by hand, or with --all (FORCE_DEPLOY_ALL=true), which compares no base"
    )]
    OlderThanStage { stage: String, services: String },
    #[error(
        "stage `{stage}` runs, for {services}, a commit this shallow clone's history ends before: a CI build that cannot tell whether it is older than the stage does not deploy, as it could take the stage back; nothing was deployed. Give the build the whole history (GitHub Actions: `fetch-depth: 0`; CodeBuild: git-clone-depth 0; else `git fetch --unshallow` before Ferry), or deploy this commit anyway with --all (FORCE_DEPLOY_ALL=true), which compares no base"
    )]
    ShallowClone { stage: String, services: String },
}

/// A CI build never takes a stage back: a plan in which the stage runs, for some service, a
/// commit that descends from the build's (`head-behind`) is refused there (by hand, the
/// checkout is what the user chose to deploy, and the plan says so). So is one in which that
/// commit is hidden by a shallow clone's boundary: it may be the newer one (an old build run
/// again in a shallow clone). A commit a full clone lacks is taken as changed, as by hand: it
/// is one no branch holds (a deploy from a laptop's own commit, a force push), not a newer one.
pub fn check_not_behind(plan: &Plan, ci: &CiContext) -> Result<(), PreflightError> {
    use ferry_changes::BaseUnavailable as Cause;
    if !ci.is_ci() {
        return Ok(());
    }
    let mut behind = Vec::new();
    let mut shallow = Vec::new();
    for s in plan
        .services
        .iter()
        .filter(|s| plan.order.contains(&s.name))
    {
        for r in &s.reasons {
            let ferry_plan::Reason::BaseUnavailable { cause, .. } = r else {
                continue;
            };
            let (list, base) = match cause {
                Cause::HeadBehind { base, .. } => (&mut behind, base),
                Cause::Shallow { base } => (&mut shallow, base),
                _ => continue,
            };
            list.push(format!(
                "{} (runs {})",
                s.name,
                base.get(..12).unwrap_or(base)
            ));
        }
    }
    if !behind.is_empty() {
        return Err(PreflightError::OlderThanStage {
            stage: plan.stage.clone(),
            services: ferry_manifest::first_few(&behind, 10),
        });
    }
    if shallow.is_empty() {
        return Ok(());
    }
    Err(PreflightError::ShallowClone {
        stage: plan.stage.clone(),
        services: ferry_manifest::first_few(&shallow, 10),
    })
}

/// The working tree a deploy starts from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tree {
    /// A git checkout, with the paths that differ from its HEAD (Ferry's own output left out)
    /// and which of them are submodules.
    Git {
        dirty: Vec<String>,
        submodules: Vec<String>,
    },
    /// Not a git repository (e.g. a CodePipeline source zip).
    NotGit,
}

/// What to do before deploying: `Ok(Some(note))` means stop here successfully (pull requests).
pub fn preflight(
    plan: &Plan,
    ws: &Workspace,
    stage: &Stage,
    tree: &Tree,
) -> Result<Option<String>, PreflightError> {
    if let Some(pr) = &plan.pull_request
        && !pr.deploys
    {
        return Ok(Some(format!(
            "deployment is skipped for pull requests ({}); nothing was deployed",
            pr.source.as_deref().unwrap_or("pull request build")
        )));
    }
    preflight_tree(ws, stage, tree).map(|()| None)
}

/// A protected stage deploys only a commit: from a git checkout without uncommitted changes
/// (Ferry's own output aside), named when there are some.
pub fn preflight_tree(ws: &Workspace, stage: &Stage, tree: &Tree) -> Result<(), PreflightError> {
    if !stage.config.protected {
        return Ok(());
    }
    match tree {
        Tree::NotGit => Err(PreflightError::NotARepository {
            stage: stage.name.clone(),
            root: ws.root.display().to_string(),
        }),
        Tree::Git { dirty, submodules } if !dirty.is_empty() => {
            Err(PreflightError::DirtyProtected {
                stage: stage.name.clone(),
                paths: ferry_manifest::first_few(dirty, 10),
                submodules: ferry_manifest::first_few(submodules, 5),
            })
        }
        Tree::Git { .. } => Ok(()),
    }
}

/// Why the working tree could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TreeError {
    #[error("failed to read the state of the working tree of {}: {source}", .root.display())]
    Read {
        root: std::path::PathBuf,
        source: ferry_changes::ChangesError,
    },
}

impl Tree {
    /// The working tree of `ws` and the commit a deploy from it records: HEAD of a git checkout
    /// (dirty when a path other than Ferry's own output differs), else the CI's commit.
    pub fn read(ws: &Workspace, ci: &CiContext) -> Result<(Tree, Source), TreeError> {
        let Ok(repo) = Repo::open(&ws.root) else {
            let source = Source {
                commit: ci.commit.clone().unwrap_or_default(),
                dirty: false,
            };
            return Ok((Tree::NotGit, source));
        };
        let changes = repo.dirty_changes().map_err(|source| TreeError::Read {
            root: ws.root.clone(),
            source,
        })?;
        let dirty: Vec<String> = changes.paths.into_iter().collect();
        let source = Source {
            commit: commit_of(Some(&repo), ci),
            dirty: !dirty.is_empty(),
        };
        let submodules = changes.submodules.into_iter().collect();
        Ok((Tree::Git { dirty, submodules }, source))
    }
}

/// The commit of the checkout: its HEAD, else the CI's (a source zip), else empty.
pub fn head_commit(ws: &Workspace, ci: &CiContext) -> String {
    commit_of(Repo::open(&ws.root).ok().as_ref(), ci)
}

/// HEAD of `repo`, else the CI's commit, else empty.
fn commit_of(repo: Option<&Repo>, ci: &CiContext) -> String {
    repo.and_then(|r| r.head_commit())
        .map(|c| c.to_string())
        .or_else(|| ci.commit.clone())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_protected_stage_names_dirty_submodules_and_the_command_only_when_there_are_some() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("ferry.toml"),
            "[project]\nname = \"p\"\n\n[stages.prod]\nregion = \"us-east-1\"\nprotected = true\n",
        )
        .unwrap();
        std::fs::create_dir_all(dir.path().join("services/a")).unwrap();
        std::fs::write(
            dir.path().join("services/a/service.toml"),
            "[service]\ntemplate = \"template.yaml\"\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("services/a/template.yaml"),
            "Resources: {}\n",
        )
        .unwrap();
        let ws = ferry_manifest::load(dir.path()).unwrap();
        let stage = ws.stage("prod").unwrap();
        let dirty = |paths: &[&str], subs: &[&str]| Tree::Git {
            dirty: paths.iter().map(|p| p.to_string()).collect(),
            submodules: subs.iter().map(|p| p.to_string()).collect(),
        };
        let plain = preflight_tree(&ws, &stage, &dirty(&["a.txt"], &[]))
            .unwrap_err()
            .to_string();
        assert!(!plain.contains("submodule"), "{plain}");
        let sub = preflight_tree(
            &ws,
            &stage,
            &dirty(&["a.txt", "libs/common"], &["libs/common"]),
        )
        .unwrap_err()
        .to_string();
        assert!(
            sub.contains("(submodules at another commit than HEAD records or with changes of their own, libs/common: `git submodule update --recursive`"),
            "{sub}"
        );
    }
}
