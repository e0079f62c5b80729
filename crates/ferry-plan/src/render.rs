//! Plan renderings besides JSON: text for people, CodeBuild batch and GitHub matrix for CI.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use ferry_manifest::ServiceKind;

use crate::ci_files::identifier;
use crate::{Action, Plan, Reason};

const MAX_PATHS: usize = 3;

/// A path as the text output shows it: as it is, or, when it holds a control character (a
/// line break or tab in a file name could forge a line of the plan), a quote or a backslash,
/// quoted with those escaped as git quotes paths (`"we\"ird\tname.py"`).
pub fn shown_path(p: &str) -> std::borrow::Cow<'_, str> {
    // Control characters, and those that end a line or turn text around in some viewers
    // (U+2028, U+2029, bidirectional overrides and isolates, marks).
    let unsafe_char = |c: char| {
        c.is_control()
            || matches!(
                c,
                '\u{2028}' | '\u{2029}' | '\u{200e}' | '\u{200f}' | '\u{061c}'
            )
            || ('\u{202a}'..='\u{202e}').contains(&c)
            || ('\u{2066}'..='\u{2069}').contains(&c)
    };
    if !p.chars().any(|c| unsafe_char(c) || c == '"' || c == '\\') {
        return std::borrow::Cow::Borrowed(p);
    }
    let mut out = String::from("\"");
    for c in p.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if unsafe_char(c) => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    std::borrow::Cow::Owned(out)
}

fn paths(p: &[String]) -> String {
    let shown = p
        .iter()
        .take(MAX_PATHS)
        .map(|p| shown_path(p))
        .collect::<Vec<_>>()
        .join(", ");
    if p.len() > MAX_PATHS {
        format!("{shown} (+{} more)", p.len() - MAX_PATHS)
    } else {
        shown
    }
}

/// One line of text per reason.
pub fn reason_text(r: &Reason) -> String {
    match r {
        Reason::Changed { paths: p } => format!("changed: {}", paths(p)),
        Reason::GlobalInput { paths: p } => format!("global input changed: {}", paths(p)),
        Reason::LockedDependencies { lockfile, packages } => {
            format!("dependencies changed in {lockfile}: {}", paths(packages))
        }
        Reason::NotDeployed => {
            "not deployed yet (no deployment record; --since sets a base)".into()
        }
        Reason::Forced { by } => format!("forced by {by}"),
        Reason::BaseUnavailable { message, .. } => format!("treated as changed: {message}"),
        Reason::Removed {
            dir,
            renamed_to: None,
            ..
        } => format!("removed: {dir} is gone; its stack is left in place"),
        Reason::Removed {
            dir,
            renamed_to: Some(now),
            stack_kept: false,
        } => format!(
            "removed: the service in {dir} is named {now} now; the stack of its old name is left in place"
        ),
        Reason::Removed {
            dir,
            renamed_to: Some(now),
            stack_kept: true,
        } => format!(
            "renamed: the service in {dir} is named {now} now, and its stack, which its framework names, is still tagged for this name"
        ),
        Reason::Dependent { of } => format!("dependent of {} (--with-dependents)", of.join(", ")),
        Reason::Unchanged { since } => format!("unchanged since {since}"),
        Reason::Added { since } => {
            format!("added: no service of this name at {since}, its base")
        }
        Reason::StackMissing { stack } => {
            format!("stack-missing: {stack} is gone though its record says deployed")
        }
        Reason::StackFailed { stack, status } => format!("stack-failed: {stack} is {status}"),
        Reason::Drifted { stack, detail } => format!("drifted: {stack} {detail}"),
        Reason::StackFound { stack, detail } => format!("stack-found: {stack} exists {detail}"),
        Reason::NotReceived { of } => format!(
            "not-received: {} deployed since it last received {} outputs (a run that did not come to check it)",
            of.join(", "),
            if of.len() == 1 { "its" } else { "their" }
        ),
        Reason::StackMoved { from, to } if from.region == to.region => {
            format!("stack renamed: {} → {}", from.stack, to.stack)
        }
        Reason::StackMoved { from, to } => format!("stack moved: {from} → {to}"),
        Reason::DeployedDirty { commit } => format!(
            "deployed-dirty: its record is of a deploy from uncommitted changes on {}, which the stage may still run",
            commit.get(..7).unwrap_or(commit)
        ),
        Reason::StageSettingsChanged { keys } => {
            format!("stage settings it reads changed: {}", keys.join(", "))
        }
    }
}

