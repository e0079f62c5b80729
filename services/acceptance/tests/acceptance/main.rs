//! Acceptance tests of the example shop, one module per service. Each runs against the stage
//! Ferry hands it (`FERRY_*` variables, stack outputs, credentials) and checks behaviour the
//! local emulator really provides: no Lambda invocation, which needs a container engine.

mod api;
mod database;
mod events;
mod frontend;
mod fulfilment;
mod notifier;

use ferry_kit::StageEnv;

/// The stage under test.
pub fn stage() -> StageEnv {
    StageEnv::from_env().unwrap_or_else(|e| panic!("{e}"))
}

/// A value unique to this run, for keys and messages that must not meet earlier runs'.
pub fn unique(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{prefix}-{}-{nanos}", std::process::id())
}
