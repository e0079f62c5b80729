#![doc = include_str!("../README.md")]
//! The deploy engine for one CloudFormation stack.
//!
//! [`Engine::deploy`] looks at the stack's status and does what the table in [`status`] says for
//! it: create, update, delete and re-create a stack whose first creation failed, wait for
//! another operation to finish, or stop with an error that says what to do. Before it touches an
//! existing stack it checks the stack's ownership tags ([`ownership`]): a stack of another
//! project or stage is never updated, deleted or read as this one's. Both methods are
//! supported (change sets, and direct create/update, ~40% faster and the only one whose outputs
//! the local emulator publishes). Every form of "nothing to do" is a success: an empty change set
//! (FAILED status or an error at creation) and "No updates are to be performed". Waits are
//! bounded, with backoff, and the events of the operation are streamed to a callback.

mod engine;
mod error;
pub mod ownership;
pub mod status;

pub use engine::{
    Action, DeployOptions, Deployed, EMULATOR_BUSY_WAIT, Engine, Method, Progress, StackEvent,
    StackInfo, StackList, StackResource, StackSpec, StackSummary, TemplateSource, verify,
};
pub use error::{Refuser, StackError};
pub use ownership::{Ownership, Verdict};
pub use status::{Disposition, disposition, is_stable};

/// Largest template CloudFormation accepts inline, in bytes; larger ones must be given as an S3
/// URL. Defined once, in `ferry-aws`, for this crate and packaging alike.
pub use ferry_aws::MAX_INLINE_TEMPLATE;