/// The plan for people: waves of deploys, then the skips, each with its reasons.
pub fn text(plan: &Plan, explain: bool) -> String {
    let mut out = String::new();
    let stage = if plan.preview {
        format!("{} (preview, id {})", plan.stage, plan.stage_id)
    } else {
        plan.stage.clone()
    };
    let _ = writeln!(out, "plan for stage {stage} in {}", plan.region);
    // A ref as given (`--since`, `--head`) or as a record holds it (whoever may write the
    // stage's records wrote it): shown on one line, steering no terminal.
    let shown = |t: &str| ferry_ci::one_line(t).into_owned();
    let short = |c: &str| shown(c.get(..7).unwrap_or(c));
    let head = match (&plan.head.rev, &plan.head.commit) {
        (Some(rev), Some(c)) => format!("{} ({})", shown(rev), short(c)),
        (Some(rev), None) => shown(rev),
        (None, Some(c)) => format!("working tree (HEAD {})", short(c)),
        (None, None) => "working tree".into(),
    };
    let _ = writeln!(out, "  head: {head}");
    for b in &plan.bases {
        let base = match b.commit.as_deref() {
            Some(c) if c == b.base => short(c),
            Some(c) => format!("{} ({})", shown(&b.base), short(c)),
            // No base to name (no repository to read one from).
            None if b.base.is_empty() => "(none)".to_string(),
            None => shown(&b.base),
        };
        let status = b
            .unavailable
            .as_deref()
            .map(|u| format!(": unusable, {}", shown(u)))
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "  base: {base} for {}{status}",
            base_services(&b.services, plan.services.len())
        );
    }
    for note in &plan.notes {
        let _ = writeln!(out, "  note: {note}");
    }
    // The kind beside the name, when it is not plain CloudFormation.
    let label = |s: &crate::ServicePlan| match s.kind {
        Some(k) if k != ServiceKind::Cloudformation => format!("{} ({k})", s.name),
        _ => s.name.clone(),
    };
    let width = plan
        .services
        .iter()
        .map(|s| label(s).len())
        .max()
        .unwrap_or(0);
    let line = |out: &mut String, name: &str| {
        let s = plan.service(name).expect("planned service");
        let action = match s.action {
            Action::Deploy => "deploy",
            Action::Skip => "skip",
        };
        let mut reasons: Vec<String> = s.reasons.iter().map(reason_text).collect();
        if let Some(why) = &s.checked {
            reasons.push(format!(
                "checked against its record, redeployed if what it receives changed ({why})"
            ));
        }
        let _ = writeln!(
            out,
            "    {action:<6}  {:<width$}  {}",
            label(s),
            reasons.join("; ")
        );
    };
    for (i, wave) in plan.waves.iter().enumerate() {
        let _ = writeln!(out, "  wave {}", i + 1);
        for name in wave {
            line(&mut out, name);
        }
    }
    let skips: Vec<&str> = plan
        .services
        .iter()
        .filter(|s| s.action == Action::Skip)
        .map(|s| s.name.as_str())
        .collect();
    if !skips.is_empty() {
        let _ = writeln!(out, "  skipped");
        for name in &skips {
            line(&mut out, name);
        }
    }
    if explain {
        for b in &plan.bases {
            let Some(paths) = &b.paths else { continue };
            let since = b.commit.as_deref().map_or(b.base.as_str(), |c| &c[..7]);
            let _ = writeln!(out, "  changed paths since {since} ({}):", paths.len());
            for p in paths {
                let mut owners = p.services.clone();
                if p.lock_file {
                    let owners = if owners.is_empty() {
                        "no service's packages changed".to_string()
                    } else {
                        owners.join(", ")
                    };
                    let _ = writeln!(
                        out,
                        "    {} -> {owners} (read as a lock file)",
                        shown_path(&p.path)
                    );
                    continue;
                }
                if p.global {
                    owners.push("every service (global input)".into());
                }
                let owners = if owners.is_empty() {
                    "no service".to_string()
                } else {
                    owners.join(", ")
                };
                let _ = writeln!(out, "    {} -> {owners}", shown_path(&p.path));
            }
        }
    }
    let deploys = plan.order.len();
    let _ = writeln!(
        out,
        "{deploys} to deploy in {} wave(s), {} to skip{}",
        plan.waves.len(),
        skips.len(),
        if plan.plan_only() {
            " (pull request: nothing will be deployed)"
        } else {
            ""
        }
    );
    out
}

