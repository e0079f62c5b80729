#![doc = include_str!("../README.md")]
//! Adopting Ferry on an existing repository.
//!
//! [`scan`] walks a repository and finds its services: folders holding a Serverless Framework
//! configuration (`serverless.yml`, …), an AWS SAM template, or a CloudFormation template,
//! among the packages of its npm/yarn workspaces or `lerna.json` when it has them. For each it
//! infers what Ferry needs — the kind, the name, `depends-on` from what the services say of each
//! other (an `Fn::ImportValue` of a name another service exports, a `${cf:<stack>.<Output>}` of
//! another service's stack), and `inputs` from paths into other folders (`${file(../…)}`, a
//! workspace package the service depends on, directly or through another, a Cargo, Python, Go or .NET path dependency, workspace member or project reference and the lock file of its workspace; the names, links and parameters a
//! `serverless-compose.yml` gives its services) — and says what it could not infer. [`render`]
//! turns a scan into `ferry.toml` and one `service.toml` per service; [`runner`] into the files
//! that make `cargo xtask …` work in the repository; [`write`] writes them, never over an
//! existing file unless told to, and [`check_write`] and [`problems_after`] say, writing
//! nothing, what it would do and what `validate` would then say (a dry run).
//!
//! Reads files only: no network, no git, no environment.

mod compose;
mod infer;
mod layout;
mod local_deps;
mod overrides;
mod render;
mod samconfig;
mod scripts;
mod secrets;
mod unbundled;
mod undeclared;
mod walk;
mod write;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use ferry_manifest::ServiceKind;

pub use render::{Runner, render, runner};
pub use unbundled::{Unbundled, unbundled_imports};
pub use undeclared::{Undeclared, undeclared_inputs};
pub use write::{Existing, Written, check_write, notes_about_kept, problems_after, write};

/// One service found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    /// Repository-relative folder, `/`-separated.
    pub dir: String,
    /// The service name Ferry will use (the folder name, made valid).
    pub name: String,
    pub kind: ServiceKind,
    /// The template (cloudformation, sam) or configuration (serverless), relative to `dir`.
    pub file: String,
    /// Inferred dependencies, each with why.
    pub depends_on: BTreeMap<String, String>,
    /// Inferred extra inputs (repository-relative globs), each with why.
    pub inputs: BTreeMap<String, String>,
    /// Parameters it is known to take (a Serverless Framework service's `params` in
    /// `serverless-compose.yml`), in Ferry's syntax, each with where it came from.
    pub parameters: BTreeMap<String, (String, String)>,
    /// The region the service's own files name (`provider.region`), if any.
    pub region: Option<String>,
    /// The regions its SAM configuration's environments named after the stages deploy to
    /// (`[prod]` in eu-west-1, `[dev]` in eu-west-2): stage → region.
    pub stage_regions: BTreeMap<String, String>,
    /// The `[package] build` written for it, and the comment saying why: for a Serverless
    /// Framework service with a `package.json` of its own (not a member of the root's
    /// workspaces), the command that installs its dependencies (the framework's plugins, the CLI
    /// when it names one) before it compiles; for a SAM service whose template names a file the
    /// repository does not hold (`target/app.jar`), the project's build, guessed from its build
    /// files (`pom.xml`, a `package.json` build script, …).
    pub build: Option<(Vec<String>, String)>,
    /// `built-template`, for a SAM service built with `sam build` (a function with a
    /// `Metadata.BuildMethod`, or dependencies to install): the template it writes.
    pub built_template: Option<String>,
    /// `[package.artifacts]`, for a CloudFormation service whose template names its code by a
    /// local path (`Code: src`, which `aws cloudformation package` uploads): each resource's
    /// path, relative to the service folder.
    pub artifacts: BTreeMap<String, String>,
    /// The files a Serverless configuration reads with `${file(…)}`, repository-relative, the
    /// stage resolved as the framework does (`common/config.{stage}.json`), else as written.
    pub file_reads: Vec<String>,
    /// Parameters its deploy steps pass a secret (NoEcho, by the name or the value's form):
    /// written empty with a comment to keep it in SSM, never with the value.
    pub secrets: BTreeSet<String>,
    /// The `stack-name` written for it, and why: for a Serverless Framework service whose stack
    /// name Ferry cannot read before the framework runs (a program, a name from a variable),
    /// the name guessed (the service's name and the stage), for the user to check; for any
    /// other, the name the repository's own deploy steps give its stacks (`--stack-name
    /// orders-$STAGE`, `stack_name` of `samconfig.toml`).
    pub stack_name: Option<(String, String)>,
}

/// What [`scan`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scan {
    /// The project name: the root `package.json`'s name, else the folder's, made valid.
    pub project: String,
    pub services: Vec<Found>,
    /// What could not be inferred, for the user to finish by hand.
    pub notes: Vec<String>,
}

impl Scan {
    /// The region most services name, else `us-east-1`.
    pub fn region(&self) -> String {
        self.named_region()
            .map_or_else(|| DEFAULT_REGION.to_string(), |(r, _)| r.to_string())
    }

    /// The region of stage `stage` (`dev`, `staging`, `prod`): the one every service that names
    /// a region gives that stage (its SAM configuration's environment named after it, else its
    /// own region) when they all agree, else [`Scan::region`].
    pub fn stage_region(&self, stage: &str) -> String {
        let given: BTreeSet<&str> = self
            .services
            .iter()
            .filter_map(|s| s.stage_regions.get(stage).or(s.region.as_ref()))
            .map(String::as_str)
            .collect();
        match given.into_iter().collect::<Vec<_>>().as_slice() {
            [one] => one.to_string(),
            _ => self.region(),
        }
    }

    /// The region most services name, with how many name it; `None` when none names one.
    pub fn named_region(&self) -> Option<(&str, usize)> {
        let mut count: BTreeMap<&str, usize> = BTreeMap::new();
        for s in &self.services {
            if let Some(r) = &s.region {
                *count.entry(r).or_default() += 1;
            }
        }
        // The most named; of as many, the first by name, so that the choice is the same each time.
        count
            .into_iter()
            .max_by(|(r1, n1), (r2, n2)| n1.cmp(n2).then(r2.cmp(r1)))
    }

