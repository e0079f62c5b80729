//! `local up|down|status|env`.

use anyhow::Context as _;
use ferry_local::Status;

use crate::Ctx;

#[derive(Debug, clap::Subcommand)]
pub enum LocalCmd {
    /// Install the pinned moto server (once) and start it on 127.0.0.1; does nothing if it runs
    Up {
        /// Port to listen on; 0 picks a free one
        #[arg(long, default_value_t = 0)]
        port: u16,
    },
    /// Stop the emulator started by `local up` (only that process)
    Down,
    /// Say whether the emulator runs, and where; where it is installed
    Status,
    /// Print the environment a shell needs to use the emulator: eval "$(ferry local env)" (or
    /// `cargo xtask local env`)
    Env {
        /// Region to put in AWS_REGION (a region's name, such as eu-west-1: what is printed is
        /// run by the shell)
        #[arg(long, default_value = "us-east-1", value_parser = region)]
        region: String,
    },
}

pub fn run(ctx: &Ctx, cmd: &LocalCmd) -> anyhow::Result<()> {
    let emu = ctx.emulator();
    match cmd {
        LocalCmd::Up { port } => {
            let emu = ctx.checked_emulator()?;
            emu.ensure_installed(|step| eprintln!("local: {step}"))
                .context("failed to install the local AWS emulator")?;
            let (state, started) = emu
                .up(*port)
                .context("failed to start the local AWS emulator")?;
            let what = if started {
                "started"
            } else {
                "already running"
            };
            println!(
                "local AWS emulator {what} at {} (pid {}, moto {})",
                state.endpoint(),
                state.pid,
                state.moto_version
            );
            eprintln!(
                "use it with --local, or in a shell: eval \"$({} local env)\"",
                ctx.app.name
            );
        }
        LocalCmd::Down => match emu
            .down()
            .context("failed to stop the local AWS emulator")?
        {
            Some(state) => println!(
                "local AWS emulator stopped (pid {}, was at {})",
                state.pid,
                state.endpoint()
            ),
            None => println!("local AWS emulator is not running"),
        },
        LocalCmd::Status => {
            match emu.status()? {
                Status::Running(state) => println!(
                    "local AWS emulator running at {} (pid {}, moto {}, log {})",
                    state.endpoint(),
                    state.pid,
                    state.moto_version,
                    emu.log_path().display()
                ),
                Status::Stale(state) => println!(
                    "local AWS emulator is not running (pid {} recorded at port {} is gone or does not answer; `{} local up` stops it if it is ours and starts a new one)",
                    state.pid, state.port, ctx.app.name
                ),
                Status::NotStarted => {
                    println!(
                        "local AWS emulator is not running (`{} local up` starts it)",
                        ctx.app.name
                    )
                }
            }
            let shared = ferry_local::user_cache().is_some_and(|c| emu.installs().starts_with(c));
            println!(
                "installation: {}, {}; {}",
                emu.venv().display(),
                if shared {
                    "shared by every repository of this user (FERRY_CACHE_DIR moves it)"
                } else {
                    "this repository's own (no cache folder of the user's could be made; FERRY_CACHE_DIR names one)"
                },
                if emu.is_installed() {
                    "installed"
                } else {
                    "not installed yet (`local up` or any --local run installs it)"
                }
            );
        }
        LocalCmd::Env { region } => {
            let Status::Running(state) = emu.status()? else {
                anyhow::bail!(
                    "the local AWS emulator is not running; start it with `{} local up`",
                    ctx.app.name
                );
            };
            for (key, value) in ferry_local::client_env(&state.endpoint(), region) {
                println!("export {key}={value}");
            }
            for key in ferry_local::CLEARED_ENV {
                println!("unset {key}");
            }
        }
    }
    Ok(())
}

/// A region's name, as `local env` prints it into shell code: nothing else may pass.
fn region(s: &str) -> Result<String, String> {
    if ferry_manifest::is_region_name(s) {
        Ok(s.to_string())
    } else {
        Err(format!(
            "`{}` is not a region's name (such as us-east-1 or eu-west-1)",
            ferry_manifest::clipped(s, 80).escape_debug()
        ))
    }
}

#[cfg(test)]
mod tests {
    /// What `local env` prints is run by a shell: a region that is not one is refused.
    #[test]
    fn only_a_region_s_name_is_printed_into_shell_code() {
        assert_eq!(super::region("eu-west-1").as_deref(), Ok("eu-west-1"));
        for bad in [
            "x;touch /tmp/pwned",
            "",
            " us-east-1",
            "us-east-1\n",
            "$(id)",
        ] {
            assert!(super::region(bad).is_err(), "{bad:?}");
        }
    }
}
