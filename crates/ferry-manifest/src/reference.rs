//! The `${…}` reference syntax of parameter values.
//!
//! ```text
//! ${stage} ${region} ${project} ${service}      values of the run
//! ${output:SERVICE.KEY}                         a stack output of another service, same stage
//! ${output:STAGE:SERVICE.KEY}                   … of that stage (ordered as a dependency: when
//!                                               STAGE deploys, it is a same-stage read)
//! ${output:${var:NAME}:SERVICE.KEY}             … of the stage a variable of this stage names
//! ${var:NAME}                                   a variable of the stage (`variables` in ferry.toml)
//! ${ssm:NAME}                                   an SSM parameter; NAME may contain ${stage} etc.;
//!                                               relative names are under the stage's parameters-path
//! $${                                           a literal `${`
//! ```

use std::fmt;

/// One `${…}` reference.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Reference {
    Stage,
    Region,
    Project,
    Service,
    Output {
        stage: Option<OutputStage>,
        service: String,
        key: String,
    },
    Ssm {
        name: Template,
    },
    /// A variable of the stage (`[stages.<name>] variables`).
    Var(String),
}

/// The stage an output reference reads: named, or named by a variable of the stage deploying
/// (so that every preview stage can read one shared stage without naming it in each service).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum OutputStage {
    Named(String),
    Var(String),
}

impl fmt::Display for OutputStage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OutputStage::Named(s) => f.write_str(s),
            OutputStage::Var(v) => write!(f, "${{var:{v}}}"),
        }
    }
}

/// A piece of a parameter value.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Segment {
    Literal(String),
    Ref(Reference),
}

/// A string with references, parsed. `Display` gives back the source form.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Template {
    pub segments: Vec<Segment>,
}

/// Why a reference could not be parsed; the message says how to write it instead.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ReferenceError {
    #[error(
        "unterminated reference `{0}`: every `${{` needs a closing `}}` (write `$${{` for a literal `${{`)"
    )]
    Unterminated(String),
    #[error("empty reference `${{}}`; {HELP}")]
    Empty,
    #[error("unknown reference `${{{0}}}`{1}; {HELP}")]
    Unknown(String, String),
    #[error(
        "`${{{0}}}` needs SERVICE.KEY or STAGE:SERVICE.KEY, e.g. `${{output:database.TableName}}`"
    )]
    BadOutput(String),
    #[error(
        "`${{{0}}}` cannot contain another reference; output references name a service and key literally"
    )]
    NestedInOutput(String),
    #[error(
        "`${{{0}}}` needs a variable name (letters, digits, '-' and '_'), e.g. `${{var:data-stage}}`, defined under [stages.<name>] variables in ferry.toml"
    )]
    BadVar(String),
    #[error("`${{ssm:}}` needs a parameter name, e.g. `${{ssm:/shop/${{stage}}/admin-email}}`")]
    EmptySsm,
    #[error("`${{{0}}}` may only contain ${{stage}}, ${{region}}, ${{project}} or ${{service}}")]
    NestedInSsm(String),
}

const HELP: &str = "use ${stage}, ${region}, ${project}, ${service}, ${output:SERVICE.KEY}, ${ssm:NAME} or ${var:NAME}";
const KINDS: [&str; 7] = [
    "stage", "region", "project", "service", "output", "ssm", "var",
];

