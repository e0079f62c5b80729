//! SAM templates (`kind = "sam"`): every local path their resources name, found and pointed at
//! the artifact bucket, as `sam package` does, but content addressed.
//!
//! Local paths are strings that are not `s3://` or `http(s)://` locations, relative to the
//! template's folder:
//! - zipped: `CodeUri` of `AWS::Serverless::Function` (also in `Globals.Function`, and `.` when a
//!   zip function names none, as the SAM CLI does), `ContentUri` of `AWS::Serverless::LayerVersion`,
//!   `Code` / `Content` of `AWS::Lambda::Function` / `AWS::Lambda::LayerVersion`; a path that
//!   already is a `.zip` or `.jar` file is uploaded as it is;
//! - uploaded as files: `DefinitionUri` of `AWS::Serverless::Api`, `AWS::Serverless::HttpApi`
//!   (also in `Globals.Api` / `Globals.HttpApi`) and `AWS::Serverless::StateMachine`;
//! - packaged as templates: `Location` of `AWS::Serverless::Application` (its own local paths
//!   relative to its folder, recursively); the resource becomes the `AWS::CloudFormation::Stack`
//!   SAM would make of it, with its template URL in the bucket and the bucket passed down.

use serde_json::{Map, Value, json};

use crate::TemplateError;
use crate::template::BUCKET_PARAMETER;

pub use ferry_manifest::{SAM_TRANSFORM, is_sam};

/// How a local path is packaged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Packing {
    /// A folder (or a single file) zipped; a `.zip` / `.jar` file is taken as it is.
    Zip,
    /// One file uploaded as it is (an OpenAPI or state machine definition).
    File,
    /// A nested SAM or CloudFormation template, packaged in turn.
    Template,
    /// One file uploaded as it is, named by an `s3://bucket/key` string (AppSync's locations).
    S3Uri,
}

/// Where a local path sits in the template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Site {
    /// `Resources.<id>.Properties.<property>`.
    Resource { id: String, property: &'static str },
    /// `Globals.<section>.<property>`.
    Globals {
        section: &'static str,
        property: &'static str,
    },
}

impl Site {
    /// The name a package and its records give the artifact: the logical id, or
    /// `Globals.<section>`.
    pub fn label(&self) -> String {
        match self {
            Site::Resource { id, .. } => id.clone(),
            Site::Globals { section, .. } => format!("Globals.{section}"),
        }
    }

    pub fn property(&self) -> &'static str {
        match self {
            Site::Resource { property, .. } | Site::Globals { property, .. } => property,
        }
    }
}

/// A local path of a template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LocalPath {
    pub site: Site,
    /// As written (or `.` for a function that names no code).
    pub path: String,
    pub packing: Packing,
    /// The S3 location's field names: (bucket, key).
    fields: (&'static str, &'static str),
}

/// (resource type, property, packing, bucket field, key field).
const PROPERTIES: &[(&str, &str, Packing, &str, &str)] = &[
    (
        "AWS::Serverless::Function",
        "CodeUri",
        Packing::Zip,
        "Bucket",
        "Key",
    ),
    (
        "AWS::Serverless::LayerVersion",
        "ContentUri",
        Packing::Zip,
        "Bucket",
        "Key",
    ),
    (
        "AWS::Lambda::Function",
        "Code",
        Packing::Zip,
        "S3Bucket",
        "S3Key",
    ),
    (
        "AWS::Lambda::LayerVersion",
        "Content",
        Packing::Zip,
        "S3Bucket",
        "S3Key",
    ),
    (
        "AWS::Serverless::Api",
        "DefinitionUri",
        Packing::File,
        "Bucket",
        "Key",
    ),
    (
        "AWS::Serverless::HttpApi",
        "DefinitionUri",
        Packing::File,
        "Bucket",
        "Key",
    ),
    (
        "AWS::Serverless::StateMachine",
        "DefinitionUri",
        Packing::File,
        "Bucket",
        "Key",
    ),
    (
        "AWS::Serverless::Application",
        "Location",
        Packing::Template,
        "",
        "",
    ),
    (
        "AWS::CloudFormation::Stack",
        "TemplateURL",
        Packing::Template,
        "",
        "",
    ),
    (
        "AWS::StepFunctions::StateMachine",
        "DefinitionS3Location",
        Packing::File,
        "Bucket",
        "Key",
    ),
    (
        "AWS::ApiGateway::RestApi",
        "BodyS3Location",
        Packing::File,
        "Bucket",
        "Key",
    ),
    (
        "AWS::ApiGatewayV2::Api",
        "BodyS3Location",
        Packing::File,
        "Bucket",
        "Key",
    ),
    (
        "AWS::Serverless::GraphQLApi",
        "SchemaUri",
        Packing::S3Uri,
        "",
        "",
    ),
    (
        "AWS::AppSync::GraphQLSchema",
        "DefinitionS3Location",
        Packing::S3Uri,
        "",
        "",
    ),
    (
        "AWS::AppSync::Resolver",
        "CodeS3Location",
        Packing::S3Uri,
        "",
        "",
    ),
    (
        "AWS::AppSync::Resolver",
        "RequestMappingTemplateS3Location",
        Packing::S3Uri,
        "",
        "",
    ),
    (
        "AWS::AppSync::Resolver",
        "ResponseMappingTemplateS3Location",
        Packing::S3Uri,
        "",
        "",
    ),
    (
        "AWS::AppSync::FunctionConfiguration",
        "CodeS3Location",
        Packing::S3Uri,
        "",
        "",
    ),
    (
        "AWS::AppSync::FunctionConfiguration",
        "RequestMappingTemplateS3Location",
        Packing::S3Uri,
        "",
        "",
    ),
    (
        "AWS::AppSync::FunctionConfiguration",
        "ResponseMappingTemplateS3Location",
        Packing::S3Uri,
        "",
        "",
    ),
];

