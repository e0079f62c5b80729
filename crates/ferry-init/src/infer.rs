//! What the services say of each other: dependencies and inputs.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use ferry_manifest::ServiceKind;
use serde_yaml_ng::Value;

use crate::Found;

/// What one service's files say.
#[derive(Default)]
struct Said {
    /// The framework's service name (Serverless).
    framework_name: Option<String>,
    /// Export names its outputs declare, as written.
    exports: Vec<String>,
    /// Names it imports (`Fn::ImportValue`), as written.
    imports: Vec<String>,
    /// Stacks it reads outputs of (`${cf:<stack>.<Output>}`), as written.
    cf_stacks: Vec<String>,
    /// Files it reads (`${file(…)}`), as written.
    files: Vec<String>,
    /// The same, the stage and region resolved as the framework resolves them (`${self:…}` of
    /// the configuration followed), `{stage}` and `{region}` standing for them: as written
    /// where another variable remains.
    file_patterns: Vec<String>,
    /// Names of the SSM parameters its stack writes (`AWS::SSM::Parameter` resources), as
    /// written.
    ssm_writes: Vec<String>,
    /// Names of the SSM parameters it reads, as written: `${ssm:…}`, `{{resolve:ssm:…}}`, the
    /// default of a parameter of an SSM parameter type.
    ssm_reads: Vec<String>,
    /// The reads among `ssm_reads` that need not be there (`${ssm:/a/b, 'off'}`, a fallback
    /// after them; `{{resolve:ssm:arn:…}}`, a parameter of another account named by ARN).
    ssm_optional: BTreeSet<String>,
    /// The macros its template's `Transform` names, but AWS's own (`AWS::Serverless-2016-10-31`,
    /// `AWS::Include`, …): a macro another stack defines, which must be there first.
    transforms: Vec<String>,
    /// The names of the macros its stack defines (`AWS::CloudFormation::Macro`).
    macros: Vec<String>,
    /// The reads among `ssm_reads` that are the default of a parameter of an SSM parameter type
    /// (name → the parameter): what every stage reads unless the parameter is given.
    ssm_defaults: BTreeMap<String, String>,
    region: Option<String>,
    /// See [`Found::stage_regions`].
    stage_regions: BTreeMap<String, String>,
    /// Why Ferry cannot read its stack name before the framework runs (Serverless), if so.
    unreadable_stack_name: Option<String>,
    /// A configuration program's literal `service` name, the base of its guessed stack name.
    literal_service: Option<String>,
    /// The template's parameters that have a default (name → default as text): an import
    /// built from one (`${ParentAlertStack}-TopicARN`, default `''`) is made only when the
    /// parameter is given.
    defaulted: BTreeMap<String, String>,
    /// Every parameter the template declares.
    declared: std::collections::BTreeSet<String>,
}

