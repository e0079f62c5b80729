//! Plan benchmark: the real `xtask plan` binary (release build) against git on one generated
//! monorepo, in the same run.
//!
//! The repository: N services × 100 files (1,000 and 5,000 services), 2,000 commits; the head
//! commit changes 50 files in 10 services plus one shared input that several services declare.
//! Printed: median wall time of
//! - `plan dev --since BASE --head HEAD --format json` vs `git diff --name-only BASE HEAD`,
//! - `plan dev --since BASE --format json` (working tree) vs `git status --porcelain`,
//!
//! their ratios, and the peak RSS of each plan. The commit plan is also timed without the
//! workspace memo of the head (a commit planned for the first time) and without any cache (the
//! first plan in a fresh clone), so the figures show what the caches buy; beside that, the floor
//! of any fresh-clone plan: this binary's start-up (`xtask --version`) plus git itself reading, by
//! object id, every object such a plan must read (the root and `services` trees, each service
//! folder's tree and its `service.toml`, one `git cat-file --batch`), and, as the other way to
//! the same bytes, the start-up plus reading every `service.toml` from the working tree; and the
//! start-up plus the route by way of git's index, which skips the service trees (the manifests'
//! ids from the index, the files read from the working tree and hashed to prove them).
//! Generated repositories are kept under `target/ferry/bench/` and reused.
//!
//! Wall time on a shared 2-core machine varies by half from one run to the next, and the ratios
//! with it; so the same commands are also counted in instructions (valgrind's callgrind, when
//! it is installed), which repeat exactly whatever else the machine does.
//!
//! A second repository per size is an npm workspace with a root `package-lock.json` (3 packages
//! per member) as a global input, whose head upgrades one package two members use: the plan that
//! reads the lock file is timed against `git diff` and says how many services deploy.
//!
//! Run: `cargo bench -p xtask --bench plan` (or `cargo xtask bench plan`); `-- 1000` for one size.

use std::fmt::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const FILES_PER_SERVICE: usize = 100;
const COMMITS: usize = 2_000;
const RUNS: usize = 11;

fn main() {
    // cargo passes `--bench`; everything else is ours.
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    if args.first().map(String::as_str) == Some("rss-of") {
        return rss_of(&args[1..]);
    }
    let sizes: Vec<usize> = if args.is_empty() {
        vec![1_000, 5_000]
    } else {
        args.iter().filter_map(|a| a.parse().ok()).collect()
    };
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/ferry/bench");
    for services in sizes {
        let repo = root.join(format!("plan-{services}"));
        let (base, head) = generate(&repo, services);
        report(&repo, services, &base, &head);
        let repo = root.join(format!("lock-{services}"));
        let (base, head, packages) = generate_lock(&repo, services);
        lock_report(&repo, services, packages, &base, &head);
    }
}

