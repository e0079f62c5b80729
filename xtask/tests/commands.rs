//! The binary's tests, one module per command family, in one test binary: every file linked
//! on its own carried the whole of Ferry and the AWS SDK again (14 binaries of about 50 MB
//! each, and an emulator started for each that used one), for no gain in isolation, since the tests already share
//! one emulator by unique project names. `init.rs` stays a binary of its own: one of its tests
//! rebuilds a binary named `xtask` in this target folder, which no other test may run meanwhile.

mod common;

mod aws;
mod bad_inputs;
mod batch;
mod bootstrap;
mod cli;
mod deploy;
mod example;
mod notify;
mod package;
mod previews;
mod release;
mod remove;
mod safety;
mod scripts;