/// The services a batch of `plan` runs a node for, in waves (each service after every
/// dependency it has among them): those the plan deploys, and every service of `graph` (the
/// workspace's) depending on one of them, however indirectly, also outside a `--service`
/// selection, as a deploy on one machine checks them. A dependent the plan skips may still
/// receive new outputs, which only its node can check; a node whose dependency has no node of
/// its own and has not received what changed is refused, so a graph without it could never
/// finish. An up-to-date node costs a fraction of a second.
fn batch_waves<'p>(plan: &'p Plan, graph: &'p ferry_graph::DepGraph) -> Vec<Vec<&'p str>> {
    let nodes = graph.with_dependents(plan.order.iter().map(String::as_str));
    let mut wave_of: BTreeMap<&str, usize> = BTreeMap::new();
    let mut waves: Vec<Vec<&str>> = Vec::new();
    // The graph's order: every dependency before its dependents.
    let names: Vec<&str> = graph.nodes().collect();
    for name in graph.topo_positions().into_iter().map(|i| names[i]) {
        if !nodes.contains(name) {
            continue;
        }
        // (The plan's own services have these dependencies too: it takes them from `graph`.)
        let wave = graph
            .dependencies(name)
            .iter()
            .filter_map(|d| wave_of.get(d).copied())
            .max()
            .map_or(0, |w| w + 1);
        wave_of.insert(name, wave);
        if waves.len() <= wave {
            waves.resize_with(wave + 1, Vec::new);
        }
        waves[wave].push(name);
    }
    for w in &mut waves {
        w.sort_unstable();
    }
    waves
}

/// A buildspec `batch:` section with one build per service a batch of the plan runs a node for
/// (what it deploys and their dependents, see `batch_waves`), `depend-on` following the graph
/// (edges between those services, also through services that skip: the others are up to date).
/// `batch files` makes the build-graph of every service instead. `program` is the command that
/// made it (`cargo xtask`, `ferry`), for its first comment line.
pub fn codebuild_batch(plan: &Plan, graph: &ferry_graph::DepGraph, program: &str) -> String {
    let mut out = String::new();
    // The stage as written, but on this one comment line whatever it holds (a line break
    // would end the comment and start YAML of its own).
    let _ = writeln!(
        out,
        "# Generated by `{} plan {} --format codebuild-batch`",
        program.escape_debug(),
        plan.stage.escape_debug()
    );
    let _ = writeln!(out, "batch:");
    let _ = writeln!(out, "  fast-fail: false");
    if plan.order.is_empty() || plan.plan_only() {
        let _ = writeln!(out, "  build-graph: []");
        return out;
    }
    let _ = writeln!(out, "  build-graph:");
    let nodes: Vec<&str> = batch_waves(plan, graph).into_iter().flatten().collect();
    for name in &nodes {
        let _ = writeln!(out, "    - identifier: {}", identifier(name));
        // From the workspace's graph, which the plan's dependencies come from: a dependent
        // outside a `--service` selection is none of the plan's services, and its node must
        // wait all the same.
        let deps: Vec<String> = graph
            .with_dependencies([*name])
            .into_iter()
            .filter(|d| d != name && nodes.contains(&d.as_str()))
            .collect();
        if !deps.is_empty() {
            let _ = writeln!(out, "      depend-on:");
            for d in deps {
                let _ = writeln!(out, "        - {}", identifier(&d));
            }
        }
        let _ = writeln!(out, "      env:");
        let _ = writeln!(out, "        variables:");
        let _ = writeln!(out, "          SERVICE: {}", yaml_scalar(name));
        let _ = writeln!(out, "          STAGE: {}", yaml_scalar(&plan.stage));
    }
    out
}

