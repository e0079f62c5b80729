//! Deploying a stage's bootstrap stack (what `ferry-bootstrap` plans: artifact bucket, deployer
//! role, notification topic, optionally a CodeBuild project) with the stack engine, and leaving
//! it alone when it already is what it should be.
//!
//! - The role does not exist before its bootstrap: the caller's engine runs with the base
//!   credentials, not the stage's role.
//! - The stack carries Ferry's ownership tags (service `_bootstrap`, the stage id `previews` for
//!   the preview stages); a stack of that name owned by anything else is refused.
//! - A stack that is complete (not rolled back), owned so, and whose deployed template parses
//!   to the same JSON as `body` is not written at all.
//! - It is deployed directly (no change set) with termination protection: its template is
//!   reviewed with `bootstrap --print`, and an unchanged one is never sent.

use std::collections::BTreeMap;

use ferry_bootstrap::Bootstrap;
use ferry_manifest::{Stage, Workspace};
use ferry_stacks::{
    Action, Engine, Method, Ownership, Progress, StackError, StackSpec, TemplateSource,
};

/// What applying a bootstrap did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    /// What the stack operation did; `None`: the stack was up to date and nothing was written.
    pub action: Option<Action>,
    /// The stack's outputs (`ArtifactBucket`, `DeployerRole`, `NotificationTopic`, …).
    pub outputs: BTreeMap<String, String>,
}

/// The ownership tags of `stage`'s bootstrap stack.
pub fn owner(ws: &Workspace, stage: &Stage) -> Ownership {
    Ownership {
        project: ws.project.name.clone(),
        stage_id: ferry_bootstrap::stage_id(stage).to_string(),
        stage: stage.name.clone(),
        service: ferry_bootstrap::BOOTSTRAP_SERVICE.into(),
        named: !stage.preview,
    }
}

/// Deploys `b` (its template `body`) for `stage` with `engine`, unless the stack already is
/// exactly that; `on` hears the stack's progress.
pub async fn apply(
    engine: &Engine,
    ws: &Workspace,
    stage: &Stage,
    b: &Bootstrap,
    body: &str,
    on: &(dyn Fn(Progress) + Send + Sync),
) -> Result<Applied, StackError> {
    let owner = owner(ws, stage);
    let name = &b.stack_name;
    let current = engine.describe(name).await?;
    if let Some(info) = &current
        && info.status.ends_with("_COMPLETE")
        && !info.status.contains("ROLLBACK")
    {
        ferry_stacks::verify(name, info, Some(&owner), false)?;
        let parse = |t: &str| serde_json::from_str::<serde_json::Value>(t).ok();
        let deployed = engine.template(name).await?;
        if deployed.as_deref().and_then(parse) == parse(body) {
            return Ok(Applied {
                action: None,
                outputs: info.outputs.clone(),
            });
        }
    }
    let spec = StackSpec {
        name: name.clone(),
        template: TemplateSource::Body(body.to_string()),
        parameters: Default::default(),
        tags: Default::default(),
        // CreateStack sets termination protection itself.
        method: Method::Direct,
        termination_protection: true,
        owner: Some(owner),
        adopt: false,
        renamed_from: None,
    };
    let done = engine.deploy(&spec, on).await?;
    Ok(Applied {
        action: Some(done.action),
        outputs: done.outputs,
    })
}