/// `Globals` sections and the property of each that may hold a local path (the SAM
/// transform takes no `DefinitionUri` in `Globals`).
const GLOBALS: &[(&str, &str, Packing)] = &[("Function", "CodeUri", Packing::Zip)];

/// A string that names something on the local disk (not `s3://…` nor `http(s)://…`).
fn local(v: &Value) -> Option<&str> {
    let s = v.as_str()?;
    let remote = ["s3://", "https://", "http://"]
        .iter()
        .any(|p| s.get(..p.len()).is_some_and(|h| h.eq_ignore_ascii_case(p)));
    (!remote).then_some(s)
}

/// Whether a function of `template` takes `Globals.Function.CodeUri`: one naming no code of
/// its own (`CodeUri`, `InlineCode`, `ImageUri`) that is no container image. The template `sam
/// build` writes keeps `CodeUri: .` in `Globals` though every function names its own build
/// folder: zipping it packaged the whole service folder for nothing (41 MB in a probe).
fn globals_code_used(template: &Value) -> bool {
    let resources = template.get("Resources").and_then(Value::as_object);
    resources.into_iter().flatten().any(|(_, r)| {
        r.get("Type").and_then(Value::as_str) == Some("AWS::Serverless::Function")
            && names_no_code(r)
    })
}

/// Whether `function`, an `AWS::Serverless::Function` resource, names no code of its own
/// (`CodeUri`, `InlineCode`, `ImageUri`) and is no container image: it takes
/// `Globals.Function.CodeUri`, else the template's folder.
fn names_no_code(function: &Value) -> bool {
    let props = function.get("Properties");
    let names = |k: &str| props.and_then(|p| p.get(k)).is_some();
    let image = props
        .and_then(|p| p.get("PackageType"))
        .and_then(Value::as_str)
        == Some("Image");
    !image && !names("CodeUri") && !names("InlineCode") && !names("ImageUri")
}

/// Drops `Globals.Function.CodeUri` when no function takes it ([`globals_code_used`]), so that
/// it is neither packaged nor left a local path in the template; whether it did.
pub(crate) fn drop_unused_globals_code(template: &mut Value) -> bool {
    if globals_code_used(template) {
        return false;
    }
    template
        .pointer_mut("/Globals/Function")
        .and_then(Value::as_object_mut)
        .is_some_and(|f| f.remove("CodeUri").is_some())
}

