//! The integration tests of `ferry-records`, one module per file, in one test binary.

mod emulator;
mod scripted;