/// Fills in `depends_on`, `inputs`, `region` and (a guess, when it cannot be read) `stack_name`
/// of every service of `services`.
pub(crate) fn links(
    root: &Path,
    services: &mut [Found],
    packages: &BTreeMap<String, String>,
    notes: &mut Vec<String>,
) {
    let said: Vec<Said> = services.iter().map(|s| read(root, s, notes)).collect();
    // Who exports what, by skeleton (the literal text left when variables are taken out).
    let mut exporters: BTreeMap<String, Vec<(usize, String)>> = BTreeMap::new();
    for (i, s) in said.iter().enumerate() {
        for e in &s.exports {
            let resolved = resolve_self(e, s.framework_name.as_deref());
            if let Some(k) = skeleton(&resolved) {
                exporters.entry(k).or_default().push((i, e.clone()));
            }
        }
    }
    // Who writes which SSM parameter, by skeleton.
    let writers: Vec<(usize, String, String)> = said
        .iter()
        .enumerate()
        .flat_map(|(i, s)| {
            s.ssm_writes.iter().filter_map(move |w| {
                let k = skeleton(&resolve_self(w, s.framework_name.as_deref()))?;
                Some((i, w.clone(), k))
            })
        })
        .collect();
    // Serverless stacks by skeleton: `<service>-${sls:stage}` or provider.stackName.
    let stacks: BTreeMap<String, usize> = said
        .iter()
        .enumerate()
        .filter_map(|(i, s)| {
            let name = s.framework_name.as_deref()?;
            stack_skeleton(&format!("{name}-${{sls:stage}}")).map(|k| (k, i))
        })
        .collect();

    // The stack name each CloudFormation or SAM service's stack gets, in Ferry's syntax: the
    // `stack-name` its deploy scripts gave it, else `{service}-{stage}`, the default
    // `ferry.toml` keeps. A Serverless service's is its framework's (`provider.stackName`, a
    // program, variables): not written for it.
    let stack_of: Vec<Option<String>> = services
        .iter()
        .map(|f| {
            (f.kind != ServiceKind::Serverless).then(|| match &f.stack_name {
                Some((pattern, _)) => pattern.replace("{stage}", "${stage}"),
                None => format!("{}-${{stage}}", f.name),
            })
        })
        .collect();
    // Every service's stack by skeleton, for `${cf:…}` reads: the Serverless services' and the
    // others' (a Serverless service reading a SAM service's outputs is as common).
    let stacks: BTreeMap<String, usize> = stack_of
        .iter()
        .enumerate()
        .filter_map(|(i, s)| stack_skeleton(s.as_deref()?).map(|k| (k, i)))
        .chain(stacks)
        .collect();
    for i in 0..services.len() {
        let mut deps: BTreeMap<String, String> = BTreeMap::new();
        let mut inputs: BTreeMap<String, String> = BTreeMap::new();
        let s = &said[i];
        for import in &s.imports {
            let Some(k) = skeleton(&resolve_self(import, s.framework_name.as_deref())) else {
                notes.push(format!(
                    "{}: imports `{import}`, a name made only of variables: not matched to a service",
                    services[i].dir
                ));
                continue;
            };
            // Built from a parameter with a default (a parent stack's name, `''` unless
            // given): the import is made only when it is given, so no order is inferred.
            let through = import
                .strip_prefix("${")
                .and_then(|rest| rest.split_once('}'))
                .and_then(|(var, _)| Some((var, s.defaulted.get(var)?)));
            // Unless the exporter builds its export from a parameter of the same name and
            // value (`${Environment}-VpcId` on both sides, `Environment` defaulting to
            // `SampleApp` in both, and given no other value by what init writes to either):
            // the names then match as they are deployed, as `validate` finds them, and the
            // order is inferred below.
            let value_of = |x: usize, var: &str| -> Option<String> {
                match services[x].parameters.get(var) {
                    Some((given, _)) => Some(given.clone()),
                    None => said[x].defaulted.get(var).cloned(),
                }
            };
            let shared = |j: usize, export: &str, var: &str| {
                export.starts_with(&format!("${{{var}}}"))
                    && value_of(j, var).is_some()
                    && value_of(j, var) == value_of(i, var)
            };
            if let (Some((var, default)), Some([(j, export)])) =
                (through, exporters.get(&k).map(Vec::as_slice))
                && *j != i
                && !shared(*j, export, var)
            {
                let stack = stack_of[*j]
                    .as_deref()
                    .map_or_else(|| "its stack name".to_string(), |n| format!("\"{n}\""));
                notes.push(format!(
                    "{}: imports `{import}` through its template parameter {var} (default `{default}`), which matches {}'s export `{export}` only when {var} is given {}'s stack name: depends-on not inferred; if that is what {var} is for, give it that stack name in its [parameters] ({var} = {stack}) and add \"{}\" to its depends-on",
                    services[i].dir,
                    services[*j].name,
                    services[*j].name,
                    services[*j].name
                ));
                continue;
            }
            match exporters.get(&k).map(Vec::as_slice) {
                Some([(j, export)]) if *j != i => {
                    // `${ParentStack}-Out` of `${AWS::StackName}-Out`: the parameter, which has
                    // no default, takes the exporter's stack name; left empty, the import
                    // would name `-Out`.
                    if let Some((var, rest)) =
                        import.strip_prefix("${").and_then(|r| r.split_once('}'))
                        && s.declared.contains(var)
                        && export.strip_prefix("${AWS::StackName}") == Some(rest)
                        && let Some(stack) = &stack_of[*j]
                        && !services[i].parameters.contains_key(var)
                    {
                        let why = format!(
                            "the name of {}'s stack, whose export `{export}` {var} names in `{import}`",
                            services[*j].name
                        );
                        services[i]
                            .parameters
                            .insert(var.to_string(), (stack.clone(), why));
                    }
                    deps.entry(services[*j].name.clone()).or_insert(
                        format!("imports `{import}`, which {} exports as `{export}`", services[*j].name),
                    );
                }
                Some([_]) => {}
                Some(many) => notes.push(format!(
                    "{}: imports `{import}`, which several services export ({}): depends-on not inferred",
                    services[i].dir,
                    many.iter().map(|(j, _)| services[*j].name.as_str()).collect::<Vec<_>>().join(", ")
                )),
                None => notes.push(format!(
                    "{}: imports `{import}`, which no service of this repository exports: left out of depends-on",
                    services[i].dir
                )),
            }
        }
        // Read, and written by no service: each stage needs them before the first deploy.
        let mut unwritten: Vec<&str> = Vec::new();
        for read in &s.ssm_reads {
            let Some(k) = skeleton(&resolve_self(read, s.framework_name.as_deref())) else {
                continue;
            };
            let by: Vec<&(usize, String, String)> = writers
                .iter()
                .filter(|(_, _, w)| same_name(w, &k))
                .collect();
            match by.as_slice() {
                [(j, written, w)] if *j != i => {
                    deps.entry(services[*j].name.clone()).or_insert(format!(
                        "reads SSM parameter `{read}`, which {} writes as `{written}`",
                        services[*j].name
                    ));
                    // A default naming one stage's parameter (`userpool-id-dev`) of a writer
                    // that writes one per stage (`userpool-id-${Stage}`): left as it is, every
                    // stage would read dev's. Given as the stage's own.
                    if let Some(key) = s.ssm_defaults.get(read)
                        && !services[i].parameters.contains_key(key)
                        && let Some(own) = per_stage_name(read, w)
                    {
                        let why = format!(
                            "its default, `{read}`, is one stage's, and {} writes `{written}` per stage: each stage reads its own",
                            services[*j].name
                        );
                        services[i].parameters.insert(key.clone(), (own, why));
                    }
                }
                // One written outside the repository (by hand, by another tool), not AWS's
                // own (`/aws/service/…`), nor one the service reads only if it is there.
                [] => {
                    if !read.starts_with("/aws/")
                        && read != "arn"
                        && !s.ssm_optional.contains(read)
                        && !unwritten.contains(&read.as_str())
                    {
                        unwritten.push(read);
                    }
                }
                // Its own.
                [_] => {}
                many => notes.push(format!(
                    "{}: reads SSM parameter `{read}`, which several services write ({}): depends-on not inferred",
                    services[i].dir,
                    many.iter().map(|(j, _, _)| services[*j].name.as_str()).collect::<Vec<_>>().join(", ")
                )),
            }
        }
        if !unwritten.is_empty() {
            notes.push(format!(
                "{}: reads SSM parameter{} {}, which no service of this repository writes: each stage needs {} before the service's first deploy there, which stops at a missing one (`param set <stage> <name>`, or what writes {} outside the repository)",
                services[i].dir,
                if unwritten.len() == 1 { "" } else { "s" },
                unwritten
                    .iter()
                    .map(|n| format!("`{n}`"))
                    .collect::<Vec<_>>()
                    .join(", "),
                if unwritten.len() == 1 { "it" } else { "them" },
                if unwritten.len() == 1 { "it" } else { "them" },
            ));
        }
        // A macro its template's `Transform` names, which another service's stack defines.
        for macro_name in &s.transforms {
            let by: Vec<usize> = (0..said.len())
                .filter(|&j| j != i && said[j].macros.contains(macro_name))
                .collect();
            if let [j] = by.as_slice() {
                deps.entry(services[*j].name.clone()).or_insert(format!(
                    "its template's Transform runs macro `{macro_name}`, which {} defines",
                    services[*j].name
                ));
            }
        }
        for stack in &s.cf_stacks {
            match stack_skeleton(stack).and_then(|k| stacks.get(&k)) {
                Some(&j) if j != i => {
                    deps.entry(services[j].name.clone()).or_insert(format!(
                        "reads outputs of stack `{stack}` (${{cf:…}}), the stack of {}",
                        services[j].name
                    ));
                }
                Some(_) => {}
                None => notes.push(format!(
                    "{}: reads outputs of stack `{stack}` (${{cf:…}}), which is no service's stack of this repository: left out of depends-on",
                    services[i].dir
                )),
            }
        }
        let dir = services[i].dir.clone();
        let mut file_reads = Vec::new();
        for pattern in &s.file_patterns {
            file_reads.extend(ferry_manifest::normalize_relative(&format!(
                "{dir}/{pattern}"
            )));
        }
        inputs.extend(file_inputs(&dir, s, notes));
        let others: Vec<&str> = services
            .iter()
            .filter(|o| o.dir != dir)
            .map(|o| o.dir.as_str())
            .collect();
        for (found, said) in [
            crate::local_deps::node_inputs(root, &dir, &others, packages),
            crate::local_deps::cargo_inputs(root, &dir, &others),
            crate::local_deps::python_inputs(root, &dir, &others),
            crate::local_deps::go_inputs(root, &dir, &others),
            crate::local_deps::dotnet_inputs(root, &dir, &others),
            crate::local_deps::script_inputs(root, &dir, &others),
        ] {
            inputs.extend(found);
            notes.extend(said);
        }
        // An input must be able to match what the repository holds (validate refuses one that
        // cannot): a file read only where it exists (`${file(x), ''}`), a dependency folder
        // not there, are said and left out.
        inputs.retain(|glob, why| {
            let fixed = ferry_manifest::fixed_start(glob);
            let there = fixed.is_empty() || std::fs::symlink_metadata(root.join(&fixed)).is_ok();
            if !there {
                notes.push(format!(
                    "{dir}: {why}, but the repository holds no `{fixed}`: left out of inputs; add it when it exists"
                ));
            }
            there
        });
        let region = said[i].region.clone();
        let svc = &mut services[i];
        svc.depends_on = deps;
        svc.inputs.extend(inputs);
        svc.file_reads = file_reads;
        svc.region = region;
        svc.stage_regions = said[i].stage_regions.clone();
        let base = said[i].literal_service.as_deref().unwrap_or(&svc.name);
        if let Some(why) = said[i].unreadable_stack_name.clone() {
            svc.stack_name = Some((format!("{base}-{{stage}}"), why));
        }
    }
}