/// Every local path of `template`, resources in template order, then `Globals` (but a
/// `Globals.Function.CodeUri` no function takes).
pub(crate) fn local_paths(template: &Value) -> Vec<LocalPath> {
    let mut out = Vec::new();
    let globals_used = globals_code_used(template);
    let globals_code = template
        .pointer("/Globals/Function/CodeUri")
        .filter(|v| !v.is_null())
        .is_some();
    let resources = template.get("Resources").and_then(Value::as_object);
    for (id, r) in resources.into_iter().flatten() {
        let Some(ty) = r.get("Type").and_then(Value::as_str) else {
            continue;
        };
        let props = r.get("Properties");
        for (t, prop, packing, bucket, key) in PROPERTIES {
            if ty != *t {
                continue;
            }
            let value = props.and_then(|p| p.get(*prop));
            let path = match value {
                Some(v) => local(v).map(str::to_string),
                // The SAM CLI packages the template's folder for a zip function that names no
                // code of its own and inherits none.
                None if ty == "AWS::Serverless::Function" && !globals_code => {
                    names_no_code(r).then(|| ".".to_string())
                }
                None => None,
            };
            if let Some(path) = path {
                out.push(LocalPath {
                    site: Site::Resource {
                        id: id.clone(),
                        property: prop,
                    },
                    path,
                    packing: *packing,
                    fields: (bucket, key),
                });
            }
        }
    }
    for (section, prop, packing) in GLOBALS {
        if *section == "Function" && !globals_used {
            continue;
        }
        let pointer = format!("/Globals/{section}/{prop}");
        if let Some(path) = template.pointer(&pointer).and_then(local) {
            out.push(LocalPath {
                site: Site::Globals {
                    section,
                    property: prop,
                },
                path: path.to_string(),
                packing: *packing,
                fields: ("Bucket", "Key"),
            });
        }
    }
    out
}

/// What a template holds that Ferry cannot package, each as (where, what to do): a
/// container-image function, a Glue job's local script. (An `AWS::Include` of a local file is
/// packaged: see [`local_includes`].)
pub(crate) fn unsupported(template: &Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let resources = template.get("Resources").and_then(Value::as_object);
    for (id, r) in resources.into_iter().flatten() {
        // `Fn::ForEach` (AWS::LanguageExtensions) makes resources only when CloudFormation
        // expands it: a local path of theirs would go as written.
        if id.starts_with("Fn::ForEach::") && looped_local_path(r) {
            out.push((
                id.clone(),
                "Ferry does not expand Fn::ForEach (AWS::LanguageExtensions), so the local paths of the resources it makes would not be packaged: write those resources out, or give their code as s3:// locations".into(),
            ));
            continue;
        }
        let ty = r.get("Type").and_then(Value::as_str).unwrap_or_default();
        let props = r.get("Properties");
        // A local path chosen by an intrinsic function (`CodeUri: !If [Alt, alt/, src/]`):
        // neither Ferry nor `sam package` packages it, and it would go as written.
        for (_, prop, ..) in PROPERTIES.iter().filter(|(t, ..)| *t == ty) {
            if let Some(chosen) = props.and_then(|p| p.get(*prop)).and_then(chosen_local_path) {
                out.push((
                    format!("{id}.{prop} ({chosen})"),
                    "Ferry packages a local path written as a plain string only: one inside an intrinsic function would deploy as written; give one path (a parameter or condition may choose what the code does, not where it is), or an s3:// location".into(),
                ));
            }
        }
        let image = props
            .and_then(|p| p.get("PackageType"))
            .and_then(Value::as_str)
            == Some("Image");
        if ty == "AWS::Serverless::Function"
            && image
            && props
                .and_then(|p| p.get("ImageUri"))
                .is_none_or(|u| local(u).is_some_and(|s| !s.contains(".dkr.ecr.")))
        {
            out.push((
                format!("{id} (PackageType: Image)"),
                "Ferry does not build or push container images: push the image yourself and give its ImageUri in the ECR registry".into(),
            ));
        }
        if ty == "AWS::Glue::Job"
            && let Some(script) = props
                .and_then(|p| p.pointer("/Command/ScriptLocation"))
                .and_then(local)
                // An empty location is a placeholder, not a file (CloudFormation judges it).
                .filter(|s| !s.is_empty())
        {
            out.push((
                format!("{id}.Command.ScriptLocation ({script})"),
                "Ferry does not package Glue scripts: upload it and give its s3:// location".into(),
            ));
        }
    }
    out
}

