//! The integration tests of `ferry-deploy`, one module per file, in one test binary.

mod checkout;
mod rollback;
mod rules;