fn yaml_scalar(s: &str) -> String {
    // Always quoted: `on`, `no`, `null` are names too.
    serde_json::to_string(s).expect("a string serialises")
}

/// JSON waves for a GitHub Actions job matrix: one job per wave, each wave a matrix
/// (`strategy.matrix: ${{ fromJSON(needs.plan.outputs.plan).waves[0] }}`).
pub fn github_matrix(plan: &Plan, graph: &ferry_graph::DepGraph) -> String {
    // Structs, not `json!` maps: the field order must not depend on serde_json's features.
    #[derive(serde::Serialize)]
    struct Matrix<'p> {
        stage: &'p str,
        count: usize,
        waves: Vec<Wave<'p>>,
    }
    #[derive(serde::Serialize)]
    struct Wave<'p> {
        include: Vec<Job<'p>>,
    }
    #[derive(serde::Serialize)]
    struct Job<'p> {
        service: &'p str,
        stage: &'p str,
    }
    let nodes = if plan.plan_only() {
        Vec::new()
    } else {
        batch_waves(plan, graph)
    };
    let count = nodes.iter().map(Vec::len).sum();
    let waves = nodes
        .into_iter()
        .map(|w| Wave {
            include: w
                .into_iter()
                .map(|s| Job {
                    service: s,
                    stage: &plan.stage,
                })
                .collect(),
        })
        .collect();
    let m = Matrix {
        stage: &plan.stage,
        count,
        waves,
    };
    serde_json::to_string(&m).expect("a matrix serialises")
}

/// serde_json's pretty layout (two spaces per level), with each line break and its indentation
/// written in one piece: a plan of a thousand services is some fifteen thousand lines, and the
/// stock formatter writes the indentation one level at a time. The output is byte for byte
/// `serde_json::to_writer_pretty`'s.
#[derive(Default)]
pub(crate) struct Pretty {
    depth: usize,
    has_value: bool,
}

/// `,` then a line break and room for 64 levels of indentation.
const BREAK: &[u8; 130] = b",\n                                                                                                                                ";

impl Pretty {
    /// A line break (after a `,` unless `first`) and the indentation of the current depth.
    #[inline]
    fn line<W: ?Sized + std::io::Write>(&self, w: &mut W, first: bool) -> std::io::Result<()> {
        let start = usize::from(first);
        let wanted = 2 + 2 * self.depth;
        if wanted <= BREAK.len() {
            return w.write_all(&BREAK[start..wanted]);
        }
        w.write_all(&BREAK[start..2])?;
        for _ in 0..self.depth {
            w.write_all(b"  ")?;
        }
        Ok(())
    }

    fn open<W: ?Sized + std::io::Write>(
        &mut self,
        w: &mut W,
        bracket: &[u8],
    ) -> std::io::Result<()> {
        self.depth += 1;
        self.has_value = false;
        w.write_all(bracket)
    }

    fn close<W: ?Sized + std::io::Write>(
        &mut self,
        w: &mut W,
        bracket: &[u8],
    ) -> std::io::Result<()> {
        self.depth -= 1;
        if self.has_value {
            self.line(w, true)?;
        }
        w.write_all(bracket)
    }
}