/// The intrinsic function (`Fn::If`, `Fn::Sub`, `Fn::Join`, …) that `v` is, when a string in
/// it reads as a local path (`Fn::If`'s branches, `Fn::Sub`'s text).
fn chosen_local_path(v: &Value) -> Option<&str> {
    let (name, args) = v.as_object().filter(|o| o.len() == 1)?.iter().next()?;
    let local_in = |x: &Value| match x {
        Value::String(_) => local(x).is_some(),
        other => chosen_local_path(other).is_some(),
    };
    let chosen = match name.as_str() {
        "Fn::If" => args
            .as_array()
            .is_some_and(|a| a.iter().skip(1).any(local_in)),
        // Text that starts with a local path of its own (`./${Name}`); one that starts with a
        // variable (`${TemplatesBaseUrl}/child.yaml`) may well be a URL.
        "Fn::Sub" => match args {
            Value::String(t) => local_start(t),
            Value::Array(a) => a.first().and_then(Value::as_str).is_some_and(local_start),
            _ => false,
        },
        "Fn::Join" => args
            .pointer("/1/0")
            .and_then(Value::as_str)
            .is_some_and(local_start),
        _ => false,
    };
    chosen.then_some(name.as_str())
}

/// Whether text built from variables starts with a local path: some literal text before the
/// first variable, which is no URL's start.
fn local_start(text: &str) -> bool {
    let literal = text.split("${").next().unwrap_or_default();
    !literal.is_empty() && local(&Value::String(literal.to_string())).is_some()
}

/// Whether the resources an `Fn::ForEach` makes (its third item, `{ "<name>${X}": {…} }`) name
/// a local path of [`PROPERTIES`].
fn looped_local_path(for_each: &Value) -> bool {
    let Some(made) = for_each.get(2).and_then(Value::as_object) else {
        return false;
    };
    made.iter().any(|(key, r)| {
        // A loop inside the loop.
        if key.starts_with("Fn::ForEach::") {
            return looped_local_path(r);
        }
        let ty = r.get("Type").and_then(Value::as_str).unwrap_or_default();
        // A function naming no code takes Globals' or the template's folder: local too.
        (ty == "AWS::Serverless::Function" && names_no_code(r))
            || PROPERTIES
                .iter()
                .filter(|(t, ..)| *t == ty)
                .any(|(_, prop, ..)| {
                    r.pointer(&format!("/Properties/{prop}"))
                        .is_some_and(|v| local(v).is_some() || chosen_local_path(v).is_some())
                })
    })
}

/// What a nested template holds that packaging refuses, as (where, what to do): what Ferry
/// cannot package ([`unsupported`]) and, in a service without a build (`built` false), what
/// only a build makes deployable ([`needs_build`]).
pub(crate) fn refused_nested(template: &Value, built: bool) -> Vec<(String, String)> {
    let mut out = unsupported(template);
    if !built {
        out.extend(needs_build(template));
    }
    out
}

/// The functions and layers a template asks the SAM CLI to build (`Metadata.BuildMethod`:
/// `makefile`, `esbuild`, a runtime's builder), each as (where, what to do). Ferry zips the
/// folder `CodeUri` (`ContentUri`) names as it is, so without a build of the service's own such
/// a function would deploy unbuilt.
pub(crate) fn needs_build(template: &Value) -> Vec<(String, String)> {
    let resources = template.get("Resources").and_then(Value::as_object);
    resources
        .into_iter()
        .flatten()
        .filter(|(_, r)| {
            matches!(
                r.get("Type").and_then(Value::as_str),
                Some(
                    "AWS::Serverless::Function"
                        | "AWS::Serverless::LayerVersion"
                        | "AWS::Lambda::Function"
                        | "AWS::Lambda::LayerVersion"
                )
            )
        })
        .filter_map(|(id, r)| {
            let method = r.pointer("/Metadata/BuildMethod")?.as_str()?;
            Some((
                format!("{id}.Metadata.BuildMethod ({method})"),
                "the SAM CLI builds it (`sam build`), while Ferry packages the folder its CodeUri names as it is, so it would deploy unbuilt: give the service build = [\"sam\", \"build\"] and built-template = \".aws-sam/build/template.yaml\" under [package] (Ferry then packages what sam build wrote), or a build that writes the built code where its CodeUri points".to_string(),
            ))
        })
        .collect()
}

/// The project files of compiled languages whose runtimes run only what a build makes: for a
/// runtime's prefix, the names (or, starting with `*`, the extensions) of the files that mark a
/// folder as a project's source.
const PROJECT_FILES: &[(&str, &[&str])] = &[
    ("java", &["pom.xml", "build.gradle", "build.gradle.kts"]),
    ("dotnet", &["*.csproj", "*.fsproj", "*.vbproj"]),
    ("go1.x", &["go.mod"]),
    ("provided", &["go.mod", "Cargo.toml"]),
];