    /// Leaves out each inferred input whose fixed start (`secrets` of `secrets/**`) git
    /// ignores, with nothing in it tracked, as `ignored` says: a file a Serverless configuration
    /// reads with `${file(…)}` is often a secret kept out of git. No commit holds it, so no plan
    /// could see it change, and `validate` refuses such an input. Each is noted.
    ///
    /// Also notes each file a Serverless configuration reads with `${file(…)}` that git ignores
    /// (`config.${sls:stage}.json` beside a tracked `config.example.json`, for one of the stages
    /// `ferry.toml` is written with): its input stays, but no commit holds the file, so an edit
    /// there deploys nothing.
    pub fn leave_out_ignored(&mut self, ignored: impl Fn(&str) -> bool) {
        for s in &mut self.services {
            let notes = &mut self.notes;
            let mut left_out: Vec<String> = Vec::new();
            s.inputs.retain(|glob, why| {
                let fixed = ferry_manifest::fixed_start(glob);
                let keep = fixed.is_empty() || !ignored(&fixed);
                if !keep {
                    left_out.push(fixed.clone());
                    notes.push(format!(
                        "{}: {why}, but git ignores `{fixed}` and tracks nothing there: no commit holds it, so no plan sees it change; left out of inputs (commit it, or keep what it holds in SSM)",
                        s.dir
                    ));
                }
                keep
            });
            for read in &s.file_reads {
                // The stage as the framework gives it (`{stage}`, resolved when read).
                let each: Vec<String> = STAGES
                    .iter()
                    .map(|stage| read.replace("{stage}", stage))
                    .filter(|p| !p.contains(['{', '$']))
                    .collect();
                // Said already of an input left out.
                let said = |p: &String| left_out.iter().any(|l| p.starts_with(l.as_str()));
                if let Some(hidden) = each.iter().find(|p| ignored(p) && !said(p)) {
                    let note = format!(
                        "{}: reads `{read}` (${{file(…)}}), and git ignores `{hidden}`: no commit holds it, so no plan sees it change, and an edit there deploys nothing until `deploy --all`; keep what it holds in SSM (${{ssm:…}}), or commit it",
                        s.dir
                    );
                    // Once, however many times the configuration reads it.
                    if !notes.contains(&note) {
                        notes.push(note);
                    }
                }
            }
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum InitError {
    #[error("{} is not a folder", .0.display())]
    NotAFolder(PathBuf),
    #[error(
        "no service found in {}: Ferry looks for folders holding serverless.yml (or .yaml, .json, .ts, .js), a SAM template (Transform: AWS::Serverless-2016-10-31) or a CloudFormation template; add one, or write ferry.toml and service.toml by hand (see README){}{}{}",
        .root.display(),
        root_hint(.at_root),
        cdk_hint(.cdk),
        left_out_hint(.left_out)
    )]
    NothingFound {
        root: PathBuf,
        /// What was found and left out, and why (a Serverless service of another cloud, a
        /// delivery pipeline's template).
        left_out: Vec<String>,
        /// Templates at the repository's root, which holds ferry.toml and is no service folder.
        at_root: Vec<String>,
        /// Folders holding an AWS CDK app (`cdk.json`), which Ferry does not deploy.
        cdk: Vec<String>,
    },
    #[error(
        "{} exists; `init` never overwrites a file (--force does; --only-missing writes only the files not there yet, such as a new service's service.toml), and these would be written: {}",
        .existing.display(),
        .all.join(", ")
    )]
    Exists { existing: PathBuf, all: Vec<String> },
    #[error(
        "{} is a symbolic link: init writes only files of the repository itself, never through a link (which may lead out of it); remove the link and run init again",
        .0.display()
    )]
    Symlink(PathBuf),
    #[error("{}: {source}", .path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

fn root_hint(at_root: &[String]) -> String {
    if at_root.is_empty() {
        return String::new();
    }
    format!(
        ". Its root holds {}, but the root holds ferry.toml and is no service folder: move each template (with the code it names) into a folder of its own and run init again",
        at_root.join(", ")
    )
}

fn left_out_hint(left_out: &[String]) -> String {
    if left_out.is_empty() {
        return String::new();
    }
    format!(". Found and left out:\n  {}", left_out.join("\n  "))
}

fn cdk_hint(cdk: &[String]) -> String {
    if cdk.is_empty() {
        return String::new();
    }
    format!(
        ". It holds AWS CDK apps ({}), which Ferry does not deploy: CDK synthesizes templates whose assets only its own tooling publishes",
        cdk.join(", ")
    )
}

