//! Template rewriting: a resource's local code path becomes the S3 location of its zip.
//!
//! YAML templates are read with their short-form tags and normalised to the long form
//! (`!Ref X` → `{"Ref": "X"}`, `!GetAtt A.B` → `{"Fn::GetAtt": ["A", "B"]}`, `!Sub` →
//! `{"Fn::Sub": …}`), and a rewritten template is written as JSON, which CloudFormation reads as
//! it reads YAML. The bucket is not written into the template: the rewrite adds the parameter
//! [`BUCKET_PARAMETER`] and refers to it, so one packaged template, byte for byte, serves every
//! stage and account (each passes its own artifact bucket).

use serde_json::{Map, Value, json};

use crate::TemplateError;

/// The parameter a packaged template takes its artifact bucket from.
pub const BUCKET_PARAMETER: &str = "FerryArtifactBucket";

/// The template parameter through which a deploy hands a template the name of its stage's
/// permissions boundary (`ferry_bootstrap::boundary_name`); a role takes it as
/// `PermissionsBoundary: !Sub "arn:${AWS::Partition}:iam::${AWS::AccountId}:policy/${FerryPermissionsBoundary}"`.
pub const BOUNDARY_PARAMETER: &str = "FerryPermissionsBoundary";

/// A code property that holds a zip: (resource type, property, bucket field, key field).
const CODE_PROPERTIES: &[(&str, &str, &str, &str)] = &[
    ("AWS::Lambda::Function", "Code", "S3Bucket", "S3Key"),
    ("AWS::Lambda::LayerVersion", "Content", "S3Bucket", "S3Key"),
    ("AWS::Serverless::Function", "CodeUri", "Bucket", "Key"),
    (
        "AWS::Serverless::LayerVersion",
        "ContentUri",
        "Bucket",
        "Key",
    ),
];

/// Short-form tags and the long form they stand for.
const TAGS: &[(&str, &str)] = &[
    ("Ref", "Ref"),
    ("Condition", "Condition"),
    ("GetAtt", "Fn::GetAtt"),
    ("Sub", "Fn::Sub"),
    ("Join", "Fn::Join"),
    ("Select", "Fn::Select"),
    ("Split", "Fn::Split"),
    ("FindInMap", "Fn::FindInMap"),
    ("Base64", "Fn::Base64"),
    ("Cidr", "Fn::Cidr"),
    ("GetAZs", "Fn::GetAZs"),
    ("ImportValue", "Fn::ImportValue"),
    ("If", "Fn::If"),
    ("Equals", "Fn::Equals"),
    ("And", "Fn::And"),
    ("Or", "Fn::Or"),
    ("Not", "Fn::Not"),
    ("Transform", "Fn::Transform"),
    ("ToJsonString", "Fn::ToJsonString"),
    ("Length", "Fn::Length"),
];

/// Longest parameter value, in bytes, CloudFormation takes (longer: the stack operation fails).
pub const MAX_PARAMETER_VALUE: usize = 4096;

/// Largest template CloudFormation accepts (from S3; inline bodies stop at 51,200 bytes).
pub const MAX_TEMPLATE: usize = 1_048_576;

/// Deepest nesting of YAML flow collections (`[…]`, `{…}`) a template may have
/// ([`ferry_manifest::yaml::MAX_FLOW_DEPTH`], as for every YAML file Ferry reads).
pub const MAX_FLOW_DEPTH: usize = ferry_manifest::yaml::MAX_FLOW_DEPTH;

/// Parses a JSON or YAML template into JSON, short-form tags in their long form. Input a
/// deploy cannot use is refused first, each with its own error: a byte-order mark, more than
/// [`MAX_TEMPLATE`] bytes, an empty file, flow nesting deeper than [`MAX_FLOW_DEPTH`].
pub fn parse(text: &str) -> Result<Value, TemplateError> {
    if text.starts_with('\u{feff}') {
        return Err(TemplateError::ByteOrderMark);
    }
    if text.len() > MAX_TEMPLATE {
        return Err(TemplateError::TooLarge {
            size: text.len(),
            max: MAX_TEMPLATE,
        });
    }
    if text
        .lines()
        .all(|l| l.trim().is_empty() || l.trim_start().starts_with('#'))
    {
        return Err(TemplateError::Empty);
    }
    // JSON first when it looks like JSON (serde_json refuses nesting past 128 levels on its own,
    // in linear time); a YAML template written in flow style (`{Resources: …}`) looks the same
    // and is read as YAML when it is not JSON.
    let json_error = if text.trim_start().starts_with('{') {
        match serde_json::from_str(text) {
            Ok(v) => return Ok(v),
            Err(e) => Some(e.to_string()),
        }
    } else {
        None
    };
    if let Some(line) = ferry_manifest::yaml::flow_too_deep(text, MAX_FLOW_DEPTH) {
        return Err(TemplateError::TooDeep {
            line,
            max: MAX_FLOW_DEPTH,
        });
    }
    let mut yaml: serde_yaml_ng::Value = serde_yaml_ng::from_str(text).map_err(|e| {
        TemplateError::Parse(match &json_error {
            // Neither: the JSON reading is the one meant.
            Some(j) => j.clone(),
            None => ferry_manifest::yaml::error_text(&e),
        })
    })?;
    // `<<: *anchor` merge keys, as CloudFormation's own YAML reader applies them.
    yaml.apply_merge()
        .map_err(|e| TemplateError::Parse(format!("a `<<` merge key cannot be applied: {e}")))?;
    to_json(yaml)
}