/// Where a function's code is the source of a compiled language's project, which the SAM CLI
/// builds (`sam build`) and Ferry's zip of the folder would deploy as it is, to fail when it
/// runs: `l`, a `CodeUri` of `template` naming the folder `folder` (on disk), holds a project
/// file at its top (`pom.xml`, `build.gradle`, a `*.csproj`, `go.mod`, …) and the function's
/// `Runtime` (its own, else `Globals.Function`'s) is one that runs only built code (`java*`,
/// `dotnet*`, `go1.x`, and `provided*` unless the folder already holds its `bootstrap`). As
/// (where, what to do), like [`needs_build`].
pub(crate) fn compiled_source(
    template: &Value,
    l: &LocalPath,
    folder: &std::path::Path,
) -> Option<(String, String)> {
    if l.site.property() != "CodeUri" {
        return None;
    }
    // The function's own value (one that only a deploy resolves, `!Ref`, is not judged),
    // else the `Globals`'.
    let property = |name: &str| -> Option<&str> {
        let own = match &l.site {
            Site::Resource { id, .. } => template["Resources"][id]["Properties"].get(name),
            Site::Globals { .. } => None,
        };
        match own {
            Some(v) => v.as_str(),
            None => template["Globals"]["Function"][name].as_str(),
        }
    };
    let runtime = property("Runtime")?;
    let (_, marks) = PROJECT_FILES.iter().find(|(p, _)| runtime.starts_with(p))?;
    // What the runtime runs, already built in the folder: a `provided` function's `bootstrap`,
    // a `go1.x` function's handler binary.
    let built = match runtime {
        r if r.starts_with("provided") => Some("bootstrap"),
        "go1.x" => property("Handler"),
        _ => None,
    };
    if built.is_some_and(|b| folder.join(b).is_file()) {
        return None;
    }
    let mut names: Vec<String> = std::fs::read_dir(folder)
        .ok()?
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .collect();
    names.sort();
    let file = names.into_iter().find(|n| {
        marks.iter().any(|m| match m.strip_prefix('*') {
            Some(ext) => n.ends_with(ext) && n.len() > ext.len(),
            None => n == m,
        })
    })?;
    Some((
        format!(
            "{}.CodeUri ({}/{file}, runtime {runtime})",
            l.site.label(),
            l.path.trim_end_matches('/')
        ),
        format!(
            "the SAM CLI compiles that project (`sam build`), while Ferry packages the folder as it is, so it would deploy source a {runtime} function cannot run: give the service build = [\"sam\", \"build\"] and built-template = \".aws-sam/build/template.yaml\" under [package] (Ferry then packages what sam build wrote), or a build that writes the built code where its CodeUri points"
        ),
    ))
}

/// An `AWS::Include` of a local file: `Fn::Transform: {Name: AWS::Include, Parameters:
/// {Location: <path>}}`. CloudFormation takes only a literal `s3://` location there, which a
/// package made once for every stage (each with its own bucket) cannot name; so a package puts
/// the file's content in its place, which is what the transform does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LocalInclude {
    /// Where, for messages: `Resources.Api.Properties.DefinitionBody`.
    pub at: String,
    /// The JSON pointer of the mapping that holds `Fn::Transform` (what the content replaces).
    pub pointer: String,
    /// As written, relative to the template's folder.
    pub path: String,
}

impl LocalInclude {
    /// Where, for messages: `Resources.Api.Properties.DefinitionBody (AWS::Include)`.
    pub fn label(&self) -> String {
        format!("{} (AWS::Include)", self.at)
    }
}

/// Every `AWS::Include` of a local file in `template`, in document order.
pub(crate) fn local_includes(template: &Value) -> Vec<LocalInclude> {
    let mut out = Vec::new();
    find_includes(template, "", "", &mut out);
    out
}

fn find_includes(v: &Value, at: &str, pointer: &str, out: &mut Vec<LocalInclude>) {
    match v {
        Value::Object(map) => {
            if let Some(t) = map.get("Fn::Transform")
                && t.get("Name").and_then(Value::as_str) == Some("AWS::Include")
                && let Some(path) = t.pointer("/Parameters/Location").and_then(local)
            {
                out.push(LocalInclude {
                    at: at.to_string(),
                    pointer: pointer.to_string(),
                    path: path.to_string(),
                });
                return;
            }
            for (k, child) in map {
                let escaped = k.replace('~', "~0").replace('/', "~1");
                find_includes(
                    child,
                    &if at.is_empty() {
                        k.clone()
                    } else {
                        format!("{at}.{k}")
                    },
                    &format!("{pointer}/{escaped}"),
                    out,
                );
            }
        }
        Value::Array(items) => {
            for (n, child) in items.iter().enumerate() {
                find_includes(child, &format!("{at}[{n}]"), &format!("{pointer}/{n}"), out);
            }
        }
        _ => {}
    }
}