/// A variable name: letters, digits, '-' and '_'.
fn is_word(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

impl Template {
    pub fn parse(input: &str) -> Result<Template, ReferenceError> {
        // Most values are one segment; a workspace keeps one template per parameter of every
        // service, so room is given exactly (a vector grown by `push` keeps room for four).
        let mut segments = Vec::with_capacity(1);
        let mut literal = String::new();
        let mut rest = input;
        while let Some(pos) = rest.find('$') {
            literal.push_str(&rest[..pos]);
            let after = &rest[pos..];
            if let Some(tail) = after.strip_prefix("$${") {
                literal.push_str("${");
                rest = tail;
            } else if let Some(tail) = after.strip_prefix("${") {
                let end = matching_brace(tail)
                    .ok_or_else(|| ReferenceError::Unterminated(after.to_string()))?;
                if !literal.is_empty() {
                    segments.push(Segment::Literal(std::mem::take(&mut literal)));
                }
                segments.push(Segment::Ref(parse_reference(&tail[..end])?));
                rest = &tail[end + 1..];
            } else {
                literal.push('$');
                rest = &after[1..];
            }
        }
        literal.push_str(rest);
        if !literal.is_empty() {
            segments.push(Segment::Literal(literal));
        }
        segments.shrink_to_fit();
        Ok(Template { segments })
    }

    /// The references at the top level (not those nested in an SSM name).
    pub fn references(&self) -> impl Iterator<Item = &Reference> {
        self.segments.iter().filter_map(|s| match s {
            Segment::Ref(r) => Some(r),
            Segment::Literal(_) => None,
        })
    }

    /// Services whose outputs this value needs, of whatever stage: the dependency graph is
    /// one for every stage, and a stage named in a reference (or by a variable) is the
    /// deploying stage itself when that stage deploys, where the service read must go first.
    /// In any other stage the edge only orders two services that need not wait for each other.
    pub fn output_services(&self) -> impl Iterator<Item = &str> {
        self.references().filter_map(|r| match r {
            Reference::Output { service, .. } => Some(service.as_str()),
            _ => None,
        })
    }

    /// Renders the value, asking `resolve` for each reference.
    pub fn render<E>(
        &self,
        mut resolve: impl FnMut(&Reference) -> Result<String, E>,
    ) -> Result<String, E> {
        let mut out = String::new();
        for s in &self.segments {
            match s {
                Segment::Literal(l) => out.push_str(l),
                Segment::Ref(r) => out.push_str(&resolve(r)?),
            }
        }
        Ok(out)
    }
}

/// Index of the `}` closing a reference whose `${` was just consumed, counting nested `${`.
fn matching_brace(s: &str) -> Option<usize> {
    let bytes = s.as_bytes();
    let mut depth = 0usize;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'$' if bytes.get(i + 1) == Some(&b'{') => {
                depth += 1;
                i += 1;
            }
            b'}' if depth == 0 => return Some(i),
            b'}' => depth -= 1,
            _ => {}
        }
        i += 1;
    }
    None
}

fn parse_reference(body: &str) -> Result<Reference, ReferenceError> {
    let (kind, arg) = match body.split_once(':') {
        Some((k, a)) => (k.trim(), Some(a)),
        None => (body.trim(), None),
    };
    match (kind, arg) {
        ("", None) => Err(ReferenceError::Empty),
        ("stage", None) => Ok(Reference::Stage),
        ("region", None) => Ok(Reference::Region),
        ("project", None) => Ok(Reference::Project),
        ("service", None) => Ok(Reference::Service),
        ("output", Some(arg)) => parse_output(body, arg),
        ("var", Some(name)) if is_word(name.trim()) => Ok(Reference::Var(name.trim().to_string())),
        ("var", _) => Err(ReferenceError::BadVar(body.to_string())),
        ("ssm", Some(arg)) => {
            if arg.trim().is_empty() {
                return Err(ReferenceError::EmptySsm);
            }
            let name = Template::parse(arg)?;
            if name
                .references()
                .any(|r| matches!(r, Reference::Output { .. } | Reference::Ssm { .. }))
            {
                return Err(ReferenceError::NestedInSsm(body.to_string()));
            }
            Ok(Reference::Ssm { name })
        }
        ("output", None) => Err(ReferenceError::BadOutput(body.to_string())),
        ("ssm", None) => Err(ReferenceError::EmptySsm),
        (kind, _) => Err(ReferenceError::Unknown(
            body.to_string(),
            crate::diag::did_you_mean(kind, KINDS),
        )),
    }
}

fn parse_output(body: &str, arg: &str) -> Result<Reference, ReferenceError> {
    // The stage may be a variable of the stage: `${output:${var:NAME}:SERVICE.KEY}`.
    let (var, arg) = match arg.trim_start().strip_prefix("${var:") {
        Some(rest) => {
            let (name, after) = rest
                .split_once('}')
                .ok_or_else(|| ReferenceError::BadOutput(body.to_string()))?;
            let after = after
                .strip_prefix(':')
                .ok_or_else(|| ReferenceError::BadOutput(body.to_string()))?;
            if !is_word(name.trim()) {
                return Err(ReferenceError::BadVar(format!("var:{name}")));
            }
            (Some(name.trim().to_string()), after)
        }
        None => (None, arg),
    };
    if arg.contains("${") {
        return Err(ReferenceError::NestedInOutput(body.to_string()));
    }
    let (stage, rest) = match (&var, arg.split_once(':')) {
        (Some(_), _) => (None, arg),
        (None, Some((s, r))) => (Some(s.trim()), r),
        (None, None) => (None, arg),
    };
    let bad = || ReferenceError::BadOutput(body.to_string());
    let (service, key) = rest.split_once('.').ok_or_else(bad)?;
    let (service, key) = (service.trim(), key.trim());
    let word = |s: &str| {
        !s.is_empty()
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    };
    if !word(service) || !word(key) || stage.is_some_and(|s| !word(s) && s != "*") {
        return Err(bad());
    }
    Ok(Reference::Output {
        stage: match var {
            Some(v) => Some(OutputStage::Var(v)),
            None => stage.map(|s| OutputStage::Named(s.to_string())),
        },
        service: service.to_string(),
        key: key.to_string(),
    })
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reference::Stage => f.write_str("${stage}"),
            Reference::Region => f.write_str("${region}"),
            Reference::Project => f.write_str("${project}"),
            Reference::Service => f.write_str("${service}"),
            Reference::Output {
                stage: Some(st),
                service,
                key,
            } => write!(f, "${{output:{st}:{service}.{key}}}"),
            Reference::Output {
                stage: None,
                service,
                key,
            } => write!(f, "${{output:{service}.{key}}}"),
            Reference::Ssm { name } => write!(f, "${{ssm:{name}}}"),
            Reference::Var(v) => write!(f, "${{var:{v}}}"),
        }
    }
}

