//! The integration tests of `ferry-manifest`, one module per file, in one test binary.

mod corpus;
mod workspace;