/// Points a local path at `key` in the bucket given by [`BUCKET_PARAMETER`]. An application
/// becomes the nested stack SAM would make of it, reading its packaged template from the bucket.
pub(crate) fn point_at(
    template: &mut Value,
    at: &LocalPath,
    key: &str,
) -> Result<(), TemplateError> {
    let location =
        |fields: (&str, &str)| json!({ fields.0: { "Ref": BUCKET_PARAMETER }, fields.1: key });
    match (&at.site, at.packing) {
        (Site::Resource { id, property }, Packing::Template) if *property == "TemplateURL" => {
            let props = properties(template, id)?;
            props.insert("TemplateURL".into(), template_url(key));
            pass_bucket(props, id)
        }
        (Site::Resource { id, property }, Packing::S3Uri) => {
            let props = properties(template, id)?;
            props.insert(
                property.to_string(),
                json!({ "Fn::Sub": format!("s3://${{{BUCKET_PARAMETER}}}/{key}") }),
            );
            Ok(())
        }
        (Site::Globals { .. }, Packing::S3Uri) => Ok(()),
        (Site::Resource { id, .. }, Packing::Template) => to_nested_stack(template, id, key),
        (Site::Resource { id, property }, _) => {
            let props = properties(template, id)?;
            props.insert(property.to_string(), location(at.fields));
            Ok(())
        }
        (Site::Globals { section, property }, _) => {
            let section = template
                .pointer_mut(&format!("/Globals/{section}"))
                .and_then(Value::as_object_mut)
                .ok_or_else(|| {
                    TemplateError::Parse(format!("Globals.{section} is not a mapping"))
                })?;
            section.insert(property.to_string(), location(at.fields));
            Ok(())
        }
    }
}

/// Where CloudFormation reads a nested template packaged under `key`.
fn template_url(key: &str) -> Value {
    json!({ "Fn::Sub": format!("{}{key}", template_url_prefix()) })
}

/// What [`template_url`] writes before the key.
fn template_url_prefix() -> String {
    format!("https://s3.${{AWS::Region}}.${{AWS::URLSuffix}}/${{{BUCKET_PARAMETER}}}/")
}

/// The key of the packaged template a nested stack (`AWS::CloudFormation::Stack`) reads, as
/// packaging points it there; `None` for any other resource, or a stack given another URL.
pub fn nested_template_key(resource: &Value) -> Option<&str> {
    if resource.get("Type")?.as_str()? != "AWS::CloudFormation::Stack" {
        return None;
    }
    resource
        .pointer("/Properties/TemplateURL/Fn::Sub")?
        .as_str()?
        .strip_prefix(&template_url_prefix())
}

/// Points a nested stack packaging pointed at a packaged template (see
/// [`nested_template_key`]) at the one under `key` instead; whether it was one.
pub fn point_nested_template(resource: &mut Value, key: &str) -> bool {
    if nested_template_key(resource).is_none() {
        return false;
    }
    resource["Properties"]["TemplateURL"] = template_url(key);
    true
}

/// Passes the artifact bucket down to a nested stack, whose own packaged template declares it.
fn pass_bucket(props: &mut Map<String, Value>, id: &str) -> Result<(), TemplateError> {
    let params = props.entry("Parameters").or_insert_with(|| json!({}));
    let Some(params) = params.as_object_mut() else {
        return Err(TemplateError::Parse(format!(
            "{id}.Properties.Parameters is not a mapping"
        )));
    };
    params.insert(BUCKET_PARAMETER.into(), json!({ "Ref": BUCKET_PARAMETER }));
    Ok(())
}

fn properties<'t>(
    template: &'t mut Value,
    id: &str,
) -> Result<&'t mut Map<String, Value>, TemplateError> {
    let r = template
        .pointer_mut(&format!(
            "/Resources/{}",
            id.replace('~', "~0").replace('/', "~1")
        ))
        .and_then(Value::as_object_mut)
        .ok_or_else(|| TemplateError::Parse(format!("resource {id} is not a mapping")))?;
    r.entry("Properties")
        .or_insert_with(|| json!({}))
        .as_object_mut()
        .ok_or_else(|| TemplateError::Parse(format!("{id}.Properties is not a mapping")))
}

