//! The integration tests of `ferry-package`, one module per file, in one test binary.

mod package;
mod sam;