/// Checks a parsed template against what a deploy of it needs: a mapping with a non-empty
/// `Resources` mapping (its first problem alone: the rest needs it sound), then every
/// parameter the service passes (`passed`, its `[parameters]` keys) that is not declared, and
/// every declared parameter without a `Default` given no value, at once, so that a fix does not
/// reveal the next. `provided` are parameters Ferry passes itself (the artifact bucket).
pub fn check(template: &Value, passed: &[&str], provided: &[&str]) -> Vec<TemplateError> {
    match check_structure(template) {
        Err(e) => vec![e],
        Ok(declared) => parameter_problems(&declared, passed, provided),
    }
}

/// The template's declared parameters, once its structure is sound.
fn check_structure(template: &Value) -> Result<serde_json::Map<String, Value>, TemplateError> {
    let Some(root) = template.as_object() else {
        return Err(TemplateError::NotAMapping {
            found: kind(template),
        });
    };
    match root.get("Resources") {
        None => return Err(TemplateError::NoResources),
        Some(Value::Object(r)) if r.is_empty() => return Err(TemplateError::EmptyResources),
        Some(Value::Object(_)) => {}
        Some(other) => {
            return Err(TemplateError::ResourcesNotAMapping { found: kind(other) });
        }
    }
    match root.get("Parameters") {
        None | Some(Value::Null) => Ok(serde_json::Map::new()),
        Some(Value::Object(p)) => Ok(p.clone()),
        Some(other) => Err(TemplateError::Parse(format!(
            "Parameters must be a mapping of parameter declarations, found {}",
            kind(other)
        ))),
    }
}

fn parameter_problems(
    declared: &serde_json::Map<String, Value>,
    passed: &[&str],
    provided: &[&str],
) -> Vec<TemplateError> {
    let mut out = Vec::new();
    let names = || {
        if declared.is_empty() {
            "none".to_string()
        } else {
            declared.keys().cloned().collect::<Vec<_>>().join(", ")
        }
    };
    for key in passed {
        if !declared.contains_key(*key) {
            out.push(TemplateError::UndeclaredParameter {
                key: key.to_string(),
                declared: names(),
            });
        }
    }
    for (key, decl) in declared {
        let has_default = decl.get("Default").is_some_and(|d| !d.is_null());
        if !has_default && !passed.contains(&key.as_str()) && !provided.contains(&key.as_str()) {
            out.push(TemplateError::MissingParameter { key: key.clone() });
        }
    }
    out
}

pub use ferry_manifest::SSM_PARAMETER_TYPE;

/// The parameters `template` declares with an SSM parameter type ([`SSM_PARAMETER_TYPE`]), each
/// with its default: the SSM parameter's name used when none is passed.
pub fn ssm_typed_parameters(template: &Value) -> Vec<(String, Option<String>)> {
    template
        .get("Parameters")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
        .filter(|(_, d)| {
            d.get("Type")
                .and_then(Value::as_str)
                .is_some_and(|t| t.trim_start().starts_with(SSM_PARAMETER_TYPE))
        })
        .map(|(k, d)| {
            let default = d.get("Default").and_then(Value::as_str).map(String::from);
            (k.clone(), default)
        })
        .collect()
}

/// Whether the template declares parameter `key` with `NoEcho: true` (CloudFormation then
/// shows `****` for it in the console and in DescribeStacks).
pub fn is_no_echo(template: &Value, key: &str) -> bool {
    match template
        .get("Parameters")
        .and_then(|p| p.get(key))
        .and_then(|d| d.get("NoEcho"))
    {
        // Anything but false: CloudFormation reads YAML 1.1, where `yes` and `on` are true.
        None | Some(Value::Bool(false)) => false,
        Some(Value::String(s)) => !s.eq_ignore_ascii_case("false"),
        Some(_) => true,
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "nothing (null)",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a mapping",
    }
}

