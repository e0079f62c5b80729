//! The example shop's acceptance tests live in `tests/acceptance/`, one module per service. They
//! are `#[ignore]`d so `cargo test` skips them: they need a deployed stage, and Ferry runs them
//! against one (`[acceptance] command` in each service's `service.toml`):
//!
//! ```sh
//! cargo xtask test-acceptance dev --local
//! ```
