//! The deploy steps of a repository's own scripts, as `init` reads them: which files are
//! scripts (Makefiles, shell scripts, CodeBuild buildspecs), the scripts a service's deploy
//! commands may stand in (its folder's, its template's, and those above naming it), and each
//! script's commands, split as a shell splits them, with the folder each runs in.

use std::collections::BTreeMap;
use std::path::Path;

use crate::overrides::{folders, small_text, stage_variable};
use crate::secrets::secret_name;

/// The Makefiles and shell scripts of the folder `at` (repository-relative), by name: each
/// script's repository path and text (one too large, or not text, is passed over).
pub(crate) fn scripts_in(root: &Path, at: &str) -> Vec<(String, String)> {
    let folder = root.join(at);
    let mut scripts: Vec<String> = std::fs::read_dir(&folder)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| is_makefile(n) || n.ends_with(".sh") || buildspec(n))
        .collect();
    scripts.sort();
    scripts
        .into_iter()
        .filter_map(|name| {
            let text = small_text(&folder.join(&name))?;
            let text = if buildspec(&name) {
                buildspec_commands(&text)?
            } else {
                text
            };
            let path = if at.is_empty() {
                name
            } else {
                format!("{at}/{name}")
            };
            Some((path, text))
        })
        .collect()
}

/// Whether a file is a CodeBuild buildspec (`buildspec.yml`, `buildspec-deploy.yaml`), whose
/// phases' commands deploy stacks as a script's do.
pub(crate) fn buildspec(path: &str) -> bool {
    let name = path.rsplit('/').next().unwrap_or(path);
    name.starts_with("buildspec") && (name.ends_with(".yml") || name.ends_with(".yaml"))
}

/// A buildspec's commands as a shell script: its `env.variables` as assignments, then each
/// phase's commands (`install`, `pre_build`, `build`, `post_build`), one a line. `None` when it
/// is no buildspec.
pub(crate) fn buildspec_commands(text: &str) -> Option<String> {
    let doc: serde_yaml_ng::Value = ferry_manifest::yaml::from_str(text).ok()?;
    let mut out = String::new();
    if let Some(vars) = doc
        .get("env")
        .and_then(|e| e.get("variables"))
        .and_then(|v| v.as_mapping())
    {
        for (k, v) in vars {
            if let (Some(k), Some(v)) = (k.as_str(), v.as_str()) {
                out.push_str(&format!("{k}={v}\n"));
            }
        }
    }
    let phases = doc.get("phases")?.as_mapping()?;
    for phase in ["install", "pre_build", "build", "post_build"] {
        let commands = phases
            .get(phase)
            .and_then(|p| p.get("commands"))
            .and_then(|c| c.as_sequence());
        for c in commands.into_iter().flatten().filter_map(|c| c.as_str()) {
            out.push_str(c);
            out.push('\n');
        }
    }
    Some(out)
}