/// Finds the services of the repository at `root`.
pub fn scan(root: &Path) -> Result<Scan, InitError> {
    if !root.is_dir() {
        return Err(InitError::NotAFolder(root.to_path_buf()));
    }
    let workspace = walk::workspace_packages(root);
    let walk::Walked {
        mut candidates,
        notes: walk_notes,
        cdk,
        reach,
        root_templates,
    } = walk::candidates(root);
    let mut notes = workspace.notes;
    notes.extend(walk_notes);
    let umbrellas = layout::settle(root, &mut candidates, reach, &root_templates, &mut notes);
    // The stacks Serverless services name themselves: a service whose stack Ferry names after
    // it (`{service}-{stage}`) must not take one of them.
    let framework_stack = |c: &walk::Candidate| {
        (c.kind == ServiceKind::Serverless)
            .then(|| std::fs::read_to_string(root.join(template_path(&c.dir, &c.file))).ok())
            .flatten()
            .and_then(|text| ferry_manifest::serverless_stack_name(&text).ok())
    };
    // Folder → the stack pattern its configuration gives, read once.
    let framework: BTreeMap<String, String> = candidates
        .iter()
        .filter_map(|c| Some((c.dir.clone(), framework_stack(c)?)))
        .collect();
    let reserved: BTreeSet<&String> = framework.values().collect();
    // A folder named by a number (`governance/1-initial-setup`, a tutorial's steps) takes its
    // parent's name before it, not a bare `s-` (a name starts with a letter).
    let base_of = |dir: &str| {
        let mut parts = dir.rsplit('/');
        let last = parts.next().unwrap_or(dir);
        match parts.next() {
            Some(parent) if last.starts_with(|c: char| c.is_ascii_digit()) => {
                valid_name(&format!("{parent}-{last}"))
            }
            _ => valid_name(last),
        }
    };
    // Folder names several services share: only a top-level folder of that name keeps it,
    // the others are named by their path, so that none of them looks like the only one.
    let mut shared: BTreeMap<String, usize> = BTreeMap::new();
    for c in &candidates {
        *shared.entry(base_of(&c.dir)).or_default() += 1;
    }
    let mut services = Vec::new();
    let mut names = BTreeSet::new();
    for c in candidates {
        let named_by_framework = framework.contains_key(&c.dir);
        let free = |n: &str, names: &BTreeSet<String>| {
            !names.contains(n)
                && (named_by_framework || !reserved.contains(&format!("{n}-{{stage}}")))
        };
        let base = base_of(&c.dir);
        let is_shared = shared[&base] > 1;
        let mut name = base.clone();
        if is_shared || !free(&name, &names) {
            // The first and last folder (`backend-cicd` for backend/sam/cicd), else the path.
            let first = c.dir.split('/').next().unwrap_or(&c.dir);
            let short = valid_name(&format!("{first}-{base}"));
            let from_dir = valid_name(&c.dir.replace('/', "-"));
            name = if !c.dir.contains('/') {
                base.clone()
            } else if free(&short, &names) {
                short
            } else {
                from_dir.clone()
            };
            let mut n = 2;
            while !free(&name, &names) {
                name = format!("{from_dir}-{n}");
                n += 1;
            }
            let why = if names.contains(&base) {
                format!("its folder name `{base}` is taken by another service")
            } else if free(&base, &names) {
                format!("its folder name `{base}` is other services' too")
            } else {
                format!("stack `{base}-{{stage}}` is a Serverless service's")
            };
            if name != base {
                notes.push(format!("{}: {why}: named `{name}`", c.dir));
            }
        }
        // A name whose stack name (`{service}-{stage}`) leaves a preview stage's id no room
        // under CloudFormation's 128 characters: the configuration would not load.
        if c.kind != ServiceKind::Serverless && name.len() > MAX_SERVICE_NAME {
            let long = name.clone();
            let mut n = 1;
            while n == 1 || !free(&name, &names) {
                name = short_name(&long, n);
                n += 1;
            }
            notes.push(format!(
                "{}: its name `{long}` is too long for its stacks' names to hold a preview stage's id (CloudFormation takes 128 characters): named `{name}`",
                c.dir
            ));
        }
        names.insert(name.clone());
        notes.extend(c.notes);
        services.push(Found {
            dir: c.dir,
            name,
            kind: c.kind,
            file: c.file,
            depends_on: BTreeMap::new(),
            inputs: c.inputs,
            parameters: BTreeMap::new(),
            region: None,
            stage_regions: BTreeMap::new(),
            stack_name: None,
            build: c.build,
            built_template: None,
            artifacts: BTreeMap::new(),
            file_reads: Vec::new(),
            secrets: BTreeSet::new(),
        });
    }
    // A Compose file says which Serverless services the repository deploys.
    let mut compose = compose::read(root, &mut notes);
    if let Some(c) = &compose {
        compose::leave_out_unlisted(c, &mut services, &mut notes);
    }
    // package.json above the services that take their CLI and plugins from it → those services.
    let mut from_above: BTreeMap<InstalledFromAbove, Vec<String>> = BTreeMap::new();
    for s in services
        .iter_mut()
        .filter(|s| s.kind == ServiceKind::Serverless)
    {
        s.build = install_step(root, &s.dir, &workspace.members, &mut notes);
        framework_note(root, s, &mut notes);
        // Code from outside its folder that nothing bundles: its archive would lack it.
        notes.extend(unbundled::unbundled(root, &s.dir, &s.file).map(|u| u.to_string()));
        let nowhere = plugins_installed_nowhere(root, &s.dir, &s.file, &workspace.packages);
        if !nowhere.is_empty() {
            notes.push(format!(
                "{}: loads the plugins {}, which no package.json installs (not its own, not one above it): add them to its package.json (`npm install --save-dev {}`), else its compile stops with the framework's \"plugin not found\"",
                template_path(&s.dir, &s.file),
                nowhere.join(", "),
                nowhere.join(" ")
            ));
        }
        if let Some(from) = installed_from_above(root, &s.dir, &s.file) {
            // What installs there is theirs: a CLI or plugin upgrade changes what they compile.
            if !from.input_is_global() {
                s.inputs.insert(from.input.clone(), from.why());
            }
            from_above.entry(from).or_default().push(s.dir.clone());
        }
    }
    for (from, dirs) in from_above {
        let declared = if from.input_is_global() {
            format!("`{}` is a global input", from.input)
        } else {
            format!("`{}` is among their inputs", from.input)
        };
        let what = match &from.plugins {
            None => "no package.json of their own; their framework CLI and plugins come from"
                .to_string(),
            // Their own build installs their own package.json, which does not name these.
            Some(p) => {
                let named = match (from.cli, p.is_empty()) {
                    (true, true) => "a framework CLI, which comes".to_string(),
                    (true, false) => {
                        format!(
                            "a framework CLI nor the plugins {}, which come",
                            p.join(", ")
                        )
                    }
                    (false, _) => format!("the plugins {}, which come", p.join(", ")),
                };
                format!(
                    "their own package.json (which their build installs) does not name {named} from"
                )
            }
        };
        notes.push(format!(
            "{}: {what} `{}`: install its dependencies there (`npm ci`, `yarn install --frozen-lockfile` or `pnpm install --frozen-lockfile`, by its lock file) before a deploy compiles them, e.g. in buildspec.yml's install phase ({declared}, so that an upgrade there deploys them)",
            dirs.join(", "),
            from.package
        ));
    }
    for s in services
        .iter_mut()
        .filter(|s| s.kind == ServiceKind::Sam && s.build.is_none())
    {
        sam_build(root, s, &mut notes);
    }
    for s in services
        .iter_mut()
        .filter(|s| s.kind == ServiceKind::Cloudformation)
    {
        code_artifacts(root, s, &mut notes);
    }
    if services.is_empty() {
        // A template at the root that nests none is no umbrella (noted as such, which the
        // error now says instead).
        return Err(InitError::NothingFound {
            root: root.to_path_buf(),
            left_out: notes
                .into_iter()
                .filter(|n| n.contains("left out"))
                .collect(),
            at_root: root_templates,
            cdk,
        });
    }
    // What the repository's own deploy steps pass a template (samconfig.toml, a Makefile's
    // `--parameter-overrides`): read before the links, which follow SSM names among them.
    for s in services
        .iter_mut()
        .filter(|s| s.kind != ServiceKind::Serverless)
    {
        let declared = overrides::declared(root, &s.dir, &s.file);
        s.parameters = overrides::read_noting_secrets(
            root,
            &s.dir,
            &s.file,
            &declared,
            &mut notes,
            &mut s.secrets,
        );
    }
    // A Compose file names the services first: the links below are between those names.
    if let Some(c) = &mut compose {
        compose::names(c, &mut services, &mut notes);
    }
    // The stacks the repository's own deploy steps made (`--stack-name orders-$STAGE`): Ferry
    // updates those, not new ones beside them. Known before the links, which may pass a
    // stack's name to an importer.
    scripted_stack_names(root, &framework, &mut services, &mut notes);
    infer::links(root, &mut services, &workspace.packages, &mut notes);
    if let Some(c) = &compose {
        compose::links(c, &mut services, &mut notes);
    }
    for u in &umbrellas {
        umbrella_links(root, u, &mut services, &mut notes);
    }
    leave_out_shared_stacks(&framework, &mut services, &mut notes);
    let project = walk::project_name(root);
    let mut scan = Scan {
        project,
        services,
        notes,
    };
    scan.notes.extend(region_notes(&scan));
    scan.notes.extend(submodule_notes(root, &scan));
    scan.notes.extend(unpassed_params(root, &scan));
    scan.notes.extend(unset_env_reads(root, &scan));
    // One note once (a script read for two services of one folder says the same of both).
    let mut seen = BTreeSet::new();
    scan.notes.retain(|n| seen.insert(n.clone()));
    Ok(scan)
}

/// A service's template, repository-relative and normalised (`file` may lead out of `dir`:
/// `../auth.yaml`).
pub(crate) fn template_path(dir: &str, file: &str) -> String {
    let joined = format!("{dir}/{file}");
    ferry_manifest::normalize_relative(&joined).unwrap_or(joined)
}

/// The longest service name whose default stack name (`{service}-{stage}`) holds a preview
/// stage's id.
const MAX_SERVICE_NAME: usize = ferry_manifest::MAX_STACK_NAME - 1 - ferry_manifest::MAX_PREVIEW_ID;

/// `long` cut to fit [`MAX_SERVICE_NAME`], told apart from other cut names by a hash of the
/// whole (FNV-1a, the same on every machine) and, past the first, a number `n`.
fn short_name(long: &str, n: usize) -> String {
    let hash = long.bytes().fold(0x811c_9dc5_u32, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    });
    let tail = if n > 1 {
        format!("-{hash:08x}-{n}")
    } else {
        format!("-{hash:08x}")
    };
    let head = long[..MAX_SERVICE_NAME - tail.len()].trim_end_matches('-');
    format!("{head}{tail}")
}

/// Where `sam build` writes the template it builds, relative to the folder it runs in.
const SAM_BUILT_TEMPLATE: &str = ".aws-sam/build/template.yaml";

/// `sam build` for a SAM service whose template wants it (a `Metadata.BuildMethod` or a
/// compiled project as a function's code, in it or a template it nests; a function folder's
/// dependencies), packaging what it writes.
fn sam_build(root: &Path, s: &mut Found, notes: &mut Vec<String>) {
    let Some(why) = ferry_package::sam_build_wanted(root, &template_path(&s.dir, &s.file)) else {
        return;
    };
    let mut argv = vec!["sam".to_string(), "build".to_string()];
    if s.file != "template.yaml" {
        argv.extend(["--template-file".to_string(), s.file.clone()]);
    }
    notes.push(format!(
        "{}: {why} wants `sam build`: its service.toml runs it (the SAM CLI must be on the PATH) and packages what it writes, {SAM_BUILT_TEMPLATE}; keep .aws-sam/ out of git",
        s.dir
    ));
    s.build = Some((
        argv,
        format!("{why} wants `sam build`; Ferry packages the template and code it writes."),
    ));
    s.built_template = Some(SAM_BUILT_TEMPLATE.to_string());
}