/// An npm workspace of `services` members (each a service) whose root `package-lock.json` is a
/// global input and locks 3 packages per member, each member depending on 10 of them and each
/// package on up to 3 later ones; the head commit upgrades one package two members depend on.
/// Returns (base, head, packages locked).
fn generate_lock(repo: &Path, services: usize) -> (String, String, usize) {
    let packages = 3 * services;
    let marker = repo.join(".git/ferry-bench-done");
    if !marker.exists() {
        let _ = std::fs::remove_dir_all(repo);
        std::fs::create_dir_all(repo).unwrap();
        git(repo, &["init", "--quiet"]);
        let mut rng = fastrand::Rng::with_seed(services as u64);
        let write = |rel: &str, body: &str| {
            let p = repo.join(rel);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, body).unwrap();
        };
        write(
            "ferry.toml",
            "[project]\nname = \"bench\"\nglobal-inputs = [\"ferry.toml\", \"package-lock.json\"]\n\n[stages.dev]\nregion = \"us-east-1\"\n",
        );
        let mut lock = serde_json::Map::new();
        lock.insert(
            "".into(),
            serde_json::json!({"name": "bench", "workspaces": ["services/*"]}),
        );
        for p in 0..packages {
            let deps: serde_json::Map<String, serde_json::Value> = (0..rng.usize(0..4))
                .filter(|_| p + 1 < packages)
                .map(|_| (format!("p{}", rng.usize(p + 1..packages)), "1.0.0".into()))
                .collect();
            lock.insert(
                format!("node_modules/p{p}"),
                serde_json::json!({"version": "1.0.0", "integrity": format!("sha512-{p}"), "dependencies": deps}),
            );
        }
        lock.insert(
            "node_modules/upgraded".into(),
            serde_json::json!({"version": "1.0.0", "integrity": "sha512-u"}),
        );
        for i in 0..services {
            let dir = format!("services/s{i}");
            write(
                &format!("{dir}/service.toml"),
                "[service]\ntemplate = \"template.yaml\"\n",
            );
            write(&format!("{dir}/template.yaml"), "Resources: {}\n");
            // Members 0 and 1 share the package the head upgrades, which no package needs.
            let mut deps: serde_json::Map<String, serde_json::Value> = (0..10)
                .map(|_| (format!("p{}", rng.usize(0..packages)), "1.0.0".into()))
                .collect();
            if i < 2 {
                deps.insert("upgraded".into(), "1.0.0".into());
            }
            lock.insert(
                dir.clone(),
                serde_json::json!({"version": "1.0.0", "dependencies": deps}),
            );
            lock.insert(
                format!("node_modules/s{i}"),
                serde_json::json!({"resolved": dir, "link": true}),
            );
        }
        let text = |lock: &serde_json::Map<String, serde_json::Value>| {
            serde_json::to_string_pretty(
                &serde_json::json!({"name": "bench", "lockfileVersion": 3, "packages": lock}),
            )
            .unwrap()
        };
        let commit = |message: &str| {
            git(repo, &["add", "-A"]);
            git(
                repo,
                &[
                    "-c",
                    "user.name=Bench",
                    "-c",
                    "user.email=b@ferry.invalid",
                    "commit",
                    "--quiet",
                    "-m",
                    message,
                ],
            );
        };
        write("package-lock.json", &text(&lock));
        commit("base");
        lock.insert(
            "node_modules/upgraded".into(),
            serde_json::json!({"version": "1.0.1", "integrity": "sha512-u2"}),
        );
        write("package-lock.json", &text(&lock));
        commit("upgrade");
        std::fs::write(&marker, "").unwrap();
    }
    let base = git(repo, &["rev-parse", "HEAD~1"]).trim().to_string();
    let head = git(repo, &["rev-parse", "HEAD"]).trim().to_string();
    (base, head, packages)
}

/// The plan of a lock file's change against `git diff`, and how many services it deploys where
/// the lock file taken as a whole would deploy them all.
fn lock_report(repo: &Path, services: usize, packages: usize, base: &str, head: &str) {
    let xtask = env!("CARGO_BIN_EXE_xtask");
    let root = repo.to_str().unwrap();
    let plan: Vec<&str> = vec![
        "--root", root, "plan", "dev", "--since", base, "--head", head, "--format", "json",
    ];
    let out = command(xtask, &plan, repo)
        .stdout(Stdio::piped())
        .output()
        .unwrap();
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("plan json");
    let deploys = json["order"].as_array().unwrap().len();
    let size = std::fs::metadata(repo.join("package-lock.json"))
        .unwrap()
        .len();
    let t_diff = median_time(|| command("git", &["diff", "--name-only", base, head], repo));
    let t_plan = median_time(|| command(xtask, &plan, repo));
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!(
        "  lock file: {services} members, {packages} packages ({:.1} MB), one package upgraded: plan {:>7.1} ms   git diff --name-only {:>6.1} ms   ratio {:.2};   {deploys} of {services} services deploy (the file as a whole: all)",
        size as f64 / 1e6,
        ms(t_plan),
        ms(t_diff),
        ms(t_plan) / ms(t_diff),
    );
}

