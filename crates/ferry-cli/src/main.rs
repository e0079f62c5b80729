//! `ferry`: Ferry's command line for repositories that are not Rust workspaces
//! (`cargo install --locked --path crates/ferry-cli`). It works on the repository holding `ferry.toml`
//! at or above the current folder (or `--root`).

fn main() -> std::process::ExitCode {
    ferry_cli::main(&ferry_cli::App::ferry())
}
