//! `bench`: runs the benchmark targets, which print their own figures.

use xshell::{Shell, cmd};

use crate::project_root;

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum Benchmark {
    /// `plan` against `git diff` / `git status` on generated monorepos (1,000 and 5,000 services)
    Plan,
    /// Ferry's DAG scheduler against wave-by-wave scheduling on random graphs
    Scheduler,
    /// First and no-op deploys of 50 services against an `aws cloudformation deploy` loop
    Deploy,
    /// Packaging 2,000 files / 100 MB against `zip -rX` + `sha256sum`; re-package; reproducibility
    Package,
    /// Acceptance harness overhead: 20 services whose test command is `true`
    Acceptance,
    /// 20 Serverless Framework services: Ferry's compile (first, and with nothing changed)
    /// against a loop of the framework's own `package`
    Serverless,
    /// 50 services: a promote where every service is already at the promoted package (against a
    /// no-op deploy of the same stage), and a rollback where 5 differ (stacks touched, API calls)
    Release,
    /// 50 services deployed on one machine against the nodes of a batch build-graph run as
    /// separate processes; the overhead of one node that finds its service up to date
    Batch,
    /// 20 preview stages of 4 services (buckets holding objects), then `previews prune`: its
    /// time, and what is left in the emulator (target: nothing)
    Previews,
}

#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    #[arg(value_enum)]
    benchmark: Benchmark,
    /// Arguments for the benchmark (plan: the service counts, e.g. `-- 1000`)
    #[arg(last = true)]
    args: Vec<String>,
}

pub fn run(args: &BenchArgs) -> anyhow::Result<()> {
    let sh = Shell::new()?;
    sh.change_dir(project_root());
    let extra = &args.args;
    match args.benchmark {
        Benchmark::Plan => {
            cmd!(sh, "cargo bench --package xtask --bench plan -- {extra...}").run()?
        }
        Benchmark::Deploy => cmd!(
            sh,
            "cargo bench --package xtask --bench deploy -- {extra...}"
        )
        .run()?,
        Benchmark::Package => cmd!(
            sh,
            "cargo bench --package xtask --bench package -- {extra...}"
        )
        .run()?,
        Benchmark::Acceptance => cmd!(
            sh,
            "cargo bench --package xtask --bench acceptance -- {extra...}"
        )
        .run()?,
        Benchmark::Serverless => cmd!(
            sh,
            "cargo bench --package xtask --bench serverless -- {extra...}"
        )
        .run()?,
        Benchmark::Release => cmd!(
            sh,
            "cargo bench --package xtask --bench release -- {extra...}"
        )
        .run()?,
        Benchmark::Batch => cmd!(
            sh,
            "cargo bench --package xtask --bench batch -- {extra...}"
        )
        .run()?,
        Benchmark::Previews => cmd!(
            sh,
            "cargo bench --package xtask --bench previews -- {extra...}"
        )
        .run()?,
        Benchmark::Scheduler => cmd!(
            sh,
            "cargo bench --package ferry-graph --bench scheduler -- {extra...}"
        )
        .run()?,
    }
    Ok(())
}