fn to_json(v: serde_yaml_ng::Value) -> Result<Value, TemplateError> {
    use serde_yaml_ng::Value as Y;
    Ok(match v {
        Y::Null => Value::Null,
        Y::Bool(b) => Value::Bool(b),
        Y::Number(n) => {
            if let Some(i) = n.as_i64() {
                json!(i)
            } else if let Some(u) = n.as_u64() {
                json!(u)
            } else {
                let f = n.as_f64().unwrap_or(f64::NAN);
                serde_json::Number::from_f64(f)
                    .map(Value::Number)
                    .ok_or_else(|| TemplateError::Parse(format!("number {n} has no JSON form")))?
            }
        }
        Y::String(s) => Value::String(s),
        Y::Sequence(items) => {
            Value::Array(items.into_iter().map(to_json).collect::<Result<_, _>>()?)
        }
        Y::Mapping(m) => {
            let mut out = Map::new();
            for (k, v) in m {
                let key = match k {
                    Y::String(s) => s,
                    Y::Number(n) => n.to_string(),
                    Y::Bool(b) => b.to_string(),
                    other => {
                        return Err(TemplateError::Parse(format!(
                            "mapping key {other:?} is not a string"
                        )));
                    }
                };
                out.insert(key, to_json(v)?);
            }
            Value::Object(out)
        }
        Y::Tagged(t) => {
            let tag = t.tag.to_string();
            let short = tag.trim_start_matches('!');
            let Some((_, long)) = TAGS.iter().find(|(s, _)| *s == short) else {
                return Err(TemplateError::Parse(format!(
                    "unknown tag {tag}; CloudFormation's short forms are {}",
                    TAGS.iter()
                        .map(|(s, _)| format!("!{s}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                )));
            };
            let value = to_json(t.value)?;
            let value = match (short, value) {
                // `!GetAtt Resource.Attribute` (the attribute may itself hold dots).
                ("GetAtt", Value::String(s)) => match s.split_once('.') {
                    Some((r, a)) => json!([r, a]),
                    None => Value::String(s),
                },
                (_, v) => v,
            };
            json!({ *long: value })
        }
    })
}

/// Whether a template parameter's type is AWS-specific (`AWS::EC2::VPC::Id`, a
/// `List<AWS::EC2::Subnet::Id>`, an SSM parameter type): only AWS knows its values, and
/// CloudFormation takes no empty one.
pub fn is_aws_specific(ty: &str) -> bool {
    ty.starts_with("AWS::") || ty.starts_with("List<AWS::")
}

/// Why CloudFormation refuses `value` for the parameter declared as `decl`; `None` when it
/// takes it, or when Ferry cannot be sure it would not. Judged: a `Number` (a number, within
/// `MinValue`/`MaxValue`, one of its `AllowedValues`), a `List<Number>` (numbers), a `String`
/// (within `MinLength`/`MaxLength` in UTF-16 units as Java counts them, wholly matching its
/// `AllowedPattern`, one of its `AllowedValues`) and each item of a `CommaDelimitedList` (one
/// of its `AllowedValues`). Left to CloudFormation: AWS-specific types, which only AWS knows
/// the values of; a pattern Rust's engine cannot compile or may read otherwise than Java's
/// (lookarounds, `\<`, POSIX classes, …), or a value that is not ASCII against a pattern; and
/// `AllowedValues` holding a word YAML 1.1 reads as a boolean (`ON`, `No`), which
/// CloudFormation's YAML reader turns into `true`/`false`. With `shown` false (a `NoEcho`
/// parameter) the value is never quoted.
pub fn value_problem(decl: &Value, value: &str, shown: bool) -> Option<String> {
    let quote = |item: &str| {
        if shown {
            format!("`{item}`")
        } else {
            "the value (not shown: NoEcho)".to_string()
        }
    };
    let ty = decl.get("Type").and_then(Value::as_str).unwrap_or("String");
    let number = |v: &Value| match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse::<f64>().ok(),
        _ => None,
    };
    let items: Vec<&str> = match ty {
        "Number" | "String" => vec![value],
        // An empty list is left to CloudFormation.
        "List<Number>" | "CommaDelimitedList" if value.trim().is_empty() => return None,
        "List<Number>" | "CommaDelimitedList" => value.split(',').map(str::trim).collect(),
        _ => return None,
    };
    if matches!(ty, "Number" | "List<Number>") {
        for item in &items {
            let Ok(n) = item.trim().parse::<f64>() else {
                if java_may_read_as_number(item) {
                    // `5d`, `0x1p3`: Java reads them as numbers; left to CloudFormation.
                    return None;
                }
                return Some(if item.is_empty() {
                    format!("an empty value is not a number, which type {ty} takes")
                } else {
                    format!("{} is not a number, which type {ty} takes", quote(item))
                });
            };
            if ty != "Number" {
                continue;
            }
            if let Some(min) = decl.get("MinValue").and_then(number)
                && n < min
            {
                return Some(format!("it is below MinValue {min}"));
            }
            if let Some(max) = decl.get("MaxValue").and_then(number)
                && n > max
            {
                return Some(format!("it is above MaxValue {max}"));
            }
        }
        if ty == "List<Number>" {
            return None;
        }
    }
    if ty == "String" {
        let length = value.encode_utf16().count() as f64;
        if let Some(min) = decl.get("MinLength").and_then(number)
            && length < min
        {
            return Some(format!("it is shorter than MinLength {min}"));
        }
        if let Some(max) = decl.get("MaxLength").and_then(number)
            && length > max
        {
            return Some(format!("it is longer than MaxLength {max}"));
        }
        if let Some(pattern) = decl.get("AllowedPattern").and_then(Value::as_str)
            && value.is_ascii()
            && let Some(re) = java_pattern(pattern)
            && !re.is_match(value.as_bytes())
        {
            return Some(format!("it does not match AllowedPattern {pattern}"));
        }
    }
    if let Some(allowed) = decl.get("AllowedValues").and_then(Value::as_array) {
        let allowed: Vec<String> = allowed.iter().filter_map(literal_value).collect();
        if allowed.iter().any(|a| yaml_1_1_bool(a)) {
            return None;
        }
        let numeric_match = |item: &str| {
            ty == "Number"
                && item
                    .trim()
                    .parse::<f64>()
                    .ok()
                    .is_some_and(|n| allowed.iter().any(|a| a.parse::<f64>().ok() == Some(n)))
        };
        // A list whose whole text is an allowed value (`a,b` among `["a,b"]`) is left to
        // CloudFormation: which of the two readings it applies is not certain.
        let whole = ty == "CommaDelimitedList" && allowed.iter().any(|a| a == value);
        if let Some(bad) = items
            .iter()
            .find(|i| !whole && !allowed.iter().any(|a| a == *i) && !numeric_match(i))
        {
            return Some(format!(
                "{} is not one of its AllowedValues ({})",
                quote(bad),
                allowed.join(", ")
            ));
        }
    }
    None
}

/// Whether Java's `Double.valueOf` may read `item` as a number where Rust does not: a type
/// suffix (`5d`, `1.5F`) or a hexadecimal float (`0x1p3`).
fn java_may_read_as_number(item: &str) -> bool {
    let t = item.trim();
    let unsigned = t.trim_start_matches(['+', '-']);
    let suffixed = t
        .strip_suffix(['d', 'D', 'f', 'F'])
        .is_some_and(|n| n.parse::<f64>().is_ok_and(f64::is_finite));
    suffixed || unsigned.starts_with("0x") || unsigned.starts_with("0X")
}

/// Whether YAML 1.1, as CloudFormation reads a template, takes `word` (unquoted) for a boolean.
fn yaml_1_1_bool(word: &str) -> bool {
    matches!(
        word,
        "y" | "Y"
            | "yes"
            | "Yes"
            | "YES"
            | "n"
            | "N"
            | "no"
            | "No"
            | "NO"
            | "on"
            | "On"
            | "ON"
            | "off"
            | "Off"
            | "OFF"
            | "true"
            | "True"
            | "TRUE"
            | "false"
            | "False"
            | "FALSE"
    )
}

/// A Java `AllowedPattern` as a whole-value matcher over ASCII bytes; `None` for one Rust's
/// engine cannot compile, or one whose syntax it reads otherwise than Java (`\<` and `\>`,
/// POSIX classes `[[:alpha:]]`, the `U` flag, `\v`).
fn java_pattern(pattern: &str) -> Option<regex_automata::meta::Regex> {
    if ["\\<", "\\>", "[[:", "(?U", "\\v"]
        .iter()
        .any(|x| pattern.contains(x))
    {
        return None;
    }
    regex_automata::meta::Regex::builder()
        .syntax(
            regex_automata::util::syntax::Config::new()
                .unicode(false)
                .utf8(false),
        )
        .configure(regex_automata::meta::Config::new().utf8_empty(false))
        .build(&format!("^(?:{pattern})$"))
        .ok()
}

/// A literal parameter value as CloudFormation passes it to a stack: a string as it is, a
/// number or boolean as its text (`2`, `true`); `None` for anything else (a `Ref`, a list, a
/// mapping), which only a deploy can resolve.
pub fn literal_value(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// The code properties of a template's resources that hold a local path (a string that is not
/// an `s3://` URI): (logical id, resource type, property).
pub fn local_code_paths(template: &Value) -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    let Some(resources) = template.get("Resources").and_then(Value::as_object) else {
        return out;
    };
    for (id, r) in resources {
        let Some(ty) = r.get("Type").and_then(Value::as_str) else {
            continue;
        };
        for (t, prop, _, _) in CODE_PROPERTIES {
            if ty == *t
                && let Some(Value::String(s)) = r.get("Properties").and_then(|p| p.get(*prop))
                && !s.starts_with("s3://")
            {
                out.push((id.clone(), ty.to_string(), prop.to_string()));
            }
        }
    }
    out
}

/// Points `resource`'s code property at `key` in the bucket given by [`BUCKET_PARAMETER`];
/// returns the property's name.
pub fn point_at(template: &mut Value, resource: &str, key: &str) -> Result<String, TemplateError> {
    let resources = template
        .get_mut("Resources")
        .and_then(Value::as_object_mut)
        .ok_or(TemplateError::NoResources)?;
    let known: Vec<String> = resources.keys().cloned().collect();
    let r = resources
        .get_mut(resource)
        .ok_or_else(|| TemplateError::UnknownResource {
            resource: resource.to_string(),
            known: known.join(", "),
        })?;
    let ty = r
        .get("Type")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let Some((_, prop, bucket, key_field)) = CODE_PROPERTIES.iter().find(|(t, ..)| *t == ty) else {
        return Err(TemplateError::UnsupportedType {
            resource: resource.to_string(),
            ty,
            supported: CODE_PROPERTIES
                .iter()
                .map(|(t, ..)| *t)
                .collect::<Vec<_>>()
                .join(", "),
        });
    };
    let props = r
        .as_object_mut()
        .expect("a resource with a Type is a mapping")
        .entry("Properties")
        .or_insert_with(|| json!({}));
    let Some(props) = props.as_object_mut() else {
        return Err(TemplateError::Parse(format!(
            "{resource}.Properties is not a mapping"
        )));
    };
    props.insert(
        prop.to_string(),
        json!({ *bucket: { "Ref": BUCKET_PARAMETER }, *key_field: key }),
    );
    Ok(prop.to_string())
}

/// Adds the artifact bucket parameter.
pub fn add_bucket_parameter(template: &mut Value) -> Result<(), TemplateError> {
    let Some(root) = template.as_object_mut() else {
        return Err(TemplateError::Parse("the template is not a mapping".into()));
    };
    let params = root.entry("Parameters").or_insert_with(|| json!({}));
    // `Parameters:` with nothing under it (as aws-samples/serverless-patterns has) is empty.
    if params.is_null() {
        *params = json!({});
    }
    let Some(params) = params.as_object_mut() else {
        return Err(TemplateError::Parse("Parameters is not a mapping".into()));
    };
    params.insert(
        BUCKET_PARAMETER.to_string(),
        json!({
            "Type": "String",
            "Description": "Bucket holding this service's packaged artifacts (set by Ferry per stage)"
        }),
    );
    Ok(())
}

/// The pseudo parameters every template may `Ref`.
const PSEUDO_PARAMETERS: &[&str] = &[
    "AWS::AccountId",
    "AWS::NotificationARNs",
    "AWS::NoValue",
    "AWS::Partition",
    "AWS::Region",
    "AWS::StackId",
    "AWS::StackName",
    "AWS::URLSuffix",
];

/// The references of a plain CloudFormation template to names it does not define, each as
/// (where, what): a `Ref` or `${…}` of `Fn::Sub` naming no parameter, resource or pseudo
/// parameter; an `Fn::GetAtt` naming no resource; a `DependsOn` naming no resource; a
/// `Condition` or `Fn::If` naming no condition. CloudFormation refuses such a template as a
/// whole ("Template format error: Unresolved resource dependencies"). Not judged: a template
/// with a `Transform` (SAM and other macros define names of their own), and `Metadata`, which
/// CloudFormation does not evaluate.
pub fn undefined_references(template: &Value) -> Vec<(String, String)> {
    let Some(root) = template.as_object() else {
        return Vec::new();
    };
    if root.get("Transform").is_some_and(|t| !t.is_null()) {
        return Vec::new();
    }
    // An `Fn::Transform` anywhere (AWS::Include brings resources, conditions, parameters) or a
    // module (`Org::Service::Thing::MODULE`, whose resources get prefixed names) defines names
    // this template does not show.
    let module = root
        .get("Resources")
        .and_then(Value::as_object)
        .into_iter()
        .flat_map(|r| r.values())
        .filter_map(|r| r.get("Type").and_then(Value::as_str))
        .any(|t| t.ends_with("::MODULE"));
    if module || holds_key(template, "Fn::Transform") {
        return Vec::new();
    }
    let keys = |section: &str| -> std::collections::BTreeSet<&str> {
        root.get(section)
            .and_then(Value::as_object)
            .map(|m| m.keys().map(String::as_str).collect())
            .unwrap_or_default()
    };
    let names = Names {
        resources: keys("Resources"),
        parameters: keys("Parameters"),
        conditions: keys("Conditions"),
    };
    let mut out = Vec::new();
    for section in ["Conditions", "Resources", "Outputs"] {
        let Some(entries) = root.get(section).and_then(Value::as_object) else {
            continue;
        };
        for (name, entry) in entries {
            let at = format!("{section}.{name}");
            let Some(fields) = entry.as_object() else {
                names.walk(entry, &at, &mut out);
                continue;
            };
            for (field, value) in fields {
                let at = format!("{at}.{field}");
                match field.as_str() {
                    "Metadata" => {}
                    "DependsOn" if section == "Resources" => {
                        let deps = match value {
                            Value::String(s) => vec![s.as_str()],
                            Value::Array(a) => a.iter().filter_map(Value::as_str).collect(),
                            _ => Vec::new(),
                        };
                        for d in deps.into_iter().filter(|d| !names.resources.contains(d)) {
                            out.push((
                                at.clone(),
                                format!(
                                    "DependsOn names `{d}`, which is no resource of the template"
                                ),
                            ));
                        }
                    }
                    "Condition" if section != "Conditions" => {
                        if let Some(c) = value.as_str().filter(|c| !names.conditions.contains(c)) {
                            out.push((at.clone(), format!("names the condition `{c}`, which the template does not declare in Conditions")));
                        }
                    }
                    _ => names.walk(value, &at, &mut out),
                }
            }
        }
    }
    out
}

/// Whether `key` is a key of any mapping within `v`.
fn holds_key(v: &Value, key: &str) -> bool {
    match v {
        Value::Object(m) => m.contains_key(key) || m.values().any(|x| holds_key(x, key)),
        Value::Array(a) => a.iter().any(|x| holds_key(x, key)),
        _ => false,
    }
}

/// The names a template defines.
struct Names<'t> {
    resources: std::collections::BTreeSet<&'t str>,
    parameters: std::collections::BTreeSet<&'t str>,
    conditions: std::collections::BTreeSet<&'t str>,
}

impl Names<'_> {
    fn is_value(&self, name: &str) -> bool {
        self.resources.contains(name)
            || self.parameters.contains(name)
            || PSEUDO_PARAMETERS.contains(&name)
    }

    fn walk(&self, v: &Value, at: &str, out: &mut Vec<(String, String)>) {
        match v {
            Value::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    self.walk(item, &format!("{at}[{i}]"), out);
                }
            }
            Value::Object(m) if m.len() == 1 => {
                let (key, arg) = m.iter().next().expect("one entry");
                match (key.as_str(), arg) {
                    ("Ref", Value::String(name)) => {
                        if !self.is_value(name) {
                            out.push((at.to_string(), format!("Ref names `{name}`, which is no parameter, resource or pseudo parameter of the template")));
                        }
                    }
                    ("Fn::GetAtt", _) => {
                        let target = match arg {
                            Value::Array(a) => a.first().and_then(Value::as_str),
                            Value::String(s) => s.split('.').next(),
                            _ => None,
                        };
                        if let Some(t) = target.filter(|t| !self.resources.contains(t)) {
                            out.push((
                                at.to_string(),
                                format!(
                                    "Fn::GetAtt names `{t}`, which is no resource of the template"
                                ),
                            ));
                        }
                        if let Value::Array(a) = arg {
                            for item in a.iter().skip(1) {
                                self.walk(item, at, out);
                            }
                        }
                    }
                    ("Fn::Sub", _) => {
                        let (text, vars) = match arg {
                            Value::String(s) => (Some(s.as_str()), None),
                            Value::Array(a) => (a.first().and_then(Value::as_str), a.get(1)),
                            _ => (None, None),
                        };
                        let local: std::collections::BTreeSet<&str> = vars
                            .and_then(Value::as_object)
                            .map(|m| m.keys().map(String::as_str).collect())
                            .unwrap_or_default();
                        for name in text.into_iter().flat_map(sub_variables) {
                            let (head, attr) = match name.split_once('.') {
                                Some((h, a)) => (h, Some(a)),
                                None => (name, None),
                            };
                            let known = local.contains(name)
                                || match attr {
                                    // `${AWS::Region}` holds `::`, no attribute.
                                    Some(_) if !head.contains("::") => {
                                        self.resources.contains(head)
                                    }
                                    _ => self.is_value(name),
                                };
                            if !known {
                                out.push((at.to_string(), format!("Fn::Sub names `${{{name}}}`, which is no parameter, resource, attribute or pseudo parameter of the template, nor one of its own variables")));
                            }
                        }
                        if let Some(vars) = vars {
                            self.walk(vars, at, out);
                        }
                    }
                    ("Fn::If", Value::Array(a)) => {
                        if let Some(c) = a
                            .first()
                            .and_then(Value::as_str)
                            .filter(|c| !self.conditions.contains(c))
                        {
                            out.push((at.to_string(), format!("Fn::If names the condition `{c}`, which the template does not declare in Conditions")));
                        }
                        for item in a.iter().skip(1) {
                            self.walk(item, at, out);
                        }
                    }
                    // The `Condition` function exists only among conditions (a property of
                    // that name elsewhere is a property).
                    ("Condition", Value::String(c)) if at.starts_with("Conditions.") => {
                        if !self.conditions.contains(c.as_str()) {
                            out.push((at.to_string(), format!("names the condition `{c}`, which the template does not declare in Conditions")));
                        }
                    }
                    (key, arg) => self.walk(arg, &format!("{at}.{key}"), out),
                }
            }
            Value::Object(m) => {
                for (k, item) in m {
                    self.walk(item, &format!("{at}.{k}"), out);
                }
            }
            _ => {}
        }
    }
}

