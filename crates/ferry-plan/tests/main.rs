//! The integration tests of `ferry-plan`, one module per file, in one test binary.

mod example;
mod plan;