/// The literal name a configuration program gives its `service` (`service: 'orders'`,
/// `"service": "orders"`); `None` for any other value (a variable, a template literal with
/// `${…}`, an object). The `service` key is the configuration's own: of the keys so named, the
/// least indented (the first of those), never one nested deeper (`custom: { service: 'sqs' }`,
/// which a probe's program held beside a `service` built from a variable).
fn literal_service(text: &str) -> Option<String> {
    let line_start = |at: usize| text[..at].rfind('\n').map_or(0, |n| n + 1);
    let indent = |at: usize| {
        text[line_start(at)..at]
            .chars()
            .take_while(|c| c.is_whitespace())
            .count()
    };
    // A key of an object, not a type's member (`service: string;`), a function's parameter
    // (`(service: Service)`) or a comment (`// service: …`).
    let a_value = |at: usize, after: &str| {
        let line = text[line_start(at)..].trim_start();
        let rest = after.lines().next().unwrap_or_default().trim_end();
        !line.starts_with("//")
            && !line.starts_with('*')
            && !line.starts_with("/*")
            && !rest.ends_with(';')
            && !text[..at].trim_end().ends_with('(')
    };
    let (_, after) = crate::walk::after_words(text, "service")
        .filter_map(|(at, after)| Some((at, after.strip_prefix(':')?)))
        .filter(|(at, after)| a_value(*at, after))
        .map(|(at, after)| (indent(at), after))
        .min_by_key(|(depth, _)| *depth)?;
    let name = quoted(after)?;
    (!name.is_empty()
        && name.len() <= ferry_manifest::MAX_STACK_NAME
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'))
    .then(|| name.to_string())
}

/// The region a configuration program names as a literal (`region: 'eu-west-1'`, under
/// `provider`): the one AWS region name every `region` key with a quoted literal value gives;
/// `None` when none does, or they name two (a plugin's own setting beside the provider's).
fn literal_region(text: &str) -> Option<String> {
    let mut found: Option<&str> = None;
    for (_, after) in crate::walk::after_words(text, "region") {
        let Some(name) = after.strip_prefix(':').and_then(quoted) else {
            continue;
        };
        if !ferry_manifest::is_region_name(name) {
            continue;
        }
        match found {
            Some(other) if other != name => return None,
            _ => found = Some(name),
        }
    }
    found.map(String::from)
}

/// The text inside the quotes (`'`, `"` or a backquote) a key's value starts with (`'orders'`
/// of ` 'orders', …`); `None` when it starts with no quote.
fn quoted(value: &str) -> Option<&str> {
    let value = value.trim_start();
    let quote = value
        .chars()
        .next()
        .filter(|q| matches!(q, '\'' | '"' | '`'))?;
    value[1..].split(quote).next()
}

/// `${self:service}` (and the object form's name) replaced by the service's name.
fn resolve_self(s: &str, name: Option<&str>) -> String {
    match name {
        Some(n) => s
            .replace("${self:service}", n)
            .replace("${self:service.name}", n),
        None => s.to_string(),
    }
}

/// The literal text of `s` with every `${…}` (nested ones too) taken out, when enough of it is
/// left to tell names apart (three letters or digits).
fn skeleton(s: &str) -> Option<String> {
    skeleton_with(s, 3)
}

/// [`skeleton`] of a Serverless stack name, `<service>-${sls:stage}`, matched whole to a
/// `${cf:…}` stack: a service's own name, however short (`ui`), tells it apart.
fn stack_skeleton(s: &str) -> Option<String> {
    skeleton_with(s, 2)
}

fn skeleton_with(s: &str, letters: usize) -> Option<String> {
    ferry_manifest::serverless_name_pattern(s, letters)
}

/// The names of the macros `Fn::Transform` runs anywhere in `v` (YAML's `!Transform` is read as
/// it: `{"Fn::Transform": {"Name": …}}`).
fn fn_transforms(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Mapping(m) => {
            for (k, x) in m {
                if k.as_str() == Some("Fn::Transform")
                    && let Some(name) = x.get("Name").and_then(Value::as_str)
                {
                    out.push(name.to_string());
                }
                fn_transforms(x, out);
            }
        }
        Value::Sequence(items) => items.iter().for_each(|x| fn_transforms(x, out)),
        Value::Tagged(t) => {
            if t.tag == "!Transform"
                && let Some(name) = t.value.get("Name").and_then(Value::as_str)
            {
                out.push(name.to_string());
            }
            fn_transforms(&t.value, out);
        }
        _ => {}
    }
}