/// `[package.artifacts]` for a CloudFormation service: each local path its template gives a
/// function's or layer's code (`Code: src`, relative to the template's folder, which is what
/// `aws cloudformation package` uploads), relative to the service folder, where Ferry reads it.
/// A path outside the service folder is noted, not written (Ferry zips only what lies inside
/// it). (The service folder already holds all it can: `layout::settle` placed it, and guessed a
/// build for a path the repository does not hold.)
fn code_artifacts(root: &Path, s: &mut Found, notes: &mut Vec<String>) {
    let template = template_path(&s.dir, &s.file);
    let Some(parsed) = std::fs::read_to_string(root.join(&template))
        .ok()
        .and_then(|text| ferry_package::parse_template(&text).ok())
    else {
        return;
    };
    let template_dir = local_deps::parent(&template);
    for (resource, _, property) in ferry_package::local_code_paths(&parsed) {
        let Some(local) = parsed["Resources"][&resource]["Properties"][&property]
            .as_str()
            .filter(|l| !l.contains("://"))
        else {
            continue;
        };
        let joined = format!("{template_dir}/{local}");
        let in_service = ferry_manifest::normalize_relative(joined.trim_start_matches('/'))
            .filter(|_| !local.starts_with('/'))
            .and_then(|p| {
                if p == s.dir {
                    Some(".".to_string())
                } else if s.dir.is_empty() {
                    Some(p)
                } else {
                    p.strip_prefix(&format!("{}/", s.dir)).map(str::to_string)
                }
            });
        let Some(path) = in_service else {
            notes.push(format!(
                "{template}: {resource}'s {property} `{local}` lies outside the service folder {}: Ferry zips a function's code only from inside it; move the code into the folder, or the template beside the code, then add [package.artifacts] {resource} = \"<path>\" to its service.toml",
                s.dir
            ));
            continue;
        };
        s.artifacts.insert(resource, path);
    }
}

/// The order and outputs an umbrella template (left out) gave the applications it nests, as
/// their `depends-on` and parameters.
fn umbrella_links(
    root: &Path,
    u: &layout::Umbrella,
    services: &mut [Found],
    notes: &mut Vec<String>,
) {
    let name_of = |id: &str, services: &[Found]| {
        let template = u.apps.get(id)?;
        services
            .iter()
            .find(|s| template_path(&s.dir, &s.file) == *template)
            .map(|s| s.name.clone())
    };
    for (id, needed, why) in &u.needs {
        let (Some(me), Some(dep)) = (name_of(id, services), name_of(needed, services)) else {
            continue;
        };
        // An umbrella ordering its apps in a circle: the edge closing it is left out, as
        // Ferry's graph refuses a circle.
        if me != dep
            && !depends_on(services, &dep, &me)
            && let Some(s) = services.iter_mut().find(|s| s.name == me)
        {
            s.depends_on.entry(dep).or_insert_with(|| why.clone());
        }
    }
    for (id, key, value) in &u.values {
        let Some(me) = name_of(id, services) else {
            continue;
        };
        let Some(s) = services.iter_mut().find(|s| s.name == me) else {
            continue;
        };
        // A secret (`NoEcho` in the nested template, or by its name or value) is never copied
        // nor shown.
        let no_echo = overrides::declared(root, &s.dir, &s.file)
            .iter()
            .any(|(k, secret)| k == key && *secret);
        if no_echo || secrets::looks_secret(key, value) {
            notes.push(format!(
                "{}: {id} passes {key}, a secret (NoEcho, by its name, or by its value's form): not copied; keep it in SSM (`param set <stage> <name> --secure`) and give {key} = \"${{ssm:<name>}}\" in the service.toml",
                u.template
            ));
            continue;
        }
        s.parameters
            .entry(key.clone())
            .or_insert_with(|| (value.clone(), format!("{}: {id} passes it", u.template)));
    }
    let mut dropped: Vec<String> = Vec::new();
    for (id, key, parts) in &u.passes {
        let Some(me) = name_of(id, services) else {
            continue;
        };
        // Each output as a reference to its service's, which this one must not be, nor be
        // depended on by (a circle).
        let mut value = String::new();
        let mut shown = String::new();
        for p in parts {
            match p {
                layout::Part::Text(t) => {
                    value.push_str(t);
                    shown.push_str(t);
                }
                layout::Part::Output(app, output) => {
                    let Some(dep) = name_of(app, services)
                        .filter(|dep| *dep != me && !depends_on(services, dep, &me))
                    else {
                        value.clear();
                        break;
                    };
                    value.push_str(&format!("${{output:{dep}.{output}}}"));
                    shown.push_str(&format!("{app}.Outputs.{output}"));
                }
            }
        }
        if value.is_empty() {
            // An app no service deploys, or one depending on this one (a circle).
            dropped.push(format!("{id}.{key}"));
            continue;
        }
        if let Some(s) = services.iter_mut().find(|s| s.name == me) {
            s.parameters
                .entry(key.clone())
                .or_insert_with(|| (value, format!("{}: {id} passes {shown}", u.template)));
        }
    }
    let untranslated: Vec<String> = u
        .untranslated
        .iter()
        .filter(|(id, _)| name_of(id, services).is_some())
        .map(|(id, key)| format!("{id}.{key}"))
        .chain(dropped)
        .collect();
    if !untranslated.is_empty() {
        notes.push(format!(
            "{}: passes values init cannot write in Ferry's syntax (a condition, the umbrella's own parameter or resource, `AWS::StackName`, an output of a stack no service deploys or that depends on the receiver): {}; give each its value in its service's service.toml",
            u.template,
            ferry_manifest::first_few(&untranslated, 8)
        ));
    }
}

/// Whether `from` depends on `to`, directly or not, by the `depends-on` found so far.
fn depends_on(services: &[Found], from: &str, to: &str) -> bool {
    let mut seen = BTreeSet::new();
    let mut stack = vec![from.to_string()];
    while let Some(n) = stack.pop() {
        if n == to {
            return true;
        }
        if seen.insert(n.clone())
            && let Some(s) = services.iter().find(|s| s.name == n)
        {
            stack.extend(s.depends_on.keys().cloned());
        }
    }
    false
}

/// Gives each CloudFormation and SAM service the stack name its own deploy steps give its
/// stacks (`--stack-name orders-$STAGE`, see [`overrides::stack_name`]), where that is not
/// Ferry's default and no other service's stack: Ferry then updates those stacks, not new ones
/// beside them. Each is noted, as those stacks carry no Ferry tags until a deploy `--adopt`s
/// them.
fn scripted_stack_names(
    root: &Path,
    framework: &BTreeMap<String, String>,
    services: &mut [Found],
    notes: &mut Vec<String>,
) {
    for i in 0..services.len() {
        let s = &services[i];
        if s.kind == ServiceKind::Serverless {
            continue;
        }
        let Some((pattern, why)) = overrides::stack_name(root, &s.dir, &s.file, notes) else {
            continue;
        };
        if pattern == stack_pattern(framework, s) {
            notes.push(format!(
                "{}/{}: {why}, the name Ferry gives it too; those stacks carry no Ferry tags yet: deploy each stage of it once with --adopt",
                s.dir, s.file
            ));
            continue;
        }
        let taken = services
            .iter()
            .enumerate()
            .find(|(j, o)| *j != i && stack_pattern(framework, o) == pattern);
        if let Some((_, other)) = taken {
            notes.push(format!(
                "{}/{}: {why}, the stack name of service {} too: not written; set its stack-name by hand",
                s.dir, s.file, other.name
            ));
            continue;
        }
        notes.push(format!(
            "{}/{}: stack-name `{pattern}` written, {why}; those stacks carry no Ferry tags yet: deploy each stage of it once with --adopt",
            s.dir, s.file
        ));
        services[i].stack_name = Some((pattern, why));
    }
}

