//! The deploy engine for one CloudFormation stack.
//!
//! [`Engine::deploy`] looks at the stack's status and does what `shared/reference/cloudformation.md`
//! says for it: create, update, delete and re-create a stack whose first creation failed, wait for
//! another operation to finish, or stop with an error that says what to do. Both methods are
//! supported (change sets, and direct create/update, ~40% faster and the only one whose outputs
//! the local emulator publishes). Every form of "nothing to do" is a success: an empty change set
//! (FAILED status or an error at creation) and "No updates are to be performed". Waits are
//! bounded, with backoff, and the events of the operation are streamed to a callback.

mod engine;
mod error;
mod status;

pub use engine::{
    Action, DeployOptions, Deployed, Engine, Method, Progress, StackEvent, StackSpec,
    TemplateSource,
};
pub use error::StackError;
pub use status::{Disposition, disposition};

/// Largest template CloudFormation accepts inline; larger ones must be given as an S3 URL.
pub const MAX_INLINE_TEMPLATE: usize = 51_200;