/// `AWS::Serverless::Application` `id` → `AWS::CloudFormation::Stack` reading `key` from the
/// bucket, as the SAM transform itself converts an application with a template URL: `Location`
/// → `TemplateURL`; `Parameters`, `NotificationARNs`, `TimeoutInMinutes` kept; `Tags` (a map)
/// → a list of `Key` / `Value`; the bucket passed to the nested template.
fn to_nested_stack(template: &mut Value, id: &str, key: &str) -> Result<(), TemplateError> {
    let props = properties(template, id)?;
    let mut stack = Map::new();
    stack.insert("TemplateURL".into(), template_url(key));
    let mut parameters = match props.get("Parameters") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(p)) => p.clone(),
        Some(_) => {
            return Err(TemplateError::Parse(format!(
                "{id}.Properties.Parameters is not a mapping"
            )));
        }
    };
    parameters.insert(BUCKET_PARAMETER.into(), json!({ "Ref": BUCKET_PARAMETER }));
    stack.insert("Parameters".into(), Value::Object(parameters));
    for kept in ["NotificationARNs", "TimeoutInMinutes"] {
        if let Some(v) = props.get(kept) {
            stack.insert(kept.into(), v.clone());
        }
    }
    match props.get("Tags") {
        None | Some(Value::Null) => {}
        Some(Value::Object(tags)) => {
            let list: Vec<Value> = tags
                .iter()
                .map(|(k, v)| json!({ "Key": k, "Value": v }))
                .collect();
            stack.insert("Tags".into(), Value::Array(list));
        }
        Some(_) => {
            return Err(TemplateError::Parse(format!(
                "{id}.Properties.Tags is not a mapping of tag names to values"
            )));
        }
    }
    *props = stack;
    let r = template
        .pointer_mut(&format!(
            "/Resources/{}",
            id.replace('~', "~0").replace('/', "~1")
        ))
        .and_then(Value::as_object_mut)
        .expect("properties() found the resource");
    r.insert("Type".into(), json!("AWS::CloudFormation::Stack"));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::template::parse;

    const TEMPLATE: &str = r#"
Transform: AWS::Serverless-2016-10-31
Globals:
  Function:
    Runtime: python3.12
Resources:
  Worker:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: src/worker
      Handler: app.handler
  Inline:
    Type: AWS::Serverless::Function
    Properties:
      InlineCode: "def handler(e, c): pass"
      Handler: index.handler
  Image:
    Type: AWS::Serverless::Function
    Properties:
      PackageType: Image
      ImageUri: 123.dkr.ecr.us-east-1.amazonaws.com/x:1
  Bare:
    Type: AWS::Serverless::Function
    Properties:
      Handler: app.handler
  Remote:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: s3://bucket/code.zip
  Deps:
    Type: AWS::Serverless::LayerVersion
    Properties:
      ContentUri: layers/deps
  Flow:
    Type: AWS::Serverless::StateMachine
    Properties:
      DefinitionUri: statemachine/flow.asl.json
  Child:
    Type: AWS::Serverless::Application
    Condition: IsProd
    Properties:
      Location: nested/app.yaml
      Parameters:
        Name: !Ref AWS::StackName
      Tags:
        team: shop
  Plain:
    Type: AWS::Lambda::Function
    Properties:
      Code: legacy
  Table:
    Type: AWS::DynamoDB::Table
