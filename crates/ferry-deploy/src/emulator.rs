//! What a deploy to the local emulator (`--local`) does that CloudFormation does itself on AWS:
//! expanding SAM templates, nested ones included.
//!
//! The emulator does not run the SAM transform, and would create a SAM stack with its SAM
//! resources silently left out; it reads a nested template from the bucket as it is. So the
//! service's packaged template is expanded before the engine sees it, and so is each nested
//! template that is SAM: with the parameters its parent resource passes it, put in the bucket
//! beside the packaged one under a key of its own (`<key>.emulator-<sha>.json`), the resource
//! above it pointed there. A plain nested template above a SAM one is put there again for the
//! same reason. The packaged bytes, which AWS gets and records hash, are not changed.

use std::collections::BTreeMap;

use ferry_manifest::Service;
use ferry_package::ServicePackage;
use ferry_stacks::TemplateSource;
use serde_json::Value;

use crate::run::{DeployContext, ExpandSam, template_text};
use crate::{Prepared, ServiceError};

/// One nested template as a stack of it gets it: its packaged key and the parameters its
/// parent passes; the templates it nests in turn (resource → node).
struct Node {
    key: String,
    parameters: BTreeMap<String, String>,
    template: Value,
    children: Vec<(String, usize)>,
    /// The key the emulator deploys it from, once put there (`None`: the packaged one).
    moved: Option<String>,
}

/// `template` expanded by `expander` (read from the package when it was to go by URL), its
/// nested templates expanded and put in the bucket (see the module's documentation).
pub(crate) async fn expand_sam(
    ctx: &DeployContext<'_>,
    service: &Service,
    packaged: Option<&ServicePackage>,
    template: TemplateSource,
    parameters: &BTreeMap<String, String>,
    expander: &dyn ExpandSam,
) -> Result<TemplateSource, ServiceError> {
    let text = template_text(ctx, service, packaged, &template)?;
    let err = |message: String| ServiceError::Expand {
        service: service.name.clone(),
        message,
    };
    let mut top = ferry_package::parse_template(&text).map_err(|e| err(e.to_string()))?;
    let expand_all = |requests: &[(&Value, &BTreeMap<String, String>)]| {
        let run = || expander.expand_all(requests);
        // The translator is a child process: on a multi-threaded runtime, let other services'
        // jobs move to another worker meanwhile.
        match tokio::runtime::Handle::current().runtime_flavor() {
            tokio::runtime::RuntimeFlavor::MultiThread => tokio::task::block_in_place(run),
            _ => run(),
        }
        .into_iter()
        .map(|r| r.map_err(|e| err(ctx.masker.mask(&e))))
        .collect::<Vec<_>>()
    };
    if let (Some(p), Some(sp)) = (ctx.package, packaged) {
        // Parents before children: each node's parameters come from its parent's.
        let mut nodes: Vec<Node> = Vec::new();
        let top_children = nest(p, sp, &top, parameters, &mut nodes, &err).await?;
        let mut i = 0;
        while i < nodes.len() {
            // Out of the list while `nest` adds to it; put back after.
            let template = std::mem::take(&mut nodes[i].template);
            let parameters = nodes[i].parameters.clone();
            let children = nest(p, sp, &template, &parameters, &mut nodes, &err).await?;
            nodes[i].template = template;
            nodes[i].children = children;
            i += 1;
        }
        // Children before parents, a level at a time: each points at what its children moved
        // to, and the SAM templates of a level are expanded in one run of the translator (a
        // template nested under nine others with their own parameters is nine expansions).
        let order = post_order(&top_children, &nodes);
        let mut height = vec![0usize; nodes.len()];
        for &i in &order {
            height[i] = nodes[i]
                .children
                .iter()
                .map(|(_, c)| height[*c] + 1)
                .max()
                .unwrap_or(0);
        }
        let mut put_keys = std::collections::BTreeSet::new();
        for level in 0..=height.iter().copied().max().unwrap_or(0) {
            let here: Vec<usize> = order
                .iter()
                .copied()
                .filter(|&i| height[i] == level)
                .collect();
            let mut sam = Vec::new();
            let mut bodies: Vec<(usize, String)> = Vec::new();
            for &i in &here {
                let children = std::mem::take(&mut nodes[i].children);
                let mut template = std::mem::take(&mut nodes[i].template);
                let repointed = repoint(&mut template, &children, &nodes);
                if ferry_package::is_sam(&template) {
                    sam.push(i);
                } else if repointed {
                    let body = serde_json::to_string(&template).map_err(|e| err(e.to_string()))?;
                    bodies.push((i, body));
                }
                nodes[i].template = template;
            }
            let requests: Vec<(&Value, &BTreeMap<String, String>)> = sam
                .iter()
                .map(|&i| (&nodes[i].template, &nodes[i].parameters))
                .collect();
            for (&i, body) in sam.iter().zip(expand_all(&requests)) {
                bodies.push((i, body?));
            }
            for (i, body) in bodies {
                let moved = moved_key(&nodes[i].key, &body);
                // The same body (a template nested twice with the same result) is put once.
                if put_keys.insert(moved.clone()) {
                    put(p, &moved, body, &err).await?;
                }
                nodes[i].moved = Some(moved);
            }
        }
        repoint(&mut top, &top_children, &nodes);
    }
    let mut top = expand_all(&[(&top, parameters)]);
    Ok(TemplateSource::Body(top.remove(0)?))
}