/// A piece of an `Fn::Sub` string.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SubPart<'a> {
    /// Text as written.
    Text(&'a str),
    /// `${Name}` or `${Name.Attr}`: the name, trimmed.
    Var(&'a str),
    /// `${!Text}`, which CloudFormation writes as `${Text}`: the text after `!`.
    Literal(&'a str),
}

/// The pieces of an `Fn::Sub` string, in order, and whether it ended well: `false` when a `${`
/// has no `}` after it (the rest is then one `Text`). The one reading of `Fn::Sub` strings, for
/// the names a template uses and for the values `links` works out.
pub(crate) fn sub_parts(text: &str) -> (Vec<SubPart<'_>>, bool) {
    let mut parts = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find("${") {
        let after = &rest[at + 2..];
        let Some(end) = after.find('}') else {
            break;
        };
        if at > 0 {
            parts.push(SubPart::Text(&rest[..at]));
        }
        let name = &after[..end];
        parts.push(match name.strip_prefix('!') {
            Some(literal) => SubPart::Literal(literal),
            None => SubPart::Var(name.trim()),
        });
        rest = &after[end + 1..];
    }
    let complete = !rest.contains("${");
    if !rest.is_empty() {
        parts.push(SubPart::Text(rest));
    }
    (parts, complete)
}

/// The variables an `Fn::Sub` string names (`${Name}`, `${Name.Attr}`), without the literal
/// `${!Text}` it writes as `${Text}`.
fn sub_variables(text: &str) -> impl Iterator<Item = &str> {
    sub_parts(text).0.into_iter().filter_map(|p| match p {
        SubPart::Var(name) => Some(name),
        _ => None,
    })
}

#[cfg(test)]
mod tests {

    #[test]
    fn an_fn_sub_string_is_read_into_text_variables_and_literals() {
        use super::SubPart::{Literal, Text, Var};
        assert_eq!(
            super::sub_parts("/a/${ Env }/${!Literal}${AWS::Region}-${Q.Arn}"),
            (
                vec![
                    Text("/a/"),
                    Var("Env"),
                    Text("/"),
                    Literal("Literal"),
                    Var("AWS::Region"),
                    Text("-"),
                    Var("Q.Arn"),
                ],
                true
            )
        );
        // A `${` without its `}`: the rest is text, and the string did not end well.
        assert_eq!(
            super::sub_parts("${X}-${Y"),
            (vec![Var("X"), Text("-${Y")], false)
        );
        assert_eq!(super::sub_parts(""), (vec![], true));
        assert_eq!(
            super::sub_parts("no variables"),
            (vec![Text("no variables")], true)
        );
    }

    #[test]
    fn names_a_template_does_not_define_are_found_where_they_are_used() {
        let t = parse(
            "Parameters:\n  Stage: {Type: String}\nConditions:\n  IsProd: !Equals [!Ref Stage, prod]\n  Bad: !Equals [!Ref Nope, x]\nResources:\n  Q:\n    Type: AWS::SQS::Queue\n    Metadata: {Anything: !Ref Whatever}\n  T:\n    Type: AWS::SNS::Topic\n    DependsOn: [Q, Gone]\n    Condition: IsProd\n    Properties:\n      TopicName: !Sub '${Stage}-${AWS::Region}-${Q.QueueName}-${!Literal}-${Local}-${Missing}'\n      DisplayName: !Sub ['${X}', {X: !Ref Absent}]\n      Tags:\n        - Key: k\n          Value: !If [NoSuchCondition, !GetAtt Q.Arn, !GetAtt Missing.Arn]\nOutputs:\n  A:\n    Value: !GetAtt [Ghost, Arn]\n  B:\n    Value: !Ref AWS::StackName\n    Condition: Unknown\n",
        )
        .unwrap();
        let found: Vec<String> = super::undefined_references(&t)
            .into_iter()
            .map(|(at, what)| format!("{at}: {what}"))
            .collect();
        let has = |needle: &str| found.iter().any(|f| f.contains(needle));
        assert!(
            has("Conditions.Bad.Fn::Equals[0]: Ref names `Nope`"),
            "{found:#?}"
        );
        assert!(
            has("Resources.T.DependsOn: DependsOn names `Gone`"),
            "{found:#?}"
        );
        assert!(has("`${Local}`") && has("`${Missing}`"), "{found:#?}");
        assert!(has("Ref names `Absent`"), "{found:#?}");
        assert!(
            has("Fn::If names the condition `NoSuchCondition`"),
            "{found:#?}"
        );
        assert!(has("Fn::GetAtt names `Missing`"), "{found:#?}");
        assert!(
            has("Outputs.A.Value: Fn::GetAtt names `Ghost`"),
            "{found:#?}"
        );
        assert!(
            has("Outputs.B.Condition: names the condition `Unknown`"),
            "{found:#?}"
        );
        assert_eq!(found.len(), 9, "nothing else: {found:#?}");

        // A transform defines names of its own (SAM's implicit roles and APIs): not judged.
        let sam = parse(
            "Transform: AWS::Serverless-2016-10-31\nResources:\n  F:\n    Type: AWS::Serverless::Function\n    Properties:\n      Role: !GetAtt FRole.Arn\n",
        )
        .unwrap();
        assert!(super::undefined_references(&sam).is_empty());
        // Nor an included snippet (`Fn::Transform` AWS::Include) or a module, whose names this
        // template does not show; a property named Condition is a property.
        for text in [
            "Resources:\n  Fn::Transform:\n    Name: AWS::Include\n    Parameters: {Location: s3://b/k}\n  F:\n    Type: AWS::Lambda::Function\n    Properties: {Role: !GetAtt SharedRole.Arn}\n",
            "Resources:\n  My:\n    Type: Org::Storage::Bucket::MODULE\n  P:\n    Type: AWS::SSM::Parameter\n    Properties: {Value: !Ref MyBucket, Type: String}\n",
        ] {
            let t = parse(text).unwrap();
            assert!(super::undefined_references(&t).is_empty(), "{text}");
        }
        let t = parse(
            "Resources:\n  R:\n    Type: Custom::Thing\n    Properties: {Rule: {Condition: SomeText}}\n",
        )
        .unwrap();
        assert!(super::undefined_references(&t).is_empty());
    }
    use super::*;

    #[test]
    fn values_a_parameter_declaration_refuses_are_named() {
        let decl = |y: &str| -> Value { serde_yaml_ng::from_str(y).unwrap() };
        let number = decl("Type: Number\nMinValue: 1\nMaxValue: 10");
        assert_eq!(value_problem(&number, "5", true), None);
        assert_eq!(value_problem(&number, "2.5", true), None);
        assert_eq!(
            value_problem(&number, "", true).unwrap(),
            "an empty value is not a number, which type Number takes"
        );
        assert_eq!(
            value_problem(&number, "abc", true).unwrap(),
            "`abc` is not a number, which type Number takes"
        );
        // Java reads these as numbers: left to CloudFormation, whatever the bounds.
        for java in ["5d", "2.5F", "0x1p3", "-0X10"] {
            assert_eq!(value_problem(&number, java, true), None, "{java}");
        }
        assert!(value_problem(&number, "d", true).is_some());
        assert!(value_problem(&number, "0y1", true).is_some());
        assert_eq!(
            value_problem(&number, "11", true).unwrap(),
            "it is above MaxValue 10"
        );
        let mode = decl("Type: String\nAllowedValues: [blue, green]");
        assert_eq!(value_problem(&mode, "blue", true), None);
        assert_eq!(
            value_problem(&mode, "MAYBE", true).unwrap(),
            "`MAYBE` is not one of its AllowedValues (blue, green)"
        );
        // A NoEcho value is never quoted.
        assert_eq!(
            value_problem(&mode, "hunter2", false).unwrap(),
            "the value (not shown: NoEcho) is not one of its AllowedValues (blue, green)"
        );
        // Words YAML 1.1 reads as booleans, as CloudFormation's reader does: not judged.
        let switch = decl("Type: String\nAllowedValues: [ON, OFF]");
        assert_eq!(value_problem(&switch, "true", true), None);
        // A pattern most values would be checked against, ASCII bytes: `.`, negated classes.
        let any = decl("Type: String\nAllowedPattern: '[^,]+\\..+'");
        assert_eq!(value_problem(&any, "a.b", true), None);
        assert!(value_problem(&any, "a,b", true).is_some());
        // Java syntax Rust reads otherwise, and a value that is not ASCII: not judged.
        assert_eq!(
            value_problem(&decl("Type: String\nAllowedPattern: '\\<x'"), "y", true),
            None
        );
        assert_eq!(
            value_problem(&decl("Type: String\nAllowedPattern: '[a-z]+'"), "é", true),
            None
        );
        // Lengths in UTF-16 units, as Java counts them.
        assert_eq!(
            value_problem(&decl("Type: String\nMinLength: 2"), "😀", true),
            None
        );
        let sized = decl("Type: String\nMinLength: 2\nMaxLength: 4\nAllowedPattern: '[a-z]+'");
        assert_eq!(value_problem(&sized, "abc", true), None);
        assert!(
            value_problem(&sized, "a", true)
                .unwrap()
                .contains("MinLength 2")
        );
        assert!(
            value_problem(&sized, "abcde", true)
                .unwrap()
                .contains("MaxLength 4")
        );
        // The whole value must match, as CloudFormation matches it.
        assert!(
            value_problem(&sized, "ab1", true)
                .unwrap()
                .contains("does not match AllowedPattern [a-z]+")
        );
        // Java's lookarounds Ferry cannot compile: left to CloudFormation.
        let java = decl("Type: String\nAllowedPattern: '(?=x)x'");
        assert_eq!(value_problem(&java, "y", true), None);
        // A List<Number>: numbers only (what else CloudFormation checks of one is its own).
        let numbers = decl("Type: List<Number>\nAllowedValues: [1, 2]\nMaxValue: 1");
        assert_eq!(value_problem(&numbers, "1, 2", true), None);
        assert_eq!(value_problem(&numbers, "1, 3", true), None);
        assert_eq!(value_problem(&numbers, "", true), None);
        assert!(
            value_problem(&numbers, "1,x", true)
                .unwrap()
                .contains("`x` is not a number")
        );
        let colors = decl("Type: CommaDelimitedList\nAllowedValues: [red, blue]");
        assert_eq!(value_problem(&colors, "red,blue", true), None);
        let pairs = decl("Type: CommaDelimitedList\nAllowedValues: ['a,b', c]");
        assert_eq!(value_problem(&pairs, "a,b", true), None);
        assert_eq!(value_problem(&pairs, "c", true), None);
        assert!(
            value_problem(&pairs, "a,c", true)
                .unwrap()
                .contains("`a` is not one of")
        );
        assert!(
            value_problem(&colors, "red, pink", true)
                .unwrap()
                .contains("`pink` is not one of")
        );
        // An AWS-specific type only AWS can judge; a default String anything.
        assert_eq!(
            value_problem(&decl("Type: AWS::EC2::VPC::Id"), "x", true),
            None
        );
        assert_eq!(value_problem(&decl("Type: String"), "", true), None);
    }

    #[test]
    fn literal_values_are_scalars_as_their_text() {
        let v: Value = serde_json::json!(["a", 2, 1.5, true, null, {"Ref": "X"}, [1]]);
        let got: Vec<Option<String>> = v.as_array().unwrap().iter().map(literal_value).collect();
        assert_eq!(
            got,
            [
                Some("a".into()),
                Some("2".into()),
                Some("1.5".into()),
                Some("true".into()),
                None,
                None,
                None
            ]
        );
    }

    #[test]
    fn the_bucket_parameter_joins_parameters_even_an_empty_section() {
        for text in [
            "Resources: {}\n",
            "Parameters:\nResources: {}\n",
            "Parameters: {A: {Type: String}}\nResources: {}\n",
        ] {
            let mut t = parse(text).unwrap();
            add_bucket_parameter(&mut t).unwrap();
            assert_eq!(
                t["Parameters"][BUCKET_PARAMETER]["Type"],
                json!("String"),
                "{text}"
            );
        }
        let mut t = parse("Parameters: [a]\nResources: {}\n").unwrap();
        assert!(
            add_bucket_parameter(&mut t).is_err(),
            "a list is no section of parameters"
        );
    }

    #[test]
    fn a_yaml_template_in_flow_style_is_read_as_yaml_and_bad_json_says_json() {
        let t = parse("{Resources: {Q: {Type: 'AWS::SQS::Queue'}}}\n").unwrap();
        assert_eq!(t["Resources"]["Q"]["Type"], json!("AWS::SQS::Queue"));
        let t = parse("{\"Resources\": {\"Q\": {\"Type\": \"AWS::SQS::Queue\"}}}").unwrap();
        assert_eq!(t["Resources"]["Q"]["Type"], json!("AWS::SQS::Queue"));
        // Neither JSON nor YAML: the JSON error, with its line and column.
        let Err(TemplateError::Parse(e)) = parse("{\"Resources\": {\"Q\": ]}") else {
            panic!("parsed");
        };
        assert!(e.contains("line 1 column"), "{e}");
    }

    #[test]
    fn short_tags_become_long_form() {
        let t = parse(
            "A: !Ref X\nB: !GetAtt Role.Arn\nC: !GetAtt [R, Outputs.Url]\nD: !Sub '${AWS::Region}-x'\nE: !If [C, !Ref Y, !Ref AWS::NoValue]\nF: !Condition IsProd\nG: !GetAtt Stack.Outputs.Url\n",
        )
        .unwrap();
        assert_eq!(
            t,
            json!({
                "A": {"Ref": "X"},
                "B": {"Fn::GetAtt": ["Role", "Arn"]},
                "C": {"Fn::GetAtt": ["R", "Outputs.Url"]},
                "D": {"Fn::Sub": "${AWS::Region}-x"},
                "E": {"Fn::If": ["C", {"Ref": "Y"}, {"Ref": "AWS::NoValue"}]},
                "F": {"Condition": "IsProd"},
                "G": {"Fn::GetAtt": ["Stack", "Outputs.Url"]},
            })
        );
    }

    #[test]
    fn key_order_and_scalars_are_kept() {
        let t =
            parse("Zeta: 1\nAlpha: '2012-10-17'\nMid: 2012-10-17\nBool: true\nF: 1.5\n").unwrap();
        assert_eq!(
            serde_json::to_string(&t).unwrap(),
            r#"{"Zeta":1,"Alpha":"2012-10-17","Mid":"2012-10-17","Bool":true,"F":1.5}"#
        );
    }

    #[test]
    fn merge_keys_are_applied() {
        let t = parse(
            "Resources:\n  A:\n    Properties: &props {CodeUri: src, Handler: a.h}\n  B:\n    Properties:\n      <<: *props\n      Timeout: 5\n",
        )
        .unwrap();
        assert_eq!(
            t["Resources"]["B"]["Properties"],
            json!({"CodeUri": "src", "Handler": "a.h", "Timeout": 5})
        );
    }

    #[test]
    fn unknown_tags_are_refused_with_the_known_ones() {
        let e = parse("A: !Reference X\n").unwrap_err().to_string();
        assert!(e.contains("unknown tag !Reference"), "{e}");
        assert!(e.contains("!GetAtt"), "{e}");
    }
}