/// A Serverless configuration's `provider.region`: a literal, or one a `${self:…}` it names
/// holds; for `${opt:region, 'ap-southeast-2'}` its fallback, where a `serverless deploy`
/// without `--region` put the stacks (none without one: the stage's `--region` gives it); `Err`
/// with the value as written when it comes from where Ferry cannot read (a file, the
/// environment).
fn provider_region(doc: &Value) -> Result<Option<String>, String> {
    let Some(raw) = doc
        .get("provider")
        .and_then(|p| p.get("region"))
        .and_then(Value::as_str)
    else {
        return Ok(None);
    };
    let mut value = raw.trim().to_string();
    // A `${self:…}` followed a few times (a loop ends).
    for _ in 0..5 {
        let Some(inner) = value.strip_prefix("${").and_then(|v| v.strip_suffix('}')) else {
            // A literal; one with a variable inside it (`us-${self:custom.x}`) is not known.
            if value.contains("${") {
                break;
            }
            return Ok(Some(value));
        };
        if inner.contains("${") {
            break;
        }
        let mut alternatives = inner.split(',').map(str::trim);
        let first = alternatives.next().unwrap_or_default();
        // Its quoted fallback (`${self:custom.region, 'eu-west-1'}`).
        let quoted = |a: &str| {
            ["'", "\""]
                .iter()
                .find_map(|q| a.strip_prefix(q)?.strip_suffix(q))
                .map(|v| v.trim().to_string())
        };
        if first == "opt:region" {
            match alternatives.next_back() {
                None => return Ok(None),
                Some(a) if a.starts_with("self:") => {
                    value = format!("${{{a}}}");
                    continue;
                }
                Some(a) => match quoted(a) {
                    Some(v) => {
                        value = v;
                        continue;
                    }
                    None => break,
                },
            }
        }
        let Some(path) = first.strip_prefix("self:") else {
            break;
        };
        let found = path
            .split('.')
            .try_fold(doc, |at, key| at.get(key))
            .and_then(Value::as_str);
        match found
            .map(|v| v.trim().to_string())
            .or_else(|| alternatives.next_back().and_then(quoted))
        {
            Some(v) => value = v,
            None => break,
        }
    }
    Err(raw.to_string())
}

/// `name` (literal) with the stage's name that the writer's `skeleton` has a variable in place of
/// (`userpool-id-dev` of `userpool-id-*`) as `${stage}`, Ferry's: `None` when no stage's name
/// (`dev`, `staging`, `prod`, as `${stage}` gives them back: not `production`, not `Prod`)
/// stands there alone.
fn per_stage_name(name: &str, skeleton: &str) -> Option<String> {
    // Each run of letters and digits, by its start and end.
    let mut runs: Vec<(usize, usize)> = Vec::new();
    for (at, c) in name.char_indices() {
        let alnum = c.is_ascii_alphanumeric();
        match runs.last_mut() {
            Some((_, end)) if alnum && *end == at => *end = at + 1,
            _ if alnum => runs.push((at, at + 1)),
            _ => {}
        }
    }
    runs.into_iter().find_map(|(at, end)| {
        let (before, word, after) = (&name[..at], &name[at..end], &name[end..]);
        let stage = crate::STAGES.contains(&word);
        (stage && format!("{before}*{after}") == skeleton)
            .then(|| format!("{before}${{stage}}{after}"))
    })
}

/// Whether two SSM names' skeletons ([`skeleton`]: `*` where a variable was) can name the same
/// parameter: equal, or one with variables matches the other's literal text, each `*` standing
/// for one or more characters within a level (`/shop/*/table` names `/shop/dev/table`).
fn same_name(a: &str, b: &str) -> bool {
    fn matches(pattern: &[u8], text: &[u8]) -> bool {
        match pattern.split_first() {
            None => text.is_empty(),
            Some((b'*', rest)) => (1..=text.len())
                .take_while(|n| text[n - 1] != b'/')
                .any(|n| matches(rest, &text[n..])),
            Some((c, rest)) => text.first() == Some(c) && matches(rest, &text[1..]),
        }
    }
    a == b
        || match (a.contains('*'), b.contains('*')) {
            (true, false) => matches(a.as_bytes(), b.as_bytes()),
            (false, true) => matches(b.as_bytes(), a.as_bytes()),
            _ => false,
        }
}

/// The inputs a service's `${file(…)}` reads outside its folder `dir` give (input glob → why):
/// the file, or for a path with variables (e.g. the stage) its folder, or at the root the files
/// named as it starts (`.env.${sls:stage}` → `.env.*`). A path out of the repository is noted.
fn file_inputs(dir: &str, s: &Said, notes: &mut Vec<String>) -> BTreeMap<String, String> {
    file_reads_outside(dir, s, notes)
        .into_iter()
        .map(|(glob, why, _)| (glob, why))
        .collect()
}

/// [`file_inputs`], each with the files it reads as a pattern (repository-relative, each
/// variable a `*`: `cfg/*/extra.yml`).
fn file_reads_outside(
    dir: &str,
    s: &Said,
    notes: &mut Vec<String>,
) -> Vec<(String, String, String)> {
    let mut inputs = Vec::new();
    for file in &s.files {
        let Some(path) = ferry_manifest::normalize_relative(&format!("{dir}/{file}")) else {
            notes.push(format!(
                "{dir}: reads `{file}`, outside the repository: Ferry cannot see its changes"
            ));
            continue;
        };
        if path.starts_with(&format!("{dir}/")) {
            continue;
        }
        let glob = if path.contains("${") {
            let fixed = &path[..path.find("${").unwrap_or(path.len())];
            match fixed.rsplit_once('/') {
                Some((folder, _)) => format!("{folder}/**"),
                None => format!("{fixed}*"),
            }
        } else {
            path.clone()
        };
        let read = ferry_manifest::serverless_variables_replaced(&path, '*');
        inputs.push((glob, format!("reads `{file}` (${{file(…)}})"), read));
    }
    inputs
}

/// For `validate`: the inputs the `${file(…)}` reads of the Serverless Framework service in
/// `dir` (its configuration `file`) give outside its folder, as `init` writes them, each with
/// the pattern of the files it reads (see [`file_reads_outside`]).
pub(crate) fn serverless_file_inputs(
    root: &Path,
    dir: &str,
    file: &str,
) -> Vec<(String, String, String)> {
    let found = crate::Found {
        dir: dir.to_string(),
        name: String::new(),
        kind: ServiceKind::Serverless,
        file: file.to_string(),
        depends_on: BTreeMap::new(),
        inputs: BTreeMap::new(),
        parameters: BTreeMap::new(),
        region: None,
        stage_regions: BTreeMap::new(),
        stack_name: None,
        build: None,
        built_template: None,
        artifacts: BTreeMap::new(),
        file_reads: Vec::new(),
        secrets: BTreeSet::new(),
    };
    let mut notes = Vec::new();
    let said = read(root, &found, &mut notes);
    file_reads_outside(dir, &said, &mut notes)
}