/// Where an expanded nested template `body` of the packaged `key` is put: beside it, under a key
/// of its own.
fn moved_key(key: &str, body: &str) -> String {
    format!(
        "{key}.emulator-{}.json",
        &ferry_package::sha256_hex(body.as_bytes())[..16]
    )
}

/// The nested templates `template` names (packaged artifacts of the service), each as a node
/// of `nodes` with the parameters its resource passes: a literal, or a `Ref` to one of
/// `parameters`. A template nested twice with the same parameters is one node.
async fn nest(
    p: &Prepared,
    sp: &ServicePackage,
    template: &Value,
    parameters: &BTreeMap<String, String>,
    nodes: &mut Vec<Node>,
    err: &impl Fn(String) -> ServiceError,
) -> Result<Vec<(String, usize)>, ServiceError> {
    let mut children = Vec::new();
    let resources = template.get("Resources").and_then(Value::as_object);
    for (id, r) in resources.into_iter().flatten() {
        let Some(key) = ferry_package::nested_template_key(r).map(str::to_string) else {
            continue;
        };
        let Some(artifact) = sp.artifacts.iter().find(|a| a.key == key) else {
            continue;
        };
        let passed: BTreeMap<String, String> = r
            .pointer("/Properties/Parameters")
            .and_then(Value::as_object)
            .into_iter()
            .flatten()
            .filter_map(|(k, v)| {
                let value = match ferry_package::literal_value(v) {
                    Some(value) => value,
                    None => parameters.get(v.get("Ref")?.as_str()?)?.clone(),
                };
                Some((k.clone(), value))
            })
            .collect();
        if let Some(i) = nodes
            .iter()
            .position(|n| n.key == key && n.parameters == passed)
        {
            children.push((id.clone(), i));
            continue;
        }
        let text = match std::fs::read_to_string(artifact.local_path(&p.dir)) {
            Ok(text) => text,
            // A stored package (a promote, a rollback) may not have its files here.
            Err(_) => fetch(p, &key, err).await?,
        };
        let parsed = ferry_package::parse_template(&text).map_err(|e| {
            err(format!(
                "its nested template {} ({id}): {e}",
                artifact.source
            ))
        })?;
        nodes.push(Node {
            key,
            parameters: passed,
            template: parsed,
            children: Vec::new(),
            moved: None,
        });
        children.push((id.clone(), nodes.len() - 1));
    }
    Ok(children)
}

/// The nodes below `top`, each after every node it nests (a node nested twice comes once).
fn post_order(top: &[(String, usize)], nodes: &[Node]) -> Vec<usize> {
    fn visit(i: usize, nodes: &[Node], seen: &mut [bool], order: &mut Vec<usize>) {
        if std::mem::replace(&mut seen[i], true) {
            return;
        }
        for (_, child) in &nodes[i].children {
            visit(*child, nodes, seen, order);
        }
        order.push(i);
    }
    let mut seen = vec![false; nodes.len()];
    let mut order = Vec::with_capacity(nodes.len());
    for (_, child) in top {
        visit(*child, nodes, &mut seen, &mut order);
    }
    order
}

