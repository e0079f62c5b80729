//! Nothing to build: the script exists so that the build-dependency in `Cargo.toml` takes part
//! in feature resolution.

fn main() {}