/// Adds to `files` (a Serverless configuration's `${file(…)}` paths, as written, relative to
/// the service's folder `dir`) those that the files it includes include in turn, at any depth
/// (the framework reads each relative to the service's folder too): settings read through a
/// file of the service's own (`./local.yml` → `../../cfg/deep.yml`) are read all the same. Only
/// paths without variables, of regular files up to 1 MiB, are followed; 200 at most.
fn follow_included(dir: &Path, files: &mut Vec<String>) {
    let mut next = 0;
    while next < files.len() && files.len() < 200 {
        let file = files[next].clone();
        next += 1;
        if file.contains("${") {
            continue;
        }
        let path = dir.join(&file);
        let Some(text) = std::fs::metadata(&path)
            .ok()
            .filter(|m| m.is_file() && m.len() <= 1024 * 1024)
            .and_then(|_| std::fs::read_to_string(&path).ok())
        else {
            continue;
        };
        for source in ferry_manifest::serverless_variable_sources(&text) {
            let Some(included) = ferry_manifest::serverless_file_source(source) else {
                continue;
            };
            if !included.is_empty() && !files.iter().any(|f| f == included) {
                files.push(included.to_string());
            }
        }
    }
}

/// The framework's service name, exports, imports, `${cf:…}` stacks and `${file(…)}` paths of
/// one service's file.
/// A Serverless configuration's `custom` mappings keyed by stage (`profile: {dev: …, prod: …}`)
/// that it reads by the stage (`${self:custom.profile.${sls:stage}}`) and that lack a stage
/// `ferry.toml` is written with: that stage's compile fails on the variable.
fn stage_maps_missing(shown: &str, doc: &Value, text: &str) -> Vec<String> {
    let Some(Value::Mapping(custom)) = doc.get("custom") else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for (name, value) in custom {
        let (Some(name), Value::Mapping(map)) = (name.as_str(), value) else {
            continue;
        };
        let keys: Vec<&str> = map.keys().filter_map(Value::as_str).collect();
        let by_stage = keys.len() >= 2
            && keys
                .iter()
                .all(|k| crate::STAGE_WORDS.contains(&k.to_ascii_lowercase().as_str()));
        let read_by_stage = ["${sls:stage}", "${opt:stage", "${self:provider.stage}"]
            .iter()
            .any(|stage| text.contains(&format!("custom.{name}.{stage}")));
        let missing: Vec<&str> = crate::STAGES
            .iter()
            .copied()
            .filter(|st| !keys.contains(st))
            .collect();
        if by_stage && read_by_stage && !missing.is_empty() {
            out.push(format!(
                "{shown}: custom.{name} gives a value for stages {} only, read by the stage: its compile for stage {} fails; add {} to it, or leave {} out of ferry.toml",
                keys.join(", "),
                missing.join(", "),
                if missing.len() == 1 { "that stage" } else { "those stages" },
                if missing.len() == 1 { "it" } else { "them" },
            ));
        }
    }
    out
}

/// A Serverless configuration whose `params` (values per stage, Serverless Framework v3) name
/// stages `ferry.toml` is not written with (`master`, `val`, `production`): the repository
/// deploys to those, and a deploy of one of them would be a preview stage (unprotected, and
/// pruned as any preview). Said, with what to rename.
fn other_stage_names(shown: &str, doc: &Value) -> Option<String> {
    let Some(Value::Mapping(params)) = doc.get("params") else {
        return None;
    };
    let others: Vec<&str> = params
        .keys()
        .filter_map(Value::as_str)
        .filter(|k| *k != "default" && !crate::STAGES.contains(k))
        .collect();
    (!others.is_empty()).then(|| {
        format!(
            "{shown}: its params name the stage(s) {}, which ferry.toml is not written with ({}): rename the [stages.…] of ferry.toml to the names the repository deploys to (keep `protected = true` on production's), else a deploy of {} is a preview stage, unprotected and pruned as any preview",
            others.join(", "),
            crate::STAGES.join(", "),
            others.iter().map(|o| format!("`{o}`")).collect::<Vec<_>>().join(" or ")
        )
    })
}

