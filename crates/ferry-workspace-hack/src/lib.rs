#![doc = include_str!("../README.md")]
//! This crate has no code; its `Cargo.toml` is what matters.