/// The stack name pattern a service would deploy (`{stage}` for the stage): the one written for
/// it (a Serverless Framework service's guess, the name its deploy steps gave its stacks), a
/// Serverless service's from its configuration (`framework`, by folder), any other's the
/// project's default, `{service}-{stage}`.
fn stack_pattern(framework: &BTreeMap<String, String>, s: &Found) -> String {
    if let Some((pattern, _)) = &s.stack_name {
        return pattern.clone();
    }
    if s.kind == ServiceKind::Serverless
        && let Some(pattern) = framework.get(&s.dir)
    {
        return pattern.clone();
    }
    format!("{}-{{stage}}", s.name)
}

/// Leaves out, with a note, each service that would deploy a stack another one deploys (two
/// Serverless services of one `service:` name, copied from each other) or one stack in every
/// stage (a `provider.stackName` without the stage): only its configuration can change the name
/// the framework gives, and what `init` writes must pass `validate`. Links to a service left out
/// go with it.
fn leave_out_shared_stacks(
    framework: &BTreeMap<String, String>,
    services: &mut Vec<Found>,
    notes: &mut Vec<String>,
) {
    let mut owners: BTreeMap<String, String> = BTreeMap::new();
    // Service left out → why.
    let mut out: BTreeMap<String, String> = BTreeMap::new();
    // The shallowest folder keeps the stack: `orders` is the original, `legacy/orders` its copy.
    let mut by_depth: Vec<&Found> = services.iter().collect();
    by_depth.sort_by_key(|s| (s.dir.matches('/').count(), s.dir.clone()));
    for s in by_depth {
        let pattern = stack_pattern(framework, s);
        let shown = format!("{}/{}", s.dir, s.file);
        if !pattern.contains("{stage}") {
            out.insert(
                s.name.clone(),
                format!(
                    "{shown}: its stack is `{pattern}` in every stage (no stage in its name): left out; put `${{sls:stage}}` in provider.stackName"
                ),
            );
        } else if let Some(first) = owners.get(&pattern) {
            out.insert(
                s.name.clone(),
                format!(
                    "{shown}: would deploy stack `{pattern}`, as {first} does: left out; give it another `service:` name in its configuration"
                ),
            );
        } else {
            owners.insert(pattern, shown);
        }
    }
    for (name, why) in &out {
        let s = services.iter().find(|s| s.name == *name).expect("found");
        let dependents: Vec<&str> = services
            .iter()
            .filter(|d| d.depends_on.contains_key(name))
            .map(|d| d.name.as_str())
            .collect();
        let links = if dependents.is_empty() {
            String::new()
        } else {
            format!(
                ", and `{name}` to the depends-on of {}",
                dependents.join(", ")
            )
        };
        notes.push(format!(
            "{why}, then add its folder to ferry.toml's services with a service.toml holding `[service]` and `kind = \"{}\"`{links}",
            s.kind.as_str()
        ));
    }
    // A name given to a service left out names nothing: its note would contradict this one.
    let gone: Vec<String> = services
        .iter()
        .filter(|s| out.contains_key(&s.name))
        .map(|s| format!("{}: its folder name `", s.dir))
        .collect();
    notes.retain(|n| !gone.iter().any(|g| n.starts_with(g.as_str())));
    services.retain(|s| !out.contains_key(&s.name));
    for s in services.iter_mut() {
        s.depends_on.retain(|d, _| !out.contains_key(d));
        // A Compose param passing its output: passed again once it is back.
        s.parameters.retain(|_, (value, _)| {
            !out.keys()
                .any(|name| value.contains(&format!("${{output:{name}.")))
        });
    }
}

/// A note for a Serverless service whose `frameworkVersion` takes version 3 and not 4, unless
/// its own or the root's `package.json` installs a framework CLI (`serverless` or `osls`
/// among its dependencies): osls 4, the CLI Ferry's messages suggest, refuses it.
fn framework_note(root: &Path, s: &Found, notes: &mut Vec<String>) {
    let config = std::fs::read_to_string(root.join(template_path(&s.dir, &s.file)));
    let wants = config.as_deref().map_or(
        ferry_manifest::FrameworkCli::Osls,
        ferry_manifest::FrameworkCli::of_config,
    );
    let installs_cli =
        |dir: &Path| ferry_manifest::FrameworkCli::named_in(&dir.join("package.json"));
    // A CLI the repository installs is the one that runs (a version 2 it names, too).
    let installed = installs_cli(&root.join(&s.dir)) || installs_cli(root);
    // Version 1 runs, and fails on the Node.js of today (it wrote a corrupt archive under
    // Node.js 20, which the deploy then refused).
    for at in [s.dir.as_str(), ""] {
        let manifest = if at.is_empty() {
            "package.json".to_string()
        } else {
            format!("{at}/package.json")
        };
        if let Some(version) = framework_cli_1(&root.join(&manifest)) {
            notes.push(format!(
                "{manifest}: installs the Serverless Framework CLI at `{version}`, version 1, which is long unmaintained and fails on current Node.js (under Node.js 20 it writes a corrupt archive, which the deploy refuses): upgrade to osls (`npm install --save-dev osls@3`, the open-source CLI, no account needed) and the configuration to frameworkVersion \"3\""
            ));
            break;
        }
    }
    if wants == ferry_manifest::FrameworkCli::Before3 && !installed {
        notes.push(format!(
            "{}/{}: its frameworkVersion takes only versions of the Serverless Framework before 3, which no CLI Ferry runs takes (osls 4, or a CLI at version 3, refuses it): upgrade the configuration to version 3 (frameworkVersion \"3\"; the framework's v3 upgrade notes say what changed), then install osls at version 3 (`npm install --save-dev osls@3`)",
            s.dir, s.file
        ));
        return;
    }
    if wants == ferry_manifest::FrameworkCli::V3 && !installed {
        notes.push(format!(
            "{}/{}: its frameworkVersion takes version 3 of the Serverless Framework and not 4, and no package.json here installs a CLI: install osls at version 3 (`npm install --save-dev osls@3`, the open-source CLI, no account needed), or let frameworkVersion take \"4\" for osls 4",
            s.dir, s.file
        ));
    }
}

/// The version range of the `serverless` CLI the `package.json` at `path` installs, when it
/// takes only version 1 (`^1.46.1`, `~1.83`, `1.83.3`).
fn framework_cli_1(path: &Path) -> Option<String> {
    let text = std::fs::read_to_string(path).ok()?;
    let json: serde_json::Value = serde_json::from_str(&text).ok()?;
    let version = ["dependencies", "devDependencies"]
        .iter()
        .find_map(|k| json.get(k)?.get("serverless")?.as_str())?;
    let major = version
        .trim()
        .trim_start_matches(['^', '~', '=', 'v'])
        .split('.')
        .next()?
        .parse::<u32>()
        .ok()?;
    (major < 2).then(|| version.to_string())
}

/// The command that installs the dependencies of the Node.js package in `dir`, chosen by its
/// lock file; `None` without a `package.json`, or for a member of the root's workspaces (noted:
/// its dependencies are installed once, from the root, never by each service at once).
fn install_step(
    root: &Path,
    dir: &str,
    members: &BTreeSet<String>,
    notes: &mut Vec<String>,
) -> Option<(Vec<String>, String)> {
    let folder = root.join(dir);
    if !folder.join("package.json").is_file() {
        return None;
    }
    if members.contains(dir) {
        notes.push(format!(
            "{dir}: a member of the workspaces of the root (package.json, pnpm-workspace.yaml or lerna.json): install them at the root (`npm ci`, `yarn install --frozen-lockfile` or `pnpm install --frozen-lockfile`) before a deploy compiles it (its service.toml has no build, as each service installing the whole workspace at once would collide)"
        ));
        return None;
    }
    let argv = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let lock = node_lock(&folder);
    // Never a step that writes into the checkout it builds from: `npm install` rewrites an
    // older package-lock.json (and writes one where there is none), leaving the tree dirty, so
    // that a protected stage refuses the next deploy and every plan of the working tree sees
    // the service changed. `npm ci` installs exactly what the lock file says, and writes none.
    let argv = match lock {
        Some("yarn.lock") => argv(&["yarn", "install", "--frozen-lockfile"]),
        Some("pnpm-lock.yaml") => argv(&["pnpm", "install", "--frozen-lockfile"]),
        Some(_) => argv(&["npm", "ci", "--no-audit", "--no-fund", "--prefer-offline"]),
        None => {
            notes.push(format!(
                "{dir}: package.json and no lock file: its build installs without one (`npm install --no-package-lock`, which writes none into the checkout), so each build may resolve other versions; commit a package-lock.json and use `npm ci` for the same dependencies every time"
            ));
            argv(&[
                "npm",
                "install",
                "--no-package-lock",
                "--no-audit",
                "--no-fund",
                "--prefer-offline",
            ])
        }
    };
    let lock = lock.unwrap_or("package.json, no lock file");
    Some((
        argv,
        format!(
            "Installs its package.json's dependencies ({lock}) before it compiles: the framework's plugins and CLI where it names them (else from a package.json above, or `serverless` on the PATH)."
        ),
    ))
}