fn read(root: &Path, s: &Found, notes: &mut Vec<String>) -> Said {
    let path = root.join(crate::template_path(&s.dir, &s.file));
    let shown = format!("{}/{}", s.dir, s.file);
    if crate::walk::is_program(&s.file) {
        // A literal `service: 'orders'` (and no `stackName` of its own) gives the framework's
        // stack name, `<service>-<stage>`, as a better guess than the folder's name.
        let text = std::fs::read_to_string(&path).ok();
        let literal = text
            .as_deref()
            .filter(|t| !t.contains("stackName"))
            .and_then(literal_service);
        let (why, read) = match &literal {
            Some(name) => (
                format!("a program, whose stack name Ferry cannot read; its `service` is `{name}`"),
                "its stack name was guessed from its literal `service`",
            ),
            None => (
                "a program, whose stack name Ferry cannot read".to_string(),
                "its stack name was not read",
            ),
        };
        notes.push(format!(
            "{shown} is a program: its links to other services were not read and {read}; check depends-on and stack-name in its service.toml"
        ));
        return Said {
            framework_name: literal.clone(),
            literal_service: literal,
            unreadable_stack_name: Some(why),
            region: text.as_deref().and_then(literal_region),
            ..Said::default()
        };
    }
    let Ok(text) = std::fs::read_to_string(&path) else {
        return Said::default();
    };
    // A byte-order mark, which the framework reads past (the YAML parser took it for a second
    // document).
    let text = text.strip_prefix('\u{feff}').unwrap_or(&text).to_string();
    let doc: Value = match ferry_manifest::yaml::from_str(&text) {
        Ok(d) => d,
        Err(e) => {
            notes.push(format!(
                "{shown}: not read as YAML or JSON ({e}); its links to other services were not inferred"
            ));
            // Nor its stack name: the guess keeps what init writes loadable.
            return Said {
                unreadable_stack_name: (s.kind == ServiceKind::Serverless)
                    .then(|| format!("not valid YAML: {e}")),
                ..Said::default()
            };
        }
    };
    let mut said = Said::default();
    if s.kind == ServiceKind::Serverless
        && let Err(why) = ferry_manifest::serverless_stack_name(&text)
    {
        // The loader's advice (set service.stack-name) is what init does with it.
        let why = why
            .split_once("; set service.stack-name")
            .map_or(why.as_str(), |(w, _)| w)
            .to_string();
        notes.push(format!(
            "{shown}: {why}; its service.toml names the stack `{}-{{stage}}`: check that it is the stack name the framework gives it",
            s.name
        ));
        said.unreadable_stack_name = Some(why);
    }
    if s.kind == ServiceKind::Serverless {
        said.framework_name = match doc.get("service") {
            Some(Value::String(n)) => Some(n.clone()),
            Some(Value::Mapping(m)) => m.get("name").and_then(Value::as_str).map(String::from),
            _ => None,
        };
        said.region = match provider_region(&doc) {
            Ok(Some(r))
                if doc["provider"]["region"]
                    .as_str()
                    .is_some_and(|raw| raw.contains("opt:region")) =>
            {
                notes.push(format!(
                    "{shown}: region `{r}` is the fallback of its `${{opt:region, …}}`, where a `serverless deploy` without --region puts the stacks; if its deploys pass --region, set the stages' region in ferry.toml to that one"
                ));
                Some(r)
            }
            Ok(r) => r,
            Err(raw) => {
                notes.push(format!(
                    "{shown}: names its region as `{raw}`, which Ferry cannot read before the framework runs: set the stages' region in ferry.toml to the one it deploys to"
                ));
                None
            }
        };
        notes.extend(stage_maps_missing(&shown, &doc, &text));
        notes.extend(other_stage_names(&shown, &doc));
    } else {
        (said.region, said.stage_regions) =
            crate::overrides::deploy_regions(root, &s.dir, &s.file, notes);
    }
    // A value that is no region (`localhost`, which the serverless-offline plugin takes) would
    // make the stages' region one that every command refuses.
    if let Some(r) = said.region.take_if(|r| !ferry_manifest::is_region_name(r)) {
        notes.push(format!(
            "{shown}: names region `{r}`, which is no AWS region name (a local emulator's?): not taken as the stages' region"
        ));
    }
    // A Serverless Framework service's `resources` may be a list of fragments, some read from
    // files, which the framework merges: each counts. Imports in a fragment read from a file
    // are collected here, as `walk` below sees only the configuration's own values.
    let fragments = match s.kind {
        ServiceKind::Serverless => {
            let dir = path.parent().unwrap_or(root);
            let (fragments, from_files) = serverless_resources(dir, doc.get("resources"));
            for f in &from_files {
                walk(f, &mut said);
            }
            fragments.into_iter().chain(from_files).collect()
        }
        _ => vec![doc.clone()],
    };
    if s.kind != ServiceKind::Serverless
        && let Some(Value::Mapping(params)) = doc.get("Parameters")
    {
        for (k, decl) in params {
            if let Some(k) = k.as_str() {
                said.declared.insert(k.to_string());
            }
            let (Some(k), Some(default)) = (k.as_str(), decl.get("Default")) else {
                continue;
            };
            let text = match default {
                Value::String(t) => t.clone(),
                Value::Number(n) => n.to_string(),
                Value::Bool(b) => b.to_string(),
                _ => String::new(),
            };
            said.defaulted.insert(k.to_string(), text);
        }
    }
    for outputs in fragments.iter().filter_map(|f| f.get("Outputs")) {
        let Value::Mapping(outputs) = outputs else {
            continue;
        };
        for (_, o) in outputs {
            if let Some(name) = o
                .get("Export")
                .and_then(|e| e.get("Name"))
                .and_then(text_of)
            {
                said.exports.push(name);
            }
        }
    }
    for resources in fragments.iter().filter_map(|f| f.get("Resources")) {
        let Value::Mapping(resources) = resources else {
            continue;
        };
        for (_, r) in resources {
            let name = || {
                r.get("Properties")
                    .and_then(|p| p.get("Name"))
                    .and_then(text_of)
            };
            match r.get("Type").and_then(Value::as_str) {
                Some("AWS::SSM::Parameter") => said.ssm_writes.extend(name()),
                Some("AWS::CloudFormation::Macro") => said.macros.extend(name()),
                _ => {}
            }
        }
    }
    let transforms = match doc.get("Transform") {
        Some(Value::String(t)) => vec![t.clone()],
        Some(Value::Sequence(ts)) => ts
            .iter()
            .filter_map(|t| t.as_str().map(String::from))
            .collect(),
        _ => Vec::new(),
    };
    // Also a macro run on part of the template (`Fn::Transform: {Name: DatetimeNow}`).
    let mut transforms = transforms;
    fn_transforms(&doc, &mut transforms);
    said.transforms = transforms
        .into_iter()
        .filter(|t| !t.starts_with("AWS::"))
        .collect();
    if let Some(Value::Mapping(parameters)) = doc.get("Parameters") {
        for (key, p) in parameters {
            let ssm_typed = p
                .get("Type")
                .and_then(Value::as_str)
                .is_some_and(|t| t.starts_with(ferry_manifest::SSM_PARAMETER_TYPE));
            if !ssm_typed {
                continue;
            }
            // The name its deploy steps pass (see `overrides`), else its default.
            let passed = key
                .as_str()
                .and_then(|k| s.parameters.get(k))
                .map(|(v, _)| v.as_str());
            let default = p.get("Default").and_then(Value::as_str);
            if let Some(name) = passed.or(default) {
                said.ssm_reads.push(name.to_string());
            }
            if let (None, Some(name), Some(key)) = (passed, default, key.as_str()) {
                said.ssm_defaults.insert(name.to_string(), key.to_string());
            }
        }
    }
    // A CloudFormation template's description, metadata and parameters' descriptions are read
    // by no stack operation (`ferry_manifest::read_by_stacks`): a `{{resolve:ssm:…}}` written
    // there is no read (awslabs' SDLF wrote one in a Description, and a dependency was inferred
    // from it).
    match &doc {
        Value::Mapping(m) if m.contains_key("Resources") => {
            let mut read = m.clone();
            read.remove("Description");
            read.remove("Metadata");
            if let Some(Value::Mapping(parameters)) = read.get_mut("Parameters") {
                for p in parameters.values_mut() {
                    if let Value::Mapping(p) = p {
                        p.remove("Description");
                    }
                }
            }
            walk(&Value::Mapping(read), &mut said);
        }
        _ => walk(&doc, &mut said),
    }
    if s.kind == ServiceKind::Serverless {
        follow_included(path.parent().unwrap_or(root), &mut said.files);
    }
    if !said.files.is_empty() {
        let config = ferry_manifest::ServerlessConfig::parse(&text);
        said.file_patterns = said
            .files
            .iter()
            .map(|f| config.pattern(f).unwrap_or_else(|| f.clone()))
            .collect();
    }
    said
}