impl fmt::Display for Template {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for s in &self.segments {
            match s {
                Segment::Literal(l) => f.write_str(&l.replace("${", "$${"))?,
                Segment::Ref(r) => write!(f, "{r}")?,
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lit(s: &str) -> Segment {
        Segment::Literal(s.into())
    }

    #[test]
    fn parses_every_kind_and_round_trips() {
        let cases = [
            "${stage}",
            "table-${project}-${stage}",
            "${output:database.TableName}",
            "${output:prod:api.ApiUrl}",
            "${output:${var:shared}:database.TableName}",
            "prefix-${var:data-stage}",
            "${ssm:/shop/${stage}/admin-email}",
            "cost $5 and $${literal}",
            "",
        ];
        for c in cases {
            let t = Template::parse(c).unwrap_or_else(|e| panic!("{c}: {e}"));
            assert_eq!(t.to_string(), c, "round trip");
        }
        let t = Template::parse("x-${ssm:/a/${stage}/b}").unwrap();
        assert_eq!(
            t.segments,
            vec![
                lit("x-"),
                Segment::Ref(Reference::Ssm {
                    name: Template {
                        segments: vec![lit("/a/"), Segment::Ref(Reference::Stage), lit("/b")]
                    }
                })
            ]
        );
        assert_eq!(
            Template::parse("$${x}").unwrap().segments,
            vec![lit("${x}")]
        );
    }

    #[test]
    fn a_stage_variable_names_the_stage_of_an_output() {
        let t = Template::parse("${output:${var:shared}:database.TableName}").unwrap();
        assert_eq!(
            t.segments,
            vec![Segment::Ref(Reference::Output {
                stage: Some(OutputStage::Var("shared".into())),
                service: "database".into(),
                key: "TableName".into(),
            })]
        );
        assert_eq!(
            t.output_services().collect::<Vec<_>>(),
            ["database"],
            "the variable may name this stage: ordered as a dependency"
        );
    }

    #[test]
    fn output_services_include_those_read_from_a_named_stage() {
        // `prod:db` is read from prod: deploying prod, that is this very stage, so db must be
        // deployed first there, as a same-stage reference would have it.
        let t = Template::parse("${output:api.Url},${output:prod:db.Name},${output:events.Arn}")
            .unwrap();
        assert_eq!(
            t.output_services().collect::<Vec<_>>(),
            ["api", "db", "events"]
        );
    }

    #[test]
    fn malformed_references_say_what_to_write() {
        let err = |s: &str| Template::parse(s).unwrap_err().to_string();
        assert!(err("${output:api").starts_with("unterminated reference `${output:api`"));
        assert!(err("${}").starts_with("empty reference"));
        assert!(err("${stgae}").contains("did you mean `stage`?"));
        assert!(err("${output:api}").contains("needs SERVICE.KEY"));
        assert!(err("${output:api.}").contains("needs SERVICE.KEY"));
        assert!(err("${output:${stage}.X}").contains("cannot contain another reference"));
        assert!(err("${ssm:}").contains("needs a parameter name"));
        assert!(err("${ssm:/a/${output:x.Y}}").contains("may only contain"));
        assert!(err("${ssm:/a/${nope}}").contains("unknown reference `${nope}`"));
        assert!(err("${var:}").contains("needs a variable name"));
        assert!(err("${var:a b}").contains("needs a variable name"));
        assert!(err("${output:${var:x}api.Url}").contains("needs SERVICE.KEY"));
        assert!(
            err("${output:${var:x}:${stage}.Url}").contains("cannot contain another reference")
        );
    }

    #[test]
    fn render_asks_for_each_reference() {
        let t = Template::parse("${project}-${stage}-${output:db.Name}").unwrap();
        let out: Result<String, ()> = t.render(|r| {
            Ok(match r {
                Reference::Project => "shop".into(),
                Reference::Stage => "dev".into(),
                Reference::Output { key, .. } => key.to_lowercase(),
                _ => unreachable!(),
            })
        });
        assert_eq!(out.unwrap(), "shop-dev-name");
    }
}