/// For a Serverless service in `dir` without a `package.json` of its own: the nearest one
/// above it (repository-relative) that names the framework's CLI (`serverless`, `osls`) or a
/// plugin (`serverless-…`) among its dependencies, which a deploy needs installed first.
/// The lock files at the repository's root that `init` writes as global inputs.
pub(crate) const ROOT_LOCK_FILES: [&str; 3] = ["package-lock.json", "yarn.lock", "pnpm-lock.yaml"];

/// Where a Serverless Framework service without a `package.json` of its own installs its
/// framework CLI and plugins from.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct InstalledFromAbove {
    /// The `package.json` above its folder that names the CLI or a plugin.
    pub(crate) package: String,
    /// The file whose change changes what installs: the lock file beside that `package.json`,
    /// else the `package.json` itself (an `npm install` of it takes what its ranges allow).
    pub(crate) input: String,
    /// For a service with a `package.json` of its own: the plugins it does not name, which
    /// come from above. `None`: it has none of its own, and everything comes from above.
    pub(crate) plugins: Option<Vec<String>>,
    /// For a service with a `package.json` of its own: it names no framework CLI, and the one
    /// above does (the CLI is found from the service's folder upwards).
    pub(crate) cli: bool,
}

impl InstalledFromAbove {
    /// A lock file at the root, which `init` writes as a global input.
    pub(crate) fn input_is_global(&self) -> bool {
        ROOT_LOCK_FILES.contains(&self.input.as_str())
    }

    /// Why [`Self::input`] is an input of the service.
    pub(crate) fn why(&self) -> String {
        match &self.plugins {
            None => format!(
                "its framework CLI and plugins install from `{}`",
                self.package
            ),
            Some(p) => format!("{} install from `{}`", self.what(p), self.package),
        }
    }

    /// What of a service with a `package.json` of its own comes from above: the CLI, plugins.
    fn what(&self, plugins: &[String]) -> String {
        match (self.cli, plugins.is_empty()) {
            (true, true) => "its framework CLI".to_string(),
            (true, false) => format!("its framework CLI and plugins {}", plugins.join(", ")),
            (false, _) => format!("its plugins {}", plugins.join(", ")),
        }
    }
}

/// Whether a package is a Serverless Framework CLI (`serverless`, or the open-source fork).
fn is_framework_cli(name: &str) -> bool {
    name == "serverless" || name == "osls"
}

/// Where the Serverless Framework service in `dir` (configuration `config`) installs its CLI
/// and plugins from, above its folder: with no `package.json` of its own, the nearest one above
/// naming the CLI or a plugin; with one that does not name the CLI or every plugin its
/// configuration loads (`plugins`), the nearest one above naming one of those (Ferry finds the
/// CLI, and the framework a plugin, from the service's folder upwards, so the root's install
/// serves it).
pub(crate) fn installed_from_above(
    root: &Path,
    dir: &str,
    config: &str,
) -> Option<InstalledFromAbove> {
    if dir.is_empty() {
        return None;
    }
    let own = package_json(dir);
    let (missing, no_cli): (Option<Vec<String>>, bool) = if root.join(&own).is_file() {
        let own = read_package(root, &own)?;
        let missing: Vec<String> = plugin_names(root, dir, config)
            .into_iter()
            .filter(|p| !package_names(&own, &|n| n == p))
            .collect();
        let no_cli = !package_names(&own, &is_framework_cli);
        if missing.is_empty() && !no_cli {
            return None;
        }
        (Some(missing), no_cli)
    } else {
        (None, false)
    };
    for at in folders_up(dir).skip(1) {
        let pkg = package_json(at);
        let Some(p) = read_package(root, &pkg) else {
            continue;
        };
        // Only what it names comes from it: a plugin named nowhere is no plugin of its.
        let cli = no_cli && package_names(&p, &is_framework_cli);
        let plugins = match &missing {
            Some(wanted) => {
                let named: Vec<String> = wanted
                    .iter()
                    .filter(|m| package_names(&p, &|n| n == m.as_str()))
                    .cloned()
                    .collect();
                if named.is_empty() && !cli {
                    return None;
                }
                Some(named)
            }
            None if package_names(&p, &|n| is_framework_cli(n) || n.starts_with("serverless-")) => {
                None
            }
            None => return None,
        };
        let input = match node_lock(&root.join(at)) {
            Some(lock) if at.is_empty() => lock.to_string(),
            Some(lock) => format!("{at}/{lock}"),
            None => pkg.clone(),
        };
        return Some(InstalledFromAbove {
            package: pkg,
            input,
            plugins,
            cli,
        });
    }
    None
}

/// `dir` (repository-relative), its parent, and so on up to the root (`""`).
pub(crate) fn folders_up(dir: &str) -> impl Iterator<Item = &str> {
    std::iter::successors(Some(dir), |d| {
        (!d.is_empty()).then(|| d.rsplit_once('/').map_or("", |(p, _)| p))
    })
}

/// The path of the `package.json` in the folder `at` (repository-relative).
fn package_json(at: &str) -> String {
    if at.is_empty() {
        "package.json".to_string()
    } else {
        format!("{at}/package.json")
    }
}

/// The `package.json` at `pkg` (repository-relative), `None` when absent or not JSON.
fn read_package(root: &Path, pkg: &str) -> Option<serde_json::Value> {
    std::fs::read(root.join(pkg))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
}

/// Whether the `package.json` `p` installs a package `wanted` accepts (its `dependencies` or
/// `devDependencies`).
fn package_names(p: &serde_json::Value, wanted: &dyn Fn(&str) -> bool) -> bool {
    ["dependencies", "devDependencies"].iter().any(|k| {
        p[k].as_object()
            .is_some_and(|d| d.keys().any(|n| wanted(n)))
    })
}

/// The plugins the Serverless configuration `config` of `dir` loads by package name that no
/// `package.json` installs, its own, one above it up to the root, or one of the workspace
/// packages (name → folder: `packages`) it depends on, directly or through another (a shared
/// `config` package listing the plugins, which npm's and yarn's install hoists; not pnpm's):
/// a deploy would
/// stop with the framework's "plugin not found" (unless the CI machine installs them some
/// other way).
pub(crate) fn plugins_installed_nowhere(
    root: &Path,
    dir: &str,
    config: &str,
    packages: &BTreeMap<String, String>,
) -> Vec<String> {
    let mut left = plugin_names(root, dir, config);
    let above = folders_up(dir).map(String::from);
    // npm and yarn hoist what a workspace package installs to the root, where the framework
    // finds it; pnpm keeps each package's own dependencies to itself.
    let hoisted =
        !root.join("pnpm-lock.yaml").is_file() && !root.join("pnpm-workspace.yaml").is_file();
    let depended = if hoisted {
        local_deps::workspace_dependencies(root, dir, packages)
    } else {
        Vec::new()
    };
    for at in above.chain(depended) {
        if left.is_empty() {
            break;
        }
        if let Some(p) = read_package(root, &package_json(&at)) {
            left.retain(|n| !package_names(&p, &|m| m == n));
        }
    }
    left
}

