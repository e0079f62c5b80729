//! The integration tests of `ferry-serverless`, one module per file, in one test binary.

mod compile;
mod links;
mod rewrite;