impl serde_json::ser::Formatter for Pretty {
    fn begin_array<W: ?Sized + std::io::Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        self.open(w, b"[")
    }

    fn end_array<W: ?Sized + std::io::Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        self.close(w, b"]")
    }

    fn begin_array_value<W: ?Sized + std::io::Write>(
        &mut self,
        w: &mut W,
        first: bool,
    ) -> std::io::Result<()> {
        self.line(w, first)
    }

    fn end_array_value<W: ?Sized + std::io::Write>(&mut self, _w: &mut W) -> std::io::Result<()> {
        self.has_value = true;
        Ok(())
    }

    fn begin_object<W: ?Sized + std::io::Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        self.open(w, b"{")
    }

    fn end_object<W: ?Sized + std::io::Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        self.close(w, b"}")
    }

    fn begin_object_key<W: ?Sized + std::io::Write>(
        &mut self,
        w: &mut W,
        first: bool,
    ) -> std::io::Result<()> {
        self.line(w, first)
    }

    fn begin_object_value<W: ?Sized + std::io::Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        w.write_all(b": ")
    }

    fn end_object_value<W: ?Sized + std::io::Write>(&mut self, _w: &mut W) -> std::io::Result<()> {
        self.has_value = true;
        Ok(())
    }
}

/// How many services a `base:` line names before it counts the rest.
const BASE_NAMES_SHOWN: usize = 8;

/// The services of one base for its line: their names, a few and a count past
/// [`BASE_NAMES_SHOWN`], or "all N services" when the base is every service's of the plan
/// (`total`). A plan of hundreds of services sharing one base printed every name on one line.
fn base_services(services: &[String], total: usize) -> String {
    if services.len() <= BASE_NAMES_SHOWN {
        services.join(", ")
    } else if services.len() == total {
        format!("all {total} services")
    } else {
        format!(
            "{} and {} more",
            services[..BASE_NAMES_SHOWN].join(", "),
            services.len() - BASE_NAMES_SHOWN
        )
    }
}

#[cfg(test)]
mod tests {
    use super::{Pretty, base_services, shown_path};

    #[test]
    fn a_base_line_names_a_few_services_and_counts_the_rest() {
        let names = |n: usize| (0..n).map(|i| format!("s{i}")).collect::<Vec<_>>();
        assert_eq!(base_services(&names(3), 10), "s0, s1, s2");
        assert_eq!(
            base_services(&names(8), 8),
            "s0, s1, s2, s3, s4, s5, s6, s7"
        );
        assert_eq!(base_services(&names(92), 92), "all 92 services");
        assert_eq!(
            base_services(&names(12), 92),
            "s0, s1, s2, s3, s4, s5, s6, s7 and 4 more"
        );
    }
    use serde::Serialize;

    #[test]
    fn a_path_that_could_forge_a_line_is_quoted() {
        assert_eq!(shown_path("services/a/app.py"), "services/a/app.py");
        assert_eq!(shown_path("dir/café ü.py"), "dir/café ü.py");
        assert_eq!(
            shown_path("we\"ird\tna\nme\\x.py"),
            "\"we\\\"ird\\tna\\nme\\\\x.py\""
        );
        assert_eq!(shown_path("a\u{1b}[31mred"), "\"a\\u{1b}[31mred\"");
        assert!(!shown_path("x\ny\rz").contains(['\n', '\r']));
        assert_eq!(shown_path("a\u{202e}b"), "\"a\\u{202e}b\"");
        assert_eq!(shown_path("a\u{2028}b"), "\"a\\u{2028}b\"");
    }

    fn pretty(v: &serde_json::Value) -> String {
        let mut out = Vec::new();
        v.serialize(&mut serde_json::Serializer::with_formatter(
            &mut out,
            Pretty::default(),
        ))
        .unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn pretty_writes_what_serde_json_writes() {
        let mut deep = serde_json::json!({"leaf": [1, {"x": []}, {}]});
        for depth in 0..70 {
            deep = serde_json::json!({ format!("level {depth}"): [deep, "s\"q", null, true, 1.5] });
        }
        for v in [
            serde_json::json!({}),
            serde_json::json!([]),
            serde_json::json!({"a": {}, "b": [], "c": [[]], "d": [{}]}),
            serde_json::json!({"services": [{"name": "api", "depends_on": ["db"]}]}),
            deep,
        ] {
            assert_eq!(pretty(&v), serde_json::to_string_pretty(&v).unwrap());
        }
    }
}