/// The fragments of a Serverless Framework service's `resources` (each with `Resources`,
/// `Outputs`, …): the mapping itself, or each entry of a list, which the framework merges. An
/// entry `${file(path)}` (or `${file(path):key}`) is read from `dir`, the configuration's
/// folder; those come second. A file that cannot be read, or whose path holds a variable, is
/// left out: it is an input of the service already, and init reads no further.
fn serverless_resources(dir: &Path, resources: Option<&Value>) -> (Vec<Value>, Vec<Value>) {
    let entries: Vec<&Value> = match resources {
        Some(Value::Sequence(items)) => items.iter().collect(),
        Some(v) => vec![v],
        None => Vec::new(),
    };
    let (mut own, mut read) = (Vec::new(), Vec::new());
    for entry in entries {
        match entry {
            Value::Mapping(_) => own.push(entry.clone()),
            Value::String(text) => {
                let Some((file, key)) = crate::walk::file_include(text) else {
                    continue;
                };
                let doc = std::fs::read_to_string(dir.join(file))
                    .ok()
                    .and_then(|t| ferry_manifest::yaml::from_str::<Value>(&t).ok())
                    .and_then(|doc| crate::walk::included(doc, key));
                read.extend(doc.filter(Value::is_mapping));
            }
            _ => {}
        }
    }
    (own, read)
}

/// The string a scalar, `!Sub "…"`, `{"Fn::Sub": "…"}` or `{"Fn::Sub": ["…", {…}]}` holds.
fn text_of(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Tagged(t) if t.tag == "!Sub" => text_of(&t.value),
        Value::Sequence(items) => items.first().and_then(text_of),
        Value::Mapping(m) => m.get("Fn::Sub").and_then(text_of),
        _ => None,
    }
}

/// Collects imports, `${cf:…}` and `${file(…)}` from every value of `v`.
fn walk(v: &Value, said: &mut Said) {
    match v {
        Value::String(s) => scan_variables(s, said),
        Value::Tagged(t) => {
            if t.tag == "!ImportValue"
                && let Some(name) = text_of(&t.value)
            {
                said.imports.push(name);
            }
            walk(&t.value, said);
        }
        Value::Sequence(items) => items.iter().for_each(|i| walk(i, said)),
        Value::Mapping(m) => {
            for (k, val) in m {
                if k.as_str() == Some("Fn::ImportValue")
                    && let Some(name) = text_of(val)
                {
                    said.imports.push(name);
                }
                walk(val, said);
            }
        }
        _ => {}
    }
}

/// CloudFormation's dynamic references to SSM (`{{resolve:ssm:NAME}}`, `…:ssm-secure:…`, with
/// or without `:VERSION`) in one string: the names, up to a first `:` (an ARN gives `arn`,
/// which matches no writer's name).
fn dynamic_ssm_references(s: &str) -> impl Iterator<Item = &str> {
    ferry_manifest::dynamic_ssm_references(s)
        .into_iter()
        .map(|r| r.name.split(':').next().unwrap_or(r.name))
}