/// The plugins the Serverless configuration `config` of `dir` loads from packages by name
/// (`plugins`, a list or a mapping's `modules`), as written; a name built from a variable, a
/// path (`./local-plugin`) and every module of a mapping with a `localPath` (which the
/// framework looks for there first) are left out.
fn plugin_names(root: &Path, dir: &str, config: &str) -> Vec<String> {
    if walk::is_program(config) {
        return Vec::new();
    }
    let Some(doc) = std::fs::read_to_string(root.join(template_path(dir, config)))
        .ok()
        .and_then(|t| ferry_manifest::yaml::from_str::<serde_yaml_ng::Value>(&t).ok())
    else {
        return Vec::new();
    };
    let list = match doc.get("plugins") {
        Some(serde_yaml_ng::Value::Sequence(l)) => l,
        Some(serde_yaml_ng::Value::Mapping(m)) if m.contains_key("localPath") => {
            return Vec::new();
        }
        Some(serde_yaml_ng::Value::Mapping(m)) => match m.get("modules") {
            Some(serde_yaml_ng::Value::Sequence(l)) => l,
            _ => return Vec::new(),
        },
        _ => return Vec::new(),
    };
    list.iter()
        .filter_map(serde_yaml_ng::Value::as_str)
        .filter(|n| !n.contains("${") && !n.starts_with(['.', '/']))
        .map(String::from)
        .collect()
}

/// The lock file of the Node.js package in `folder`, which says its package manager: yarn's,
/// pnpm's, else npm's (`package-lock.json`, `npm-shrinkwrap.json`); `None` without one.
pub(crate) fn node_lock(folder: &Path) -> Option<&'static str> {
    [
        "yarn.lock",
        "pnpm-lock.yaml",
        "package-lock.json",
        "npm-shrinkwrap.json",
    ]
    .into_iter()
    .find(|l| folder.join(l).is_file())
}

/// Where the stages' region came from, unless every service names it (a default, or the region
/// only some name), and one note per service whose own files name another region: a stage
/// deploys every service to its own region (a Serverless Framework service is compiled with
/// `--region`), so such a service would move.
fn region_notes(scan: &Scan) -> Vec<String> {
    let stages = scan.region();
    let total = scan.services.len();
    // Where the stages' region came from, when the repository does not say it for every service.
    let whence = match scan.named_region() {
        None => Some(format!(
            "ferry.toml: no service names its region (a Serverless provider.region, a samconfig region, a deploy script's --region), so every stage is written with `{DEFAULT_REGION}`, a default: set each stage's region to the one its stacks are in, or Ferry deploys new stacks there"
        )),
        Some((r, n)) if n < total => {
            let naming: Vec<String> = scan
                .services
                .iter()
                .filter(|s| s.region.as_deref() == Some(r))
                .map(|s| template_path(&s.dir, &s.file))
                .collect();
            let none = scan.services.iter().filter(|s| s.region.is_none()).count();
            let others = total - n - none;
            let names = |k: usize| if k == 1 { "names" } else { "name" };
            let rest = match (others, none) {
                (0, 1) => "the other names no region".to_string(),
                (0, _) => format!("the {none} others name no region"),
                (1, 0) => "the other names another region (noted below)".to_string(),
                (_, 0) => format!("the {others} others name other regions (noted below)"),
                _ => format!(
                    "{others} {} another region (noted below) and {none} none",
                    names(others)
                ),
            };
            Some(format!(
                "ferry.toml: every stage is written with `{r}`, which {n} of the {total} services name ({}); {rest}: check that their stacks are there too",
                ferry_manifest::first_few(&naming, 3)
            ))
        }
        Some(_) => None,
    };
    // Stages written with a region of their own (a SAM configuration's environment named
    // after the stage): said beside, as "every stage" no longer holds.
    let own: Vec<String> = STAGES
        .iter()
        .map(|st| (st, scan.stage_region(st)))
        .filter(|(_, r)| *r != stages)
        .map(|(st, r)| format!("{st} with `{r}`"))
        .collect();
    let whence = match (whence, own.is_empty()) {
        (w, true) => w,
        (w, false) => Some(format!(
            "{} (but {}, as the SAM configurations' environments named after them say)",
            w.unwrap_or_else(|| format!("ferry.toml: every stage is written with `{stages}`")),
            own.join(", ")
        )),
    };
    whence
        .into_iter()
        .chain(scan.services.iter().filter_map(|s| {
            let own = s.region.as_deref().filter(|r| *r != stages)?;
            Some(format!(
                "{}/{}: names region `{own}`, but the stages deploy to `{stages}` (see ferry.toml): every service of a stage deploys to the stage's region, so this one would be deployed to `{stages}`, not `{own}`; set the stages' region in ferry.toml, or keep this service in a Ferry project of its own",
                s.dir, s.file
            ))
        }))
        .collect()
}

/// The region the stages are written with when no service names one.
pub const DEFAULT_REGION: &str = "us-east-1";

/// One note per Serverless Framework service whose configuration reads `${param:NAME}` with no
/// fallback, that neither its `params` (`default`, which every stage falls back on, or each of
/// the stages `ferry.toml` is written with) nor a Compose file gives: its compile would stop
/// with the framework's "cannot be resolved". A program (`serverless.ts`) is not read.
fn unpassed_params(root: &Path, scan: &Scan) -> Vec<String> {
    let mut out = Vec::new();
    for s in scan
        .services
        .iter()
        .filter(|s| s.kind == ServiceKind::Serverless && !walk::is_program(&s.file))
    {
        let Ok(text) = std::fs::read_to_string(root.join(template_path(&s.dir, &s.file))) else {
            continue;
        };
        let read = params_read(&text);
        if read.is_empty() {
            continue;
        }
        let doc = ferry_manifest::yaml::from_str::<serde_yaml_ng::Value>(&text).ok();
        let given = |name: &str| {
            let params = doc.as_ref().and_then(|d| d.get("params"));
            let has = |stage: &str| {
                params
                    .and_then(|p| p.get(stage))
                    .and_then(|p| p.get(name))
                    .is_some()
            };
            has("default") || STAGES.iter().all(|stage| has(stage))
        };
        // Ferry gives the stage's permissions boundary itself.
        let missing: Vec<&str> = read
            .into_iter()
            .filter(|n| *n != ferry_package::BOUNDARY_PARAMETER)
            .filter(|n| !given(n) && !s.parameters.contains_key(*n))
            .collect();
        if !missing.is_empty() {
            out.push(format!(
                "{}: reads {}, which neither its params (a default, or each stage's) nor anything else gives: its compile stops with the framework's \"cannot be resolved\"; give {} in its service.toml's [parameters] (passed as --param), or under params.default",
                template_path(&s.dir, &s.file),
                missing
                    .iter()
                    .map(|n| format!("${{param:{n}}}"))
                    .collect::<Vec<_>>()
                    .join(", "),
                if missing.len() == 1 { "it" } else { "them" }
            ));
        }
    }
    out
}

