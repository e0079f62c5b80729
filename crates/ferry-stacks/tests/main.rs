//! The integration tests of `ferry-stacks`, one module per file, in one test binary.

mod emulator;
mod statuses;