/// Child mode: run one command, print its peak RSS in KiB (the only child of this process).
fn rss_of(cmd: &[String]) {
    let status = Command::new(&cmd[0])
        .args(&cmd[1..])
        .stdout(Stdio::null())
        .status()
        .expect("command runs");
    assert!(status.success(), "{cmd:?} failed");
    let usage = nix::sys::resource::getrusage(nix::sys::resource::UsageWho::RUSAGE_CHILDREN)
        .expect("getrusage");
    println!("{}", usage.max_rss());
}

fn git(repo: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args(args)
        .current_dir(repo)
        .output()
        .expect("git runs");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn service_files(i: usize) -> Vec<String> {
    let dir = format!("services/svc-{i:04}");
    let mut files = vec![
        format!("{dir}/service.toml"),
        format!("{dir}/template.yaml"),
    ];
    for f in 0..FILES_PER_SERVICE - 2 {
        files.push(format!("{dir}/src/m{}/f{f:03}.py", f % 7));
    }
    files
}

fn manifest(i: usize, rng: &mut fastrand::Rng) -> String {
    let mut deps: Vec<String> = if i == 0 {
        vec![]
    } else {
        (0..rng.usize(0..=2))
            .map(|_| format!("\"svc-{:04}\"", rng.usize(0..i)))
            .collect()
    };
    deps.sort();
    deps.dedup();
    let inputs = if i.is_multiple_of(20) {
        "inputs = [\"shared/lib/**\"]\n"
    } else {
        ""
    };
    format!(
        "[service]\ntemplate = \"template.yaml\"\ndepends-on = [{}]\n{inputs}\n[parameters]\nStage = \"${{stage}}\"\n",
        deps.join(", ")
    )
}

/// Writes the repository with `git fast-import` (seconds, not minutes) and checks it out.
/// Returns (BASE, HEAD) commit ids. Reuses an existing repository of the same shape.
fn generate(repo: &Path, services: usize) -> (String, String) {
    let marker = repo.join(".git/ferry-bench-done");
    if marker.exists() {
        let base = git(repo, &["rev-parse", "HEAD~1"]).trim().to_string();
        let head = git(repo, &["rev-parse", "HEAD"]).trim().to_string();
        return (base, head);
    }
    let t0 = Instant::now();
    let _ = std::fs::remove_dir_all(repo);
    std::fs::create_dir_all(repo).unwrap();
    git(repo, &["init", "--quiet"]);
    let mut rng = fastrand::Rng::with_seed(services as u64);
    let mut child = Command::new("git")
        .args(["fast-import", "--quiet"])
        .current_dir(repo)
        .stdin(Stdio::piped())
        .spawn()
        .expect("git fast-import runs");
    let mut w = std::io::BufWriter::new(child.stdin.take().unwrap());
    let mut commit_no = 0usize;
    let mut commit = |w: &mut dyn std::io::Write, files: &[(String, String)]| {
        commit_no += 1;
        let mut s = String::new();
        let message = format!("commit {commit_no}");
        let _ = write!(
            s,
            "commit refs/heads/main\nmark :{commit_no}\ncommitter Bench <b@ferry.invalid> {} +0000\ndata {}\n{message}\n",
            1_700_000_000 + commit_no,
            message.len()
        );
        if commit_no > 1 {
            let _ = writeln!(s, "from :{}", commit_no - 1);
        }
        w.write_all(s.as_bytes()).unwrap();
        for (path, body) in files {
            write!(w, "M 100644 inline {path}\ndata {}\n{body}\n", body.len()).unwrap();
        }
        w.write_all(b"\n").unwrap();
    };
    let mut first = vec![
        ("ferry.toml".to_string(), "[project]\nname = \"bench\"\nglobal-inputs = [\"ferry.toml\"]\n\n[stages.dev]\nregion = \"us-east-1\"\n".to_string()),
    ];
    for l in 0..10 {
        first.push((format!("shared/lib/l{l}.py"), format!("LIB = {l}\n")));
    }
    for i in 0..services {
        for f in service_files(i) {
            let body = if f.ends_with("service.toml") {
                manifest(i, &mut rng)
            } else if f.ends_with("template.yaml") {
                "Resources: {}\n".to_string()
            } else {
                format!("# {f}\nVALUE = 0\n")
            };
            first.push((f, body));
        }
    }
    commit(&mut w, &first);
    for c in 1..COMMITS - 1 {
        let i = rng.usize(0..services);
        let f = &service_files(i)[2 + rng.usize(0..FILES_PER_SERVICE - 2)];
        commit(&mut w, &[(f.clone(), format!("# {f}\nVALUE = {c}\n"))]);
    }
    // HEAD: 50 files in 10 services, plus one shared input.
    let mut last = Vec::new();
    for k in 0..10 {
        let i = (k * 97 + 13) % services;
        for f in service_files(i).into_iter().skip(2).take(5) {
            last.push((f.clone(), format!("# {f}\nVALUE = head\n")));
        }
    }
    last.push(("shared/lib/l3.py".into(), "LIB = 'head'\n".into()));
    commit(&mut w, &last);
    drop(w);
    assert!(child.wait().unwrap().success());
    git(repo, &["checkout", "--quiet", "-f", "main"]);
    git(repo, &["status", "--porcelain"]);
    std::fs::write(&marker, "").unwrap();
    let base = git(repo, &["rev-parse", "HEAD~1"]).trim().to_string();
    let head = git(repo, &["rev-parse", "HEAD"]).trim().to_string();
    let count = git(repo, &["ls-files"]).lines().count();
    println!(
        "generated {} with {count} files and {COMMITS} commits in {:.1}s",
        repo.display(),
        t0.elapsed().as_secs_f64()
    );
    (base, head)
}

/// A command with CI variables removed, so the plan's default head is the working tree.
fn command(program: &str, args: &[&str], repo: &Path) -> Command {
    let mut c = Command::new(program);
    c.args(args).current_dir(repo).stdout(Stdio::null());
    for v in [
        "CI",
        "CODEBUILD_BUILD_ID",
        "CODEBUILD_RESOLVED_SOURCE_VERSION",
        "GITHUB_ACTIONS",
        "FORCE_DEPLOY_ALL",
    ] {
        c.env_remove(v);
    }
    c
}

/// The median of [`RUNS`] timings `run` takes itself, after two untimed ones.
fn median_of(mut run: impl FnMut() -> Duration) -> Duration {
    run();
    run();
    let mut times: Vec<Duration> = (0..RUNS).map(|_| run()).collect();
    times.sort();
    times[RUNS / 2]
}

fn median_time(make: impl FnMut() -> Command) -> Duration {
    median_time_after(|| {}, make)
}

/// Like [`median_time`], with `prepare` run (untimed) before every run.
fn median_time_after(mut prepare: impl FnMut(), mut make: impl FnMut() -> Command) -> Duration {
    for _ in 0..2 {
        prepare();
        assert!(make().status().unwrap().success());
    }
    let mut times: Vec<Duration> = (0..RUNS)
        .map(|_| {
            prepare();
            let t = Instant::now();
            let status = make().status().unwrap();
            let d = t.elapsed();
            assert!(status.success());
            d
        })
        .collect();
    times.sort();
    times[RUNS / 2]
}

/// Instructions `program args` executes (valgrind's callgrind; standard input from `stdin`),
/// `None` when valgrind is not installed.
fn instructions(program: &str, args: &[&str], repo: &Path, stdin: Option<&Path>) -> Option<u64> {
    let mut c = command("valgrind", &[], repo);
    c.args([
        "--tool=callgrind",
        "--callgrind-out-file=/dev/null",
        program,
    ])
    .args(args)
    .stderr(Stdio::piped());
    if let Some(f) = stdin {
        c.stdin(std::fs::File::open(f).unwrap());
    }
    let out = c.output().ok()?;
    assert!(
        out.status.success(),
        "{program} {args:?} under valgrind: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stderr)
        .lines()
        .find_map(|l| {
            l.split_once("Collected :")
                .map(|(_, n)| n.trim().to_string())
        })
        .and_then(|n| n.parse().ok())
}

/// The path and blob id of every `service.toml` git's index lists, after checking that the
/// index holds exactly the tree `tree` (its `TREE` extension's root entry is valid and has that
/// id). Read as a stream through a small buffer (a copy of the whole 10 MB file would cost its
/// page faults). The bench's index is version 2 (what `git checkout` writes): fixed 62-byte
/// entry heads, the path, padding to 8 bytes; extensions after the entries.
fn manifests_in_index(index: &Path, tree: git2::Oid) -> Vec<(String, git2::Oid)> {
    use std::io::{BufRead, BufReader, Read};
    let mut r = BufReader::with_capacity(1 << 16, std::fs::File::open(index).unwrap());
    let mut head = [0u8; 62];
    let be32 = |b: &[u8]| u32::from_be_bytes(b[..4].try_into().unwrap()) as usize;
    r.read_exact(&mut head[..12]).unwrap();
    assert!(
        &head[..4] == b"DIRC" && be32(&head[4..]) == 2,
        "a version 2 index"
    );
    let mut listed = Vec::new();
    let mut path = Vec::new();
    for _ in 0..be32(&head[8..]) {
        r.read_exact(&mut head).unwrap();
        let flags = u16::from_be_bytes([head[60], head[61]]);
        assert_eq!(flags & 0x3000, 0, "no entry in conflict");
        path.resize(usize::from(flags & 0xfff), 0);
        r.read_exact(&mut path).unwrap();
        if path.ends_with(b"/service.toml") {
            let id = git2::Oid::from_bytes(&head[40..60]).unwrap();
            listed.push((String::from_utf8(path.clone()).unwrap(), id));
        }
        r.consume(((62 + path.len() + 8) & !7) - 62 - path.len());
    }
    // Extensions: a signature, a length, the data. The tree cache's first entry is the root:
    // path "", the entry count (-1 when the cache is not valid), a subtree count, the id.
    loop {
        r.read_exact(&mut head[..8]).unwrap();
        if &head[..4] == b"TREE" {
            break;
        }
        std::io::copy(
            &mut (&mut r).take(be32(&head[4..]) as u64),
            &mut std::io::sink(),
        )
        .unwrap();
    }
    let mut counts = Vec::new();
    r.read_until(b'\n', &mut counts).unwrap();
    assert!(
        counts[0] == 0 && counts[1] != b'-',
        "the index's tree cache is valid"
    );
    r.read_exact(&mut head[..20]).unwrap();
    assert_eq!(git2::Oid::from_bytes(&head[..20]).unwrap(), tree);
    listed
}

/// How many of `listed` are in the working tree as committed: read and hashed as blobs, split
/// between two threads.
fn read_and_hash(repo: &Path, listed: &[(String, git2::Oid)]) -> usize {
    std::thread::scope(|s| {
        let halves: Vec<_> = listed
            .chunks(listed.len().div_ceil(2))
            .map(|half| {
                s.spawn(move || {
                    half.iter()
                        .filter(|(path, id)| {
                            let body = std::fs::read(repo.join(path)).unwrap();
                            git2::Oid::hash_object(git2::ObjectType::Blob, &body).unwrap() == *id
                        })
                        .count()
                })
            })
            .collect();
        halves.into_iter().map(|h| h.join().unwrap()).sum()
    })
}

fn peak_rss_mb(program: &str, args: &[&str], repo: &Path) -> f64 {
    let me = std::env::current_exe().unwrap();
    let out = command(
        me.to_str().unwrap(),
        &[&["rss-of", program], args].concat(),
        repo,
    )
    .stdout(Stdio::piped())
    .output()
    .unwrap();
    let kib: f64 = String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .expect("rss in KiB");
    kib / 1024.0
}

fn report(repo: &Path, services: usize, base: &str, head: &str) {
    let xtask = env!("CARGO_BIN_EXE_xtask");
    let root = repo.to_str().unwrap();
    let commit_plan: Vec<&str> = vec![
        "--root", root, "plan", "dev", "--since", base, "--head", head, "--format", "json",
    ];
    let tree_plan: Vec<&str> = vec![
        "--root", root, "plan", "dev", "--since", base, "--format", "json",
    ];

    // Sanity: the plan finds exactly what the head commit changed.
    let out = command(xtask, &commit_plan, repo)
        .stdout(Stdio::piped())
        .output()
        .unwrap();
    let plan: serde_json::Value = serde_json::from_slice(&out.stdout).expect("plan json");
    let deploys = plan["order"].as_array().unwrap().len();

    let t_diff = median_time(|| command("git", &["diff", "--name-only", base, head], repo));
    let t_plan = median_time(|| command(xtask, &commit_plan, repo));
    // The same plan without the workspace memo of the head commit (a commit planned for the
    // first time; unchanged service folders still come from the folder cache), and with no
    // cache at all (the first plan in a fresh clone).
    let cache = repo.join(".git/ferry");
    let t_new_commit = median_time_after(
        || {
            let _ = std::fs::remove_file(cache.join("workspace-memo.bin"));
        },
        || command(xtask, &commit_plan, repo),
    );
    let t_no_cache = median_time_after(
        || {
            let _ = std::fs::remove_dir_all(&cache);
        },
        || command(xtask, &commit_plan, repo),
    );
    // The floor of any fresh-clone plan: the objects it cannot avoid reading (the root and
    // `services` trees, to find the folders; each service folder's tree, to find its manifest;
    // and the manifest), read by git itself by object id in one process (the ids are listed
    // beforehand, untimed), plus this binary's own start-up.
    let objects = repo.join(".git/ferry-bench-objects.txt");
    let mut ids: String = [format!("{head}^{{tree}}"), format!("{head}:services")]
        .iter()
        .map(|rev| format!("{}\n", git(repo, &["rev-parse", rev]).trim()))
        .collect();
    let listing = git(repo, &["ls-tree", "-r", "-t", head, "services/"]);
    ids += &listing
        .lines()
        .filter_map(|l| {
            let (meta, path) = l.split_once('\t')?;
            let id = meta.split_whitespace().nth(2)?;
            let folder = path.matches('/').count() == 1 && meta.contains(" tree ");
            (folder || path.ends_with("/service.toml")).then(|| format!("{id}\n"))
        })
        .collect::<String>();
    assert_eq!(
        ids.lines().count(),
        2 * services + 2,
        "the root and services trees, and a tree and a manifest per service"
    );
    std::fs::write(&objects, ids).unwrap();
    let t_cat = median_time(|| {
        let mut c = command("git", &["cat-file", "--batch"], repo);
        c.stdin(std::fs::File::open(&objects).unwrap());
        c
    });
    let t_start = median_time(|| command(xtask, &["--version"], repo));
    // The same manifests read from the working tree instead (a clean fresh clone holds them as
    // committed): only the system calls a read needs (open, read, close), in this process, no
    // parsing. A plan would still have to check each file against its committed blob.
    let manifests: Vec<std::path::PathBuf> = listing
        .lines()
        .filter_map(|l| l.split_once('\t'))
        .filter(|(_, path)| path.ends_with("/service.toml"))
        .map(|(_, path)| repo.join(path))
        .collect();
    let t_files = median_of(|| {
        let t = Instant::now();
        for m in &manifests {
            std::hint::black_box(std::fs::read(m).unwrap());
        }
        t.elapsed()
    });
    // Or by way of git's index, which skips the service trees: a checkout writes the index with
    // the ids of the trees it holds (its `TREE` extension), so a root id equal to the commit's
    // proves that the index lists the commit's files, blob ids included. Walking the index
    // for the manifests' ids, then reading each manifest from the working
    // tree and hashing it as a blob to prove it is the committed one, on both cores; in this
    // process, no parsing.
    let head_tree = git(repo, &["rev-parse", &format!("{head}^{{tree}}")]);
    let head_tree = git2::Oid::from_str(head_tree.trim()).unwrap();
    let t_index = median_of(|| {
        let t = Instant::now();
        let listed = manifests_in_index(&repo.join(".git/index"), head_tree);
        assert_eq!(
            read_and_hash(repo, &listed),
            services,
            "every manifest as committed"
        );
        t.elapsed()
    });
    let t_status = median_time(|| command("git", &["status", "--porcelain"], repo));
    let t_tree = median_time(|| command(xtask, &tree_plan, repo));
    // The same, in instructions: the memo, no cache, the floor's two parts, the diff.
    let counted = (|| {
        let diff = instructions("git", &["diff", "--name-only", base, head], repo, None)?;
        instructions(xtask, &commit_plan, repo, None)?;
        let memo = instructions(xtask, &commit_plan, repo, None)?;
        let _ = std::fs::remove_dir_all(&cache);
        let fresh = instructions(xtask, &commit_plan, repo, None)?;
        let start = instructions(xtask, &["--version"], repo, None)?;
        let cat = instructions("git", &["cat-file", "--batch"], repo, Some(&objects))?;
        Some((diff, memo, fresh, start, cat))
    })();
    let rss_commit = peak_rss_mb(xtask, &commit_plan, repo);
    let rss_tree = peak_rss_mb(xtask, &tree_plan, repo);

    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!(
        "plan benchmark: {services} services x {FILES_PER_SERVICE} files, {COMMITS} commits; head changes 50 files in 10 services + 1 shared input ({deploys} services to deploy)"
    );
    println!(
        "  plan --head HEAD      {:>8.1} ms   git diff --name-only {:>8.1} ms   ratio {:.2} (target <= 3.0)   peak RSS {:.1} MB",
        ms(t_plan),
        ms(t_diff),
        ms(t_plan) / ms(t_diff),
        rss_commit
    );
    println!(
        "    a commit planned for the first time {:>8.1} ms   ratio {:.2};   no cache at all (fresh clone) {:>8.1} ms   ratio {:.2}",
        ms(t_new_commit),
        ms(t_new_commit) / ms(t_diff),
        ms(t_no_cache),
        ms(t_no_cache) / ms(t_diff),
    );
    let floor = ms(t_start) + ms(t_cat);
    println!(
        "    floor of a fresh-clone plan: xtask start-up {:>6.1} ms (ratio {:.2}) + git cat-file --batch of 2 + {services} trees and {services} manifests by id {:>6.1} ms (ratio {:.2}) = ratio {:.2};   plan with no cache / that floor {:.2}",
        ms(t_start),
        ms(t_start) / ms(t_diff),
        ms(t_cat),
        ms(t_cat) / ms(t_diff),
        floor / ms(t_diff),
        ms(t_no_cache) / floor,
    );
    println!(
        "    or read from the working tree: xtask start-up + {} manifests opened and read in-process {:>6.1} ms (ratio {:.2}) = ratio {:.2}",
        manifests.len(),
        ms(t_files),
        ms(t_files) / ms(t_diff),
        (ms(t_start) + ms(t_files)) / ms(t_diff),
    );
    println!(
        "    or by way of git's index: xtask start-up + the index walked for {} manifest ids, each read and hashed as a blob on 2 threads {:>6.1} ms (ratio {:.2}) = ratio {:.2}",
        services,
        ms(t_index),
        ms(t_index) / ms(t_diff),
        (ms(t_start) + ms(t_index)) / ms(t_diff),
    );
    let m = |n: u64| n as f64 / 1e6;
    match counted {
        Some((diff, memo, fresh, start, cat)) => println!(
            "    in instructions (callgrind): git diff {:.1} M;   plan --head HEAD {:.1} M (ratio {:.2});   no cache {:.1} M (ratio {:.2});   floor {:.1} + {:.1} M (ratio {:.2});   no cache / floor {:.2}",
            m(diff),
            m(memo),
            memo as f64 / diff as f64,
            m(fresh),
            fresh as f64 / diff as f64,
            m(start),
            m(cat),
            (start + cat) as f64 / diff as f64,
            fresh as f64 / (start + cat) as f64,
        ),
        None => println!("    in instructions: valgrind is not installed, not counted"),
    }
    println!(
        "  plan (working tree)   {:>8.1} ms   git status --porcelain {:>6.1} ms   ratio {:.2} (target <= 1.5)   peak RSS {:.1} MB",
        ms(t_tree),
        ms(t_status),
        ms(t_tree) / ms(t_status),
        rss_tree
    );
}
