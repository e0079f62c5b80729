//! The integration tests of `ferry-credentials`, one module per file, in one test binary.

mod emulator;
mod scripted;