/// One note per Serverless Framework service whose configuration reads an environment variable
/// with no fallback (`${env:UNIQ}`), which Ferry does not set for the framework: its compile
/// stops with the framework's "cannot be resolved" where the variable is not set (a fresh CI
/// job; locally, a `.envrc` may have set it). A program (`serverless.ts`), which may set what
/// it reads, is searched only for secrets, `process.env.X` too.
fn unset_env_reads(root: &Path, scan: &Scan) -> Vec<String> {
    // What Ferry gives the framework's process: the stage's region and credentials, its own
    // names; and what any shell has. (Not the stage's name: it is `--stage`, `${sls:stage}`.)
    let given = |n: &str| {
        matches!(
            n,
            "AWS_REGION"
                | "AWS_DEFAULT_REGION"
                | "AWS_ACCESS_KEY_ID"
                | "AWS_SECRET_ACCESS_KEY"
                | "AWS_SESSION_TOKEN"
                | "AWS_ENDPOINT_URL"
                | "FERRY_PROJECT"
                | "FERRY_SERVICE"
                | "HOME"
                | "PATH"
                | "USER"
                | "CI"
                | "PWD"
        )
    };
    scan.services
        .iter()
        .filter(|s| s.kind == ServiceKind::Serverless)
        .filter_map(|s| {
            let path = template_path(&s.dir, &s.file);
            let text = std::fs::read_to_string(root.join(&path)).ok()?;
            // `useDotenv` with a `.env` beside it: the framework reads the variables from there.
            if text.contains("useDotenv: true") && root.join(&s.dir).join(".env").is_file() {
                return None;
            }
            // A secret by its name is not to be set in a buildspec (committed) nor given a
            // fallback in the configuration: said apart.
            let shown = |names: Vec<&str>| -> Vec<String> {
                names.iter().map(|n| format!("${{env:{n}}}")).collect()
            };
            let mut read = shown(
                variables_read(&text, "${env:")
                    .into_iter()
                    .filter(|n| !given(n) && !secrets::secret_name(n))
                    .collect(),
            );
            // Every secret read, with a fallback or without, its name built with variables or
            // not (`API_TOKEN_${sls:stage}`): the framework writes each into the template.
            let mut secrets: Vec<String> = Vec::new();
            for source in ferry_manifest::serverless_variable_sources(&text) {
                if let Some(name) = ferry_manifest::secret_env_source(source) {
                    let shown = format!("${{env:{name}}}");
                    if !given(&name) && !secrets.contains(&shown) {
                        secrets.push(shown);
                    }
                }
            }
            // A program (`serverless.ts`) may set what it reads itself: only its secrets are
            // said, `process.env.X` among them.
            if walk::is_program(&s.file) {
                read.clear();
                for name in ferry_env::program_env_reads(&text) {
                    if secrets::secret_name(&name) && !given(&name) {
                        secrets.push(format!("process.env.{name}"));
                    }
                }
            }
            let plain = (!read.is_empty()).then(|| {
                format!(
                    "{path}: reads {} with no fallback, which Ferry does not set: the framework's compile stops (\"cannot be resolved\") wherever {} unset (a fresh CI job); set {} where Ferry runs (the buildspec's env, the CI job's), or give a fallback (`${{env:NAME, 'value'}}`)",
                    read.join(", "),
                    if read.len() == 1 { "it is" } else { "they are" },
                    if read.len() == 1 { "it" } else { "them" }
                )
            });
            let secret = (!secrets.is_empty()).then(|| {
                format!(
                    "{path}: reads {}, {}, from the environment: the framework writes {}, in clear, into the template it compiles, which Ferry keeps and uploads as it keeps every template, and a buildspec's env is committed; keep {} in SSM as a SecureString or in Secrets Manager, and have the function read {} when it runs",
                    secrets.join(", "),
                    if secrets.len() == 1 { "a secret by its name" } else { "secrets by their names" },
                    if secrets.len() == 1 { "the value" } else { "their values" },
                    if secrets.len() == 1 { "it" } else { "them" },
                    if secrets.len() == 1 { "it" } else { "them" }
                )
            });
            Some(plain.into_iter().chain(secret).collect::<Vec<_>>())
        })
        .flatten()
        .collect()
}

/// The names a Serverless configuration reads with `${param:NAME}` and no fallback after it
/// (`${param:domain, 'example.com'}` resolves without one), each once, in order. A name built
/// from another variable is left out.
fn params_read(text: &str) -> Vec<&str> {
    variables_read(text, "${param:")
}

/// The names `text` reads with the variable source `open` (`${param:`, `${env:`) and no
/// fallback after it, each once, in order; a name built from another variable is left out.
fn variables_read<'t>(text: &'t str, open: &str) -> Vec<&'t str> {
    let mut out: Vec<&str> = Vec::new();
    for (at, _) in text.match_indices(open) {
        let rest = &text[at + open.len()..];
        let end = rest.find([',', '}']).unwrap_or(rest.len());
        let name = rest[..end].trim();
        let fallback = rest[end..].starts_with(',');
        let plain = !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
        if plain && !fallback && !out.contains(&name) {
            out.push(name);
        }
    }
    out
}

/// One note per git submodule (`.gitmodules`) inside a service's folder, or holding one: its
/// files are packaged from its checkout, which a CI clone makes only when told to.
fn submodule_notes(root: &Path, scan: &Scan) -> Vec<String> {
    let Ok(text) = std::fs::read_to_string(root.join(".gitmodules")) else {
        return Vec::new();
    };
    let paths = text.lines().filter_map(|l| {
        let (key, value) = l.split_once('=')?;
        (key.trim() == "path").then(|| value.trim().trim_end_matches('/').to_string())
    });
    let under = |a: &str, b: &str| a == b || a.starts_with(&format!("{b}/"));
    paths
        .filter_map(|p| {
            let services: Vec<&str> = scan
                .services
                .iter()
                .filter(|s| under(&p, &s.dir) || under(&s.dir, &p))
                .map(|s| s.name.as_str())
                .collect();
            (!services.is_empty()).then(|| {
                format!(
                    "{p}: a git submodule in the folder of {}: its files are packaged from its checkout, so check submodules out wherever Ferry runs (`git clone --recurse-submodules`; CodeBuild: `git-submodules-config: fetch-submodules: true` in the project's source; GitHub Actions: `submodules: recursive`); Ferry refuses to package from an empty submodule folder",
                    services.join(", ")
                )
            })
        })
        .collect()
}

/// The named stages `ferry.toml` is written with.
pub(crate) const STAGES: &[&str] = &["dev", "staging", "prod"];

/// Words a value that names a stage is written with (`Environment: dev`, `production`).
pub(crate) const STAGE_WORDS: &[&str] = &[
    "dev",
    "development",
    "test",
    "qa",
    "stage",
    "staging",
    "prod",
    "production",
];

/// `s` as a Ferry name: lowercase letters, digits and `-`, starting with a letter.
pub fn valid_name(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars() {
        let c = c.to_ascii_lowercase();
        if c.is_ascii_alphanumeric() {
            out.push(c);
        } else if !out.ends_with('-') && !out.is_empty() {
            out.push('-');
        }
    }
    let out = out.trim_matches('-').to_string();
    match out.chars().next() {
        Some(c) if c.is_ascii_lowercase() => out,
        Some(_) => format!("s-{out}"),
        None => "service".to_string(),
    }
}

/// The first symbolic link (a dangling one too) on the way from `root` to `root/rel`, the file
/// included: writing there could lead out of the repository. For any command that writes files
/// into a repository it did not make.
pub fn link_on_the_way(root: &Path, rel: &Path) -> Option<PathBuf> {
    let mut at = root.to_path_buf();
    for part in rel.components() {
        at.push(part);
        let meta = std::fs::symlink_metadata(&at).ok()?;
        if meta.file_type().is_symlink() {
            return Some(at);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::valid_name;

    #[test]
    fn folder_names_become_valid_service_names() {
        assert_eq!(valid_name("Orders_Service"), "orders-service");
        assert_eq!(valid_name("2fa"), "s-2fa");
        assert_eq!(valid_name("--"), "service");
        assert_eq!(valid_name("api.v2"), "api-v2");
    }
}
