#![doc = include_str!("../README.md")]
//! Deploys one stage.
//!
//! [`deploy`] takes a [`Plan`](ferry_plan::Plan) and runs its services on the graph scheduler:
//! each service starts the moment its dependencies are done. For each one it resolves the
//! parameters (outputs of this run's deploys, or read once from the stacks; SSM values), then
//! either deploys the stack or, for a dependent whose own files did not change, skips it when its
//! template and resolved parameters equal its record — so a dependent redeploys only when what it
//! receives really changed. A record is written only after the stack reached a COMPLETE state; a
//! failure skips only the failed service's dependents, everything independent finishes.
//!
//! The crate by concern: [`preflight`](mod@preflight) (the tree a deploy starts from),
//! [`prepare`](mod@prepare) (the package), `run` (the scheduler run and one service's deploy),
//! `parameters`, `site`, [`acceptance`](mod@acceptance) (tests of deployed services),
//! [`report`](mod@report), [`remove`](mod@remove), [`state`] (records and stacks as they are),
//! [`release`](mod@release) (releases; promote and rollback of stored packages),
//! [`batch`](mod@batch) (one service deployed as a node of a deploy spread over CI machines),
//! [`previews`](mod@previews) (preview stages found from stacks and records; which are gone),
//! [`notify`](mod@notify) (a run's changes of state announced).

pub mod acceptance;
pub mod batch;
pub mod bootstrap;
mod emulator;
mod error;
pub mod notify;
mod outputs;
mod parameters;
pub mod preflight;
pub mod prepare;
pub mod previews;
pub mod release;
pub mod remove;
pub mod report;
mod run;
mod site;
pub mod state;

use ferry_manifest::{Stage, Workspace};
use ferry_stacks::Ownership;

pub use acceptance::{
    StageAccess, TestError, Tested, approval_tests_owed, failed_before, test_deployed, tests_owed,
    unvouched, vouched,
};
pub use error::ServiceError;
pub use outputs::{IncompleteOutputs, MissingStacks, StageOutputs, stage_outputs};
pub use parameters::{
    Registered, register_env_secrets, register_named_env_secrets, register_secrets, stages_read,
};
pub use preflight::{
    PreflightError, Tree, TreeError, check_not_behind, head_commit, preflight, preflight_tree,
};
pub use prepare::{
    Check, Origin, PrepareError, PrepareOptions, Prepared, RequestError, TemplateProblems,
    candidates, check_templates, mark_checks, package_request, prepare, reads_outside_git,
    stage_bucket,
};
pub use remove::{
    InUseError, RemoveContext, RemoveError, RemoveOptions, RemoveReport, check_removable, remove,
};
pub use report::{Summary, markdown, summary};
pub use run::{
    DeployContext, DeployOptions, DeployReport, Event, ExpandSam, ReleaseStamp, ReviewMoved,
    Selection, ServiceReport, ServiceResult, Source, check_review, deploy, deploy_selection,
};
pub use state::{StageState, StateError};

/// The stage's deployment records and lock: SSM parameters under its records path.
pub fn record_store(
    ws: &Workspace,
    stage: &Stage,
    config: &aws_config::SdkConfig,
) -> ferry_records::RecordStore {
    ferry_records::RecordStore::new(
        aws_sdk_ssm::Client::new(config),
        &stage.name,
        &ws.records_path(stage),
    )
    .named(!stage.preview)
}

/// Who `service`'s stack in `stage` belongs to: what its tags say, and what Ferry checks
/// before it updates, deletes or reads it.
pub fn ownership(ws: &Workspace, stage: &Stage, service: &str) -> Ownership {
    Ownership {
        project: ws.project.name.clone(),
        stage_id: stage.id.clone(),
        stage: stage.name.clone(),
        service: service.to_string(),
        named: !stage.preview,
    }
}
