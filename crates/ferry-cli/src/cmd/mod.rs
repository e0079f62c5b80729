//! One module per command: arguments, crate calls, output.

pub mod acceptance;
pub mod batch;
pub mod bootstrap;
pub mod deploy;
pub mod init;
pub mod local;
pub mod outputs;
pub mod package;
pub mod plan;
pub mod previews;
pub mod release;
pub mod remove;
pub mod scripts;
pub mod services;
pub mod stage;