/// `text` (a Makefile or shell script) with each use of a variable it gives one literal value
/// (`region = ap-southeast-2`, `REGION=us-east-1`, `export BUCKET="b"`; `$(region)`,
/// `${REGION}`, `$BUCKET`) written as that value, so that a deploy command's region or stack
/// name reads through it. Read only for those: a parameter's value through a variable stays
/// one Ferry cannot know (a variable may hold a secret under any name). Left as they are: a
/// stage's variable (`STAGE`), whose value is one stage's; a default the caller may override
/// (`TIER ?= dev`, the stage under another name) or a value given in a conditional (`ifeq`,
/// `if`, `case`), which holds for some runs only; a name given two values or appended to
/// (`+=`); a secret's name (`GITHUB_TOKEN`); a value with a variable, quote or space in it;
/// make's `$$` escapes (the shell's).
pub(crate) fn with_literal_variables(text: &str) -> String {
    let mut given: BTreeMap<&str, Option<&str>> = BTreeMap::new();
    // How deep in a make or shell conditional a line is.
    let mut depth = 0usize;
    for line in text.lines() {
        let line = line.trim_start();
        let first = line.split_whitespace().next().unwrap_or_default();
        match first {
            "ifeq" | "ifneq" | "ifdef" | "ifndef" | "if" | "case" => {
                depth += 1;
                continue;
            }
            "endif" | "fi" | "esac" => {
                depth = depth.saturating_sub(1);
                continue;
            }
            _ => {}
        }
        let line = line.strip_prefix("export ").unwrap_or(line);
        let Some((name, value)) = line.split_once('=') else {
            continue;
        };
        let name = name.trim_end();
        // `NAME ?= x` (a default) and `NAME += x`: never one literal value.
        let (name, settled) = match name.strip_suffix(['?', '+']) {
            Some(n) => (n.trim_end(), false),
            None => (name.trim_end_matches(':').trim_end(), depth == 0),
        };
        if name.is_empty()
            || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            || name.starts_with(|c: char| c.is_ascii_digit())
        {
            continue;
        }
        let value = value.split(" #").next().unwrap_or_default().trim();
        let value = value
            .strip_prefix('"')
            .and_then(|v| v.strip_suffix('"'))
            .or_else(|| value.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')))
            .unwrap_or(value);
        let literal = settled
            && !stage_variable(name)
            && !secret_name(name)
            && !value.is_empty()
            && value.chars().all(|c| {
                c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | ':' | '/' | '@' | '+')
            });
        let entry = given.entry(name).or_insert(literal.then_some(value));
        if *entry != literal.then_some(value) {
            *entry = None;
        }
    }
    given.retain(|_, value| value.is_some());
    if given.is_empty() {
        return text.to_string();
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        if let Some(escaped) = after.strip_prefix('$') {
            // make's escape: the shell's variable, as it is.
            out.push_str("$$");
            rest = escaped;
            continue;
        }
        let (name, len) = if let Some(inner) = after.strip_prefix('(') {
            inner
                .find(')')
                .map_or(("", 0), |end| (&inner[..end], end + 2))
        } else if let Some(inner) = after.strip_prefix('{') {
            inner
                .find('}')
                .map_or(("", 0), |end| (&inner[..end], end + 2))
        } else {
            let end = after
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(after.len());
            (&after[..end], end)
        };
        match given.get(name) {
            Some(Some(value)) if len > 0 => {
                out.push_str(value);
                rest = &after[len..];
            }
            _ => {
                out.push('$');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// Which of a script's deploy commands are a service's.
#[derive(Debug, Clone)]
pub(crate) enum Of {
    /// A script of the service's folder or its template's (`folder`): every deploy command but
    /// one naming another template file than the service's (`template` its name, `path` its
    /// repository-relative path, which a name with a folder in it, `../api/template.yaml`, is
    /// compared with) or what the script's build or package writes from it.
    Near {
        folder: String,
        template: String,
        path: String,
        make: bool,
        from_root: bool,
    },
    /// A script of a folder above the service's (`folder`), as a repository's root Makefile
    /// deploying every stack: only the commands naming the service's `template`
    /// (repository-relative) by its path from there.
    Above {
        folder: String,
        template: String,
        make: bool,
        from_root: bool,
    },
}

impl Of {
    /// The script's folder, repository-relative.
    pub(crate) fn folder(&self) -> &str {
        match self {
            Of::Near { folder, .. } | Of::Above { folder, .. } => folder,
        }
    }

    /// Whether the script is a Makefile, whose recipe lines each run in a shell of their own
    /// (a `cd` holds for the rest of its line only).
    pub(crate) fn make(&self) -> bool {
        match self {
            Of::Near { make, .. } | Of::Above { make, .. } => *make,
        }
    }

    /// The folder the script's commands start in: the repository's root for a buildspec
    /// (CodeBuild runs its commands from the checkout's root wherever the file lies:
    /// klubby's `be-cicd/buildspec.yaml` begins `cd infrastructure/storage/s3`), else the
    /// script's own.
    pub(crate) fn start(&self) -> &str {
        match self {
            Of::Near {
                from_root: true, ..
            }
            | Of::Above {
                from_root: true, ..
            } => "",
            _ => self.folder(),
        }
    }
}

/// Whether the script at `path` is a Makefile.
pub(crate) fn is_makefile(path: &str) -> bool {
    let name = path.rsplit('/').next().unwrap_or(path);
    matches!(name, "Makefile" | "makefile" | "GNUmakefile")
}

/// The flags naming the template a deploy command deploys (`--template-body file://t.yaml`).
pub(crate) const TEMPLATE_FLAGS: [&str; 4] =
    ["--template-file", "--template", "-t", "--template-body"];

/// The scripts whose deploy commands may be the service's (in `dir`, configuration or template
/// `file`): its folder's and its template's ([`Of::Near`]), then those of each folder above up
/// to the repository's root ([`Of::Above`]); each with its path and text.
pub(crate) fn scripts_of(root: &Path, dir: &str, file: &str) -> Vec<(String, String, Of)> {
    let template = crate::template_path(dir, file);
    // `templates/network/../network.yaml` of a template given a folder of its own.
    let template = ferry_manifest::normalize_relative(&template).unwrap_or(template);
    let template_name = file.rsplit('/').next().unwrap_or(file);
    let near = folders(dir, file);
    let mut out = Vec::new();
    for at in &near {
        for (from, text) in scripts_in(root, at) {
            let of = Of::Near {
                folder: at.clone(),
                template: template_name.to_string(),
                path: template.clone(),
                make: is_makefile(&from),
                from_root: buildspec(&from),
            };
            out.push((from, text, of));
        }
    }
    let above = crate::folders_up(dir).skip(1);
    for at in above.filter(|a| !near.iter().any(|n| n == a)) {
        // Only a script naming the template's file, or changing folders, is read further (a
        // root Makefile is read for each service below it).
        for (from, text) in scripts_in(root, at)
            .into_iter()
            .filter(|(_, t)| t.contains(template_name) || t.contains("cd ") || t.contains("pushd "))
        {
            let of = Of::Above {
                folder: at.to_string(),
                template: template.clone(),
                make: is_makefile(&from),
                from_root: buildspec(&from),
            };
            out.push((from, text, of));
        }
    }
    out
}

/// The words of each deploy command (`sam deploy`, `aws cloudformation deploy`, `create-stack`
/// or `update-stack`) of a Makefile or shell script that `of` says is the service's, continued
/// lines joined and a line's commands taken one by one (`aws s3 cp … --region x && sam
/// deploy …`: the copy's flags are not the deploy's), each from the folder a `cd` before it
/// went to (`cd ../storage && sam deploy` deploys storage's template, not the script folder's).
pub(crate) fn deploy_commands_of(text: &str, of: &Of) -> Vec<(Option<String>, Vec<String>)> {
    let folder = of.folder();
    let all = script_commands(text, of.start(), folder, of.make());
    let deploys = all.iter().filter(|(_, w)| {
        ["deploy", "create-stack", "update-stack"]
            .iter()
            .any(|s| subcommand(w, s))
    });
    // The templates a command names, repository-relative (from the folder it runs in; a
    // name with a variable, or from a folder Ferry cannot know, is `None`: the command then
    // names a template Ferry cannot know, which makes it no template's; before, one naming
    // `"$DIR"/a.yaml` was taken as naming none, and credited to every template of its folder).
    let named = |cwd: &Option<String>, w: &[String]| -> Vec<(String, Option<String>)> {
        w.windows(2)
            .filter(|p| TEMPLATE_FLAGS.contains(&p[0].as_str()))
            .map(|p| {
                let mut file = p[1].strip_prefix("file://").unwrap_or(&p[1]).to_string();
                // A folder variable before a plain name (`"$DIR"/a.yaml`, as a script names its
                // own folder): that name, from the folder it runs in.
                if let Some((dir, name)) = file.rsplit_once('/')
                    && dir.starts_with('$')
                    && !dir.contains('/')
                    && !name.contains('$')
                {
                    file = name.to_string();
                }
                let at = cwd
                    .as_deref()
                    .filter(|_| !file.contains('$'))
                    .and_then(|cwd| crate::local_deps::resolve(cwd, &file));
                (file, at)
            })
            .collect()
    };
    let commands: Vec<&(Option<String>, Vec<String>)> = match of {
        Of::Near { template, path, .. } => {
            // A command naming another template file (`--template-file other.yaml`) is not
            // this service's, unless that file is what a `sam build`, `sam package` or
            // `aws cloudformation package` of the script writes from `template`
            // (`.aws-sam/build/…`, `--output-template-file packaged.yaml`). A name with a
            // folder in it is the service's template only by its path (a pipeline's buildspec
            // deploying `../api/template.yaml` deploys api's), or what is written below the
            // script's folder. A command run from another folder (after a `cd`) is the
            // service's only when that folder is its template's, or it names the template.
            let words: Vec<Vec<String>> = all.iter().map(|(_, w)| w.clone()).collect();
            let packaged = packaged_from(&words, template);
            let template_dir = crate::local_deps::parent(path);
            let ours = |cwd: &Option<String>, (file, at): &(String, Option<String>)| {
                let name = file.rsplit('/').next().unwrap_or(file);
                let written = packaged.iter().any(|p| p == name);
                let here = cwd.as_deref() == Some(folder);
                if !file.contains('/') && here {
                    return name == template.as_str() || written;
                }
                let below = |p: &str| folder.is_empty() || p.starts_with(&format!("{folder}/"));
                at.as_deref() == Some(path.as_str())
                    || (written && at.as_deref().is_some_and(below))
            };
            // A `create-stack` or `update-stack` is the service's only when it names the
            // template (`--use-previous-template`, `--template-url` name none: another stack's
            // update, as a shared DNS stack's, may stand in the service's script).
            deploys
                .filter(|(cwd, w)| {
                    let names = named(cwd, w);
                    let from_here =
                        matches!(cwd.as_deref(), Some(c) if c == folder || c == template_dir);
                    names.iter().all(|n| ours(cwd, n))
                        && (!names.is_empty() || (subcommand(w, "deploy") && from_here))
                })
                .collect()
        }
        // Naming the template by its path, or a `sam deploy` naming none from the template's
        // folder (after `cd services/orders`), where the SAM CLI reads `template.yaml`.
        Of::Above { template, .. } => deploys
            .filter(|(cwd, w)| {
                let names = named(cwd, w);
                let (dir, name) = template.rsplit_once('/').unwrap_or(("", template));
                names
                    .iter()
                    .any(|(_, at)| at.as_deref() == Some(template.as_str()))
                    || (names.is_empty()
                        && subcommand(w, "deploy")
                        && cwd.as_deref() == Some(dir)
                        && matches!(name, "template.yaml" | "template.yml"))
            })
            .collect(),
    };
    commands.into_iter().cloned().collect()
}

/// The commands of a Makefile or shell script of `folder` (repository-relative), run from
/// `start` (`folder`, or the root for a buildspec), each as its words with the folder it runs
/// in: continued lines joined, a command substitution one word
/// ([`without_substitutions`]), `--flag=value` split in two ([`flag_words`]), each line cut at
/// its separators ([`commands`]). A `cd` (or `pushd`) moves the folder of the commands after
/// it, to the end of its line in a Makefile (`make`: each recipe line runs in a shell of its
/// own), to the end of the script in a shell script or buildspec; `None` where Ferry cannot
/// know it (a variable, a path outside the repository, `popd`).
pub(crate) fn script_commands(
    text: &str,
    start: &str,
    folder: &str,
    make: bool,
) -> Vec<(Option<String>, Vec<String>)> {
    let mut out = Vec::new();
    let mut cwd = Some(start.to_string());
    // Variables holding the script's own folder (`DIR="$(cd "$(dirname "$0")" && pwd)"`).
    let mut own_folder: Vec<String> = Vec::new();
    let mut pushed: Vec<Option<String>> = Vec::new();
    let joined = text.replace("\\\r\n", " ").replace("\\\n", " ");
    for line in joined.lines() {
        if make {
            cwd = Some(start.to_string());
        }
        // `dirname "$0"`, `${BASH_SOURCE[0]}`, `${0%/*}`: the script's folder.
        let names_own = (line.contains("dirname")
            && (line.contains("$0") || line.contains("BASH_SOURCE")))
            || line.contains("${0%/*}");
        if names_own && let Some((name, _)) = line.trim().split_once('=') {
            let name = ["export ", "local ", "readonly ", "declare "]
                .iter()
                .fold(name.trim(), |n, p| n.strip_prefix(p).unwrap_or(n));
            if !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                own_folder.push(name.to_string());
            }
        }
        let before = cwd.clone();
        let mut subshell = false;
        for command in commands(flag_words(words(&without_substitutions(line)))) {
            // A command may follow a subshell's or group's opening, or a shell keyword.
            let mut words = command.iter().map(String::as_str).peekable();
            while let Some(w) = words.peek() {
                let bare = w.trim_start_matches(['(', '{']);
                if w.starts_with('(') {
                    subshell = true;
                }
                if bare.is_empty() || matches!(bare, "then" | "do" | "else" | "builtin" | "command")
                {
                    words.next();
                } else {
                    break;
                }
            }
            let rest: Vec<&str> = words.collect();
            let Some(first) = rest.first() else {
                continue;
            };
            if first.starts_with('(') {
                subshell = true;
            }
            let tool = first.trim_start_matches(['(', '{', '@', '-', '+']);
            match tool {
                "cd" | "pushd" => {
                    if tool == "pushd" {
                        pushed.push(cwd.clone());
                    }
                    // A subshell's closing `)` stuck to the folder is no part of it (the
                    // substitution Ferry cannot read, `$(…)`, keeps its own).
                    let to = rest.get(1).map(|t| match t.strip_prefix("$(…)") {
                        Some(_) => *t,
                        None => t.trim_end_matches([')', ';']),
                    });
                    cwd = cd_to(to, cwd.as_deref(), folder, names_own, &own_folder);
                }
                "popd" => cwd = pushed.pop().flatten(),
                _ => out.push((cwd.clone(), command)),
            }
        }
        // A subshell's `cd` ends with it.
        if subshell {
            cwd = before;
        }
    }
    out
}

/// The folder (repository-relative) a `cd to` from `cwd` goes to, in a script of `folder`:
/// `None` where Ferry cannot know it (a variable, a path outside the repository, `cd -`, `cd`
/// alone). CodeBuild's and GitHub's checkout folders are the repository's root; the script's
/// own folder (`$(dirname "$0")` on a line naming it, or a variable such a line gives) is
/// `folder`.
fn cd_to(
    to: Option<&str>,
    cwd: Option<&str>,
    folder: &str,
    line_names_own: bool,
    own_folder: &[String],
) -> Option<String> {
    let to = to?;
    let own_expansion = [
        "$(…)",
        "${0%/*}",
        "${BASH_SOURCE%/*}",
        "${BASH_SOURCE[0]%/*}",
    ];
    if line_names_own && own_expansion.contains(&to) {
        return Some(folder.to_string());
    }
    let roots = [
        "$CODEBUILD_SRC_DIR",
        "${CODEBUILD_SRC_DIR}",
        "$GITHUB_WORKSPACE",
        "${GITHUB_WORKSPACE}",
    ];
    let own = own_folder
        .iter()
        .flat_map(|v| [format!("${{{v}}}"), format!("${v}")]);
    let (base, rest) = match roots.iter().find_map(|r| to.strip_prefix(r)) {
        Some(rest) => ("", rest),
        None => match own.into_iter().find_map(|v| {
            to.strip_prefix(&v)
                .filter(|rest| rest.is_empty() || rest.starts_with('/'))
                .map(String::from)
        }) {
            Some(rest) => return resolve_in(folder, rest.trim_start_matches('/')),
            None => (cwd?, to),
        },
    };
    let rest = if base.is_empty() && rest != to {
        rest.trim_start_matches('/')
    } else {
        rest
    };
    resolve_in(base, rest)
}

/// `rest` resolved from `base` (`""` for `base` itself), `None` for what Ferry cannot follow.
fn resolve_in(base: &str, rest: &str) -> Option<String> {
    if rest.contains(['$', '`', '~']) || rest == "-" {
        return None;
    }
    if rest.is_empty() || rest == "." {
        return Some(base.to_string());
    }
    crate::local_deps::resolve(base, rest)
}

/// A line's words cut into its commands, at `&&`, `||`, `;`, `|` and `&`, also where a word
/// ends with `;` (`--region eu-west-1;`).
pub(crate) fn commands(words: Vec<String>) -> Vec<Vec<String>> {
    let mut out = vec![Vec::new()];
    for w in words {
        if matches!(w.as_str(), "&&" | "||" | ";" | "|" | "&") {
            out.push(Vec::new());
            continue;
        }
        let ends = w.len() > 1 && w.ends_with(';');
        let word = if ends { &w[..w.len() - 1] } else { &w[..] };
        out.last_mut().expect("never empty").push(word.to_string());
        if ends {
            out.push(Vec::new());
        }
    }
    out.retain(|c| !c.is_empty());
    out
}

/// `line` with each command substitution (`$(aws ec2 describe-vpcs --region x | jq …)`,
/// `` `…` ``) as the one word `$(…)`: its flags and separators are another command's, and its
/// value is unknowable (a variable). A Makefile's `$(STAGE)`, a name with no space in it, stays.
pub(crate) fn without_substitutions(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut rest = line;
    while let Some(at) = rest.find(['$', '`']) {
        out.push_str(&rest[..at]);
        let tail = &rest[at..];
        let end = if let Some(inner) = tail.strip_prefix("$(") {
            // To the parenthesis that closes it, nested ones counted.
            let mut depth = 1;
            inner
                .char_indices()
                .find(|&(_, c)| {
                    match c {
                        '(' => depth += 1,
                        ')' => depth -= 1,
                        _ => {}
                    }
                    depth == 0
                })
                .map(|(i, _)| 2 + i + 1)
                .filter(|&e| tail[2..e - 1].contains(char::is_whitespace))
        } else if let Some(inner) = tail.strip_prefix('`') {
            inner.find('`').map(|i| 1 + i + 1)
        } else {
            None
        };
        match end {
            Some(e) => {
                out.push_str("$(…)");
                rest = &tail[e..];
            }
            None => {
                let c = tail.chars().next().expect("found at `at`");
                out.push(c);
                rest = &tail[c.len_utf8()..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// Whether `command` runs `sam <sub>` or `aws cloudformation <sub>` (`sam deploy`,
/// `aws --region x cloudformation deploy`), however it is started (`npx sam`, `(sam`, a
/// Makefile recipe's `@sam`, `-sam` or `+sam`, a Makefile's `$(SAM) deploy` or a script's
/// `${SAM_CLI} deploy`: a variable naming SAM).
pub(crate) fn subcommand(command: &[String], sub: &str) -> bool {
    command.windows(2).any(|p| {
        let tool = p[0].trim_start_matches(['(', '@', '-', '+']);
        let variable = tool
            .strip_prefix('$')
            .is_some_and(|v| v.to_ascii_uppercase().contains("SAM"));
        p[1] == sub
            && (tool == "sam" || tool.ends_with("/sam") || tool == "cloudformation" || variable)
    })
}

/// The values of `flag` (`--stack-name x`, `--stack-name=x`) in the deploy commands `of` says
/// are the service's (see [`deploy_commands_of`]).
pub(crate) fn deploy_flag_of(text: &str, of: &Of, flag: &str) -> Vec<String> {
    deploy_commands_of(text, of)
        .into_iter()
        .filter_map(|(_, w)| w.windows(2).find(|p| p[0] == flag).map(|p| p[1].clone()))
        .collect()
}

/// The file names a script's `package` commands (`sam package`, `aws cloudformation package`)
/// write from `template` (`--output-template-file`; `sam package` reads `template.yaml` when
/// it names none), and from no other template of the script.
pub(crate) fn packaged_from(commands: &[Vec<String>], template: &str) -> Vec<String> {
    // (the template read, the file written), by file name.
    let mut written: Vec<(String, String)> = Vec::new();
    for command in commands {
        let building = subcommand(command, "build") && !subcommand(command, "package");
        if !building && !subcommand(command, "package") {
            continue;
        }
        let value = |flags: &[&str]| {
            command
                .windows(2)
                .find(|p| flags.contains(&p[0].as_str()))
                .map(|p| p[1].rsplit('/').next().unwrap_or(&p[1]).to_string())
        };
        let input = value(&["--template-file", "--template", "-t"])
            .unwrap_or_else(|| "template.yaml".to_string());
        let output = if building {
            // `sam build` writes `template.yaml` into its build folder (`.aws-sam/build`).
            Some("template.yaml".to_string())
        } else {
            // Written to a file, or to standard output redirected into one
            // (`> packaged.yaml`, `>packaged.yaml`).
            let redirected = command
                .iter()
                .enumerate()
                .find_map(|(k, x)| match x.as_str() {
                    ">" | "1>" => command.get(k + 1).map(|f| f.to_string()),
                    x => x
                        .strip_prefix("1>")
                        .or_else(|| x.strip_prefix('>'))
                        .filter(|f| !f.is_empty() && !f.starts_with('&'))
                        .map(str::to_string),
                });
            value(&["--output-template-file", "--output-template"])
                .or_else(|| redirected.map(|f| f.rsplit('/').next().unwrap_or(&f).to_string()))
        };
        if let Some(output) = output.filter(|o| !o.contains('$')) {
            written.push((input, output));
        }
    }
    written
        .iter()
        .filter(|(input, output)| {
            input == template
                && !written
                    .iter()
                    .any(|(other, same)| same == output && other != template)
        })
        .map(|(_, output)| output.clone())
        .collect()
}

/// [`words`], a `--flag=value` word split in two (`--template-file=x.yaml`).
pub(crate) fn flag_words(words: Vec<String>) -> Vec<String> {
    words
        .into_iter()
        .flat_map(|w| match w.split_once('=') {
            Some((flag, value)) if flag.starts_with("--") => {
                vec![flag.to_string(), value.to_string()]
            }
            _ => vec![w],
        })
        .collect()
}

/// A line split into words as a shell would (quotes grouped and removed; an unclosed quote runs
/// to the end).
pub(crate) fn words(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quote: Option<char> = None;
    let mut any = false;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some('"'), '\\') => {
                if let Some(n) = chars.next() {
                    cur.push(n);
                }
            }
            (Some(_), c) => cur.push(c),
            (None, '"' | '\'') => {
                quote = Some(c);
                any = true;
            }
            (None, c) if c.is_whitespace() => {
                if any || !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                }
                any = false;
            }
            (None, '#') if cur.is_empty() && !any => break,
            (None, c) => cur.push(c),
        }
    }
    if any || !cur.is_empty() {
        out.push(cur);
    }
    out
}