/// `${cf:<stack>.<Output>}` (also `${cf(<region>):…}`), `${ssm:<name>}`, `${file(<path>)…}` and
/// `{{resolve:ssm:<name>}}` in one string, fallbacks included (`${env:X, cf:<stack>.<Output>}`).
fn scan_variables(s: &str, said: &mut Said) {
    said.ssm_reads
        .extend(dynamic_ssm_references(s).map(String::from));
    let with_region = |v: &'static str, source: &str| -> Option<String> {
        let rest = source.strip_prefix(v)?;
        match rest.strip_prefix(':') {
            Some(r) => Some(r.to_string()),
            None => rest
                .strip_prefix('(')
                .and_then(|r| r.split_once("):").map(|(_, x)| x.to_string())),
        }
    };
    for source in ferry_manifest::serverless_variable_sources(s) {
        if let Some(cf) = with_region("cf", source) {
            if let Some((stack, _output)) = cf.trim().rsplit_once('.') {
                said.cf_stacks.push(stack.to_string());
            }
        } else if let Some(name) = with_region("ssm", source) {
            // `${ssm:/a/b~true}`: the old decryption suffix.
            let name = name.split('~').next().unwrap_or_default().trim();
            // A fallback after it (the sources are slices of `s`): the compile goes on
            // without it.
            let end = (source.as_ptr() as usize)
                .checked_sub(s.as_ptr() as usize)
                .map(|at| at + source.len());
            if end
                .and_then(|e| s.get(e..))
                .is_some_and(|rest| rest.trim_start().starts_with(','))
            {
                said.ssm_optional.insert(name.to_string());
            }
            said.ssm_reads.push(name.to_string());
        } else if let Some(f) = source.strip_prefix("file(")
            && let Some((path, _)) = f.split_once(')')
        {
            said.files
                .push(path.trim().trim_matches(['"', '\'']).to_string());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_program_s_literal_service_name() {
        assert_eq!(
            literal_service("export default { service: 'orders-api', provider: {} }").as_deref(),
            Some("orders-api")
        );
        assert_eq!(
            literal_service("module.exports = {\"service\": \"shop\"}").as_deref(),
            Some("shop")
        );
        assert_eq!(
            literal_service(
                "const c = {\n  custom: {\n    service: 'nested',\n  },\n  service: 'own',\n}"
            )
            .as_deref(),
            Some("own")
        );
        // A type's member, a function's parameter and a comment before it are no keys of the
        // configuration (a review's find: the first of them ended the search).
        assert_eq!(
            literal_service("// service: 'commented'\ntype Extra = {\n  service: string;\n};\nfunction f(service: Service) {}\nconst c: AWS = {\n  service: 'orders',\n};\n").as_deref(),
            Some("orders")
        );
        for none in [
            "const c = { service: `${projectName}-orchestrator` }",
            "const c = { service: name }",
            "const c = { service: { name: 'x' } }",
            "const services = ['a']",
            "const c = { service: 'a b' }",
            // The configuration's own `service` is built from a variable; the nested one is
            // another key's (a probe's find: it was taken for the service's name).
            "const c = {\n  service: 'layer-lib-${env:Stage, \"local\"}',\n  custom: {\n    service: 'api-gateway',\n  },\n}",
        ] {
            assert_eq!(literal_service(none), None, "{none}");
        }
    }

    // A probe's serverless.ts programs named `region: 'eu-west-1'`, and the stages were
    // written with us-east-1 in silence.
    #[test]
    fn a_program_s_literal_region() {
        let program = "const c = {\n  provider: {\n    name: 'aws',\n    region: 'eu-west-1',\n  },\n  custom: { dynamodb: { region: \"eu-west-1\" } },\n}";
        assert_eq!(literal_region(program).as_deref(), Some("eu-west-1"));
        for none in [
            "const c = { provider: { region: process.env.REGION } }",
            "const c = { provider: { region: 'localhost' } }",
            "const c = { provider: { region: 'eu-west-1' }, custom: { replica: { region: 'us-east-1' } } }",
            "const awsRegion = 'eu-west-1'",
        ] {
            assert_eq!(literal_region(none), None, "{none}");
        }
    }

    #[test]
    fn skeletons_take_variables_out() {
        assert_eq!(
            skeleton("orders-${sls:stage}-TableName").as_deref(),
            Some("orders-*-TableName")
        );
        assert_eq!(
            skeleton("orders-${opt:stage, ${self:provider.stage}}-x").as_deref(),
            Some("orders-*-x")
        );
        assert_eq!(skeleton("${sls:stage}-${x}"), None, "too little left");
    }

    #[test]
    fn a_provider_region_is_read_through_its_default_and_self() {
        let region = |yaml: &str| {
            let doc: super::Value = serde_yaml_ng::from_str(yaml).unwrap();
            super::provider_region(&doc)
        };
        assert_eq!(
            region("provider:\n  region: eu-west-1\n"),
            Ok(Some("eu-west-1".into()))
        );
        // Its fallback is where `serverless deploy` without --region put the stacks (before,
        // none was taken, and every stage was written with us-east-1: new stacks there).
        assert_eq!(
            region("provider:\n  region: ${opt:region, 'ap-south-1'}\n"),
            Ok(Some("ap-south-1".into()))
        );
        assert_eq!(
            region("custom:\n  r: eu-west-3\nprovider:\n  region: ${opt:region, self:custom.r}\n"),
            Ok(Some("eu-west-3".into()))
        );
        // Without one, the stage's --region gives it: no region named.
        assert_eq!(region("provider:\n  region: ${opt:region}\n"), Ok(None));
        assert_eq!(
            region("custom:\n  r: us-west-2\nprovider:\n  region: ${self:custom.r}\n"),
            Ok(Some("us-west-2".into()))
        );
        assert_eq!(region("provider:\n  name: aws\n"), Ok(None));
        assert_eq!(
            region("provider:\n  region: ${self:custom.nope, 'eu-north-1'}\n"),
            Ok(Some("eu-north-1".into()))
        );
        for raw in [
            "${self:custom.currentRegion}",
            "${env:AWS_REGION}",
            "us-${self:custom.loop}",
            "${file(./config.${sls:stage}.json):region}",
            "${self:custom.loop}",
        ] {
            let yaml =
                format!("custom:\n  loop: ${{self:custom.loop}}\nprovider:\n  region: \"{raw}\"\n");
            assert_eq!(region(&yaml), Err(raw.to_string()), "{raw}");
        }
    }

    #[test]
    fn a_stage_s_word_where_the_writer_has_a_variable_is_the_stage() {
        assert_eq!(
            super::per_stage_name("userpool-id-dev", "userpool-id-*").as_deref(),
            Some("userpool-id-${stage}")
        );
        assert_eq!(
            super::per_stage_name("/prod/users/table", "/*/users/table").as_deref(),
            Some("/${stage}/users/table")
        );
        // `${stage}` gives `prod` back, not these.
        assert_eq!(
            super::per_stage_name("/Prod/users/table", "/*/users/table"),
            None
        );
        assert_eq!(super::per_stage_name("id-production", "id-*"), None);
        // Not a stage's word, not alone, not where the variable is.
        assert_eq!(
            super::per_stage_name("userpool-id-blue", "userpool-id-*"),
            None
        );
        assert_eq!(
            super::per_stage_name("userpool-id-devx", "userpool-id-*"),
            None
        );
        assert_eq!(super::per_stage_name("/auth-dev/x", "/*/x"), None);
        assert_eq!(super::per_stage_name("/dev/x", "/dev/x"), None);
    }

    #[test]
    fn ssm_names_match_across_variables_within_one_level() {
        assert!(same_name("/shop/*/bus", "/shop/dev/bus"));
        assert!(same_name("/shop/dev/bus", "/shop/*/bus"));
        assert!(same_name("/shop/*/bus", "/shop/*/bus"));
        assert!(!same_name("/shop/*/bus", "/shop/dev/eu/bus"), "one level");
        assert!(!same_name("/shop/*/bus", "/shop//bus"), "not empty");
        assert!(!same_name("/shop/*/bus", "/shop/*-x/bus"), "two patterns");
        assert!(!same_name("/shop/dev/bus", "/shop/prod/bus"));
        let mut said = Said::default();
        scan_variables(
            "${ssm:/a/${sls:stage}/b, 'x'} ${ssm(eu-west-1):/c~true} {{resolve:ssm:/d:4}} {{resolve:ssm-secure:/e}} {{resolve:secretsmanager:f}}",
            &mut said,
        );
        assert_eq!(said.ssm_reads, ["/d", "/e", "/a/${sls:stage}/b", "/c"]);
    }

    #[test]
    fn cf_and_file_variables_are_found_in_any_string() {
        let mut said = Said::default();
        scan_variables(
            "${cf:orders-${sls:stage}.TableName} and ${cf(eu-west-1):users-dev.Arn} ${file(../shared/config.${sls:stage}.yml):db}",
            &mut said,
        );
        assert_eq!(said.cf_stacks, ["orders-${sls:stage}", "users-dev"]);
        // A fallback reads it too.
        scan_variables(
            "${env:ARN, cf:db-${self:custom.stage}.StreamArn}",
            &mut said,
        );
        assert_eq!(said.cf_stacks[2], "db-${self:custom.stage}");
        assert_eq!(said.files, ["../shared/config.${sls:stage}.yml"]);
    }
}