/// Points each child resource of `template` that moved at its new key; whether any did.
fn repoint(template: &mut Value, children: &[(String, usize)], nodes: &[Node]) -> bool {
    let mut any = false;
    for (id, i) in children {
        let Some(moved) = &nodes[*i].moved else {
            continue;
        };
        if let Some(resource) = template
            .get_mut("Resources")
            .and_then(|r| r.get_mut(id.as_str()))
        {
            any |= ferry_package::point_nested_template(resource, moved);
        }
    }
    any
}

/// Puts `body` in the bucket under `moved` (see [`moved_key`]).
async fn put(
    p: &Prepared,
    moved: &str,
    body: String,
    err: &impl Fn(String) -> ServiceError,
) -> Result<(), ServiceError> {
    let Some(bucket) = &p.bucket else {
        return Err(err(format!(
            "its nested template {moved} is read from the artifact bucket, and the package names none"
        )));
    };
    p.s3.put_object()
        .bucket(bucket)
        .key(moved)
        .body(aws_sdk_s3::primitives::ByteStream::from(body.into_bytes()))
        .send()
        .await
        .map_err(|e| {
            err(format!(
                "its expanded nested template could not be put in s3://{bucket}/{moved}: {}",
                ferry_aws::explain("PutObject", &e)
            ))
        })?;
    Ok(())
}

/// A nested template the package folder does not hold, from the bucket it was uploaded to.
async fn fetch(
    p: &Prepared,
    key: &str,
    err: &impl Fn(String) -> ServiceError,
) -> Result<String, ServiceError> {
    let Some(bucket) = &p.bucket else {
        return Err(err(format!(
            "its nested template {key} is neither in the package folder nor in a bucket"
        )));
    };
    let got = p
        .s3
        .get_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .map_err(|e| {
            err(format!(
                "its nested template is not in the package folder, and s3://{bucket}/{key} could not be read: {}",
                ferry_aws::explain("GetObject", &e)
            ))
        })?;
    let bytes = got.body.collect().await.map_err(|e| {
        err(format!(
            "its nested template s3://{bucket}/{key} could not be read: {e}"
        ))
    })?;
    String::from_utf8(bytes.into_bytes().to_vec()).map_err(|_| {
        err(format!(
            "its nested template s3://{bucket}/{key} is not UTF-8"
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn stack(key: &str) -> Value {
        json!({
            "Type": "AWS::CloudFormation::Stack",
            "Properties": {"TemplateURL": {"Fn::Sub": format!("https://s3.${{AWS::Region}}.${{AWS::URLSuffix}}/${{FerryArtifactBucket}}/{key}")}}
        })
    }

    #[test]
    fn a_nested_stack_is_found_by_its_key_and_pointed_elsewhere() {
        assert_eq!(
            ferry_package::nested_template_key(&stack("shop/app/abc.template.json")),
            Some("shop/app/abc.template.json")
        );
        assert_eq!(
            ferry_package::nested_template_key(&json!({"Type": "AWS::SQS::Queue"})),
            None
        );
        // A template given by another URL is not the package's.
        let theirs = json!({"Type": "AWS::CloudFormation::Stack", "Properties": {"TemplateURL": "https://example.com/t.yaml"}});
        assert_eq!(ferry_package::nested_template_key(&theirs), None);

        let mut t = json!({"Resources": {"A/b": stack("k1"), "C": stack("k2")}});
        let nodes = vec![
            Node {
                key: "k1".into(),
                parameters: BTreeMap::new(),
                template: json!({}),
                children: Vec::new(),
                moved: Some("k1.emulator-x.json".into()),
            },
            Node {
                key: "k2".into(),
                parameters: BTreeMap::new(),
                template: json!({}),
                children: Vec::new(),
                moved: None,
            },
        ];
        assert!(repoint(
            &mut t,
            &[("A/b".into(), 0), ("C".into(), 1)],
            &nodes
        ));
        assert_eq!(
            ferry_package::nested_template_key(&t["Resources"]["A/b"]),
            Some("k1.emulator-x.json")
        );
        assert_eq!(
            ferry_package::nested_template_key(&t["Resources"]["C"]),
            Some("k2")
        );
    }
}