"#;

    /// The template `sam build` writes keeps `Globals.Function.CodeUri: .` while every function
    /// names its own build folder: not packaged (it zipped the whole service folder), and
    /// dropped from the template. One a function takes is packaged as before.
    #[test]
    fn a_globals_code_uri_no_function_takes_is_dropped() {
        let built = "Transform: AWS::Serverless-2016-10-31\nGlobals:\n  Function:\n    CodeUri: .\n    Runtime: python3.12\nResources:\n  A:\n    Type: AWS::Serverless::Function\n    Properties:\n      CodeUri: A\n      Handler: app.handler\n  B:\n    Type: AWS::Serverless::Function\n    Properties:\n      InlineCode: 'def handler(e, c): pass'\n      Handler: index.handler\n";
        let mut t = parse(built).unwrap();
        let paths: Vec<String> = local_paths(&t).iter().map(|l| l.site.label()).collect();
        assert_eq!(paths, ["A"]);
        assert!(drop_unused_globals_code(&mut t));
        assert!(t.pointer("/Globals/Function/CodeUri").is_none());
        assert_eq!(t["Globals"]["Function"]["Runtime"], "python3.12");

        let inherits = built.replace("      InlineCode: 'def handler(e, c): pass'\n", "");
        let mut t = parse(&inherits).unwrap();
        let paths: Vec<String> = local_paths(&t).iter().map(|l| l.site.label()).collect();
        assert_eq!(paths, ["A", "Globals.Function"]);
        assert!(!drop_unused_globals_code(&mut t));
        assert_eq!(t["Globals"]["Function"]["CodeUri"], ".");
    }

    #[test]
    fn every_local_path_is_found_and_remote_ones_are_not() {
        let t = parse(TEMPLATE).unwrap();
        assert!(is_sam(&t));
        let paths = local_paths(&t);
        let found: Vec<(String, &str, &str, Packing)> = paths
            .iter()
            .map(|l| {
                (
                    l.site.label(),
                    l.site.property(),
                    l.path.as_str(),
                    l.packing,
                )
            })
            .collect();
        assert_eq!(
            found,
            [
                ("Worker".into(), "CodeUri", "src/worker", Packing::Zip),
                ("Bare".into(), "CodeUri", ".", Packing::Zip),
                ("Deps".into(), "ContentUri", "layers/deps", Packing::Zip),
                (
                    "Flow".into(),
                    "DefinitionUri",
                    "statemachine/flow.asl.json",
                    Packing::File
                ),
                (
                    "Child".into(),
                    "Location",
                    "nested/app.yaml",
                    Packing::Template
                ),
                ("Plain".into(), "Code", "legacy", Packing::Zip),
            ]
        );
    }

    #[test]
    fn a_function_inherits_its_code_from_globals() {
        let t = parse(
            "Transform: [AWS::Serverless-2016-10-31]\nGlobals:\n  Function:\n    CodeUri: src\nResources:\n  A:\n    Type: AWS::Serverless::Function\n  B:\n    Type: AWS::Serverless::Function\n    Properties:\n      CodeUri: other\n",
        )
        .unwrap();
        assert!(is_sam(&t));
        let found: Vec<String> = local_paths(&t)
            .iter()
            .map(|l| format!("{}:{}", l.site.label(), l.path))
            .collect();
        assert_eq!(found, ["B:other", "Globals.Function:src"]);
    }

    #[test]
    fn paths_point_at_the_bucket_and_an_application_becomes_a_stack() {
        let mut t = parse(TEMPLATE).unwrap();
        for (n, l) in local_paths(&t).iter().enumerate() {
            point_at(&mut t, l, &format!("p/s/{n}")).unwrap();
        }
        assert_eq!(
            t["Resources"]["Worker"]["Properties"]["CodeUri"],
            json!({"Bucket": {"Ref": "FerryArtifactBucket"}, "Key": "p/s/0"})
        );
        assert_eq!(
            t["Resources"]["Bare"]["Properties"]["CodeUri"]["Key"],
            json!("p/s/1")
        );
        assert_eq!(
            t["Resources"]["Plain"]["Properties"]["Code"],
            json!({"S3Bucket": {"Ref": "FerryArtifactBucket"}, "S3Key": "p/s/5"})
        );
        assert_eq!(
            t["Resources"]["Child"],
            json!({
                "Type": "AWS::CloudFormation::Stack",
                "Condition": "IsProd",
                "Properties": {
                    "TemplateURL": {"Fn::Sub": "https://s3.${AWS::Region}.${AWS::URLSuffix}/${FerryArtifactBucket}/p/s/4"},
                    "Parameters": {"Name": {"Ref": "AWS::StackName"}, "FerryArtifactBucket": {"Ref": "FerryArtifactBucket"}},
                    "Tags": [{"Key": "team", "Value": "shop"}],
                }
            })
        );
    }

    #[test]
    fn only_the_serverless_transform_makes_a_sam_template() {
        for (text, sam) in [
            ("Resources: {}\n", false),
            (
                "Transform: AWS::Serverless-2016-10-31\nResources: {}\n",
                true,
            ),
            ("Transform: AWS::LanguageExtensions\nResources: {}\n", false),
            (
                "Transform: [AWS::LanguageExtensions, AWS::Serverless-2016-10-31]\nResources: {}\n",
                true,
            ),
        ] {
            assert_eq!(is_sam(&parse(text).unwrap()), sam, "{text}");
        }
    }
}
