use std::collections::BTreeMap;

use ferry_manifest::{Reference, Service, Stage, Template};

use crate::Outputs;

/// Why a parameter could not be resolved; each names what is missing and what exists.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ResolveError {
    #[error(
        "parameter {parameter} of `{service}` reads `{var}`, which stage `{stage}` does not define; add it under [stages.{stage}] variables in ferry.toml (or [stages.\"*\"] for preview stages)"
    )]
    MissingVar {
        service: String,
        parameter: String,
        stage: String,
        var: String,
    },
    #[error(
        "parameter {parameter} of `{service}` needs output `{key}` of `{from}`, which has none by that name; its outputs are: {available}"
    )]
    MissingOutput {
        service: String,
        parameter: String,
        from: String,
        key: String,
        available: String,
    },
    #[error(
        "parameter {parameter} of `{service}` needs outputs of `{from}`{stage}, which has no stack yet; deploy it first"
    )]
    NoStack {
        service: String,
        parameter: String,
        from: String,
        stage: String,
    },
    #[error(
        "parameter {parameter} of `{service}` needs SSM parameter `{name}`, which does not exist; {}",
        ferry_manifest::create_advice(.name, .stage)
    )]
    MissingSsm {
        service: String,
        parameter: String,
        name: String,
        stage: String,
    },
}

/// Where values come from.
pub struct Lookups<'a> {
    pub project: &'a str,
    pub stage: &'a Stage,
    /// Outputs of a service in this stage (`None`: no stack), or in another stage.
    pub outputs: &'a dyn Fn(Option<&str>, &str) -> Option<Outputs>,
    /// An SSM parameter's value by absolute name.
    pub ssm: &'a dyn Fn(&str) -> Option<String>,
}

fn plain(r: &Reference, service: &str, l: &Lookups<'_>) -> Option<String> {
    ferry_manifest::run_value(r, l.project, service, &l.stage.id, &l.stage.config)
}

/// One value (a parameter of `service`, named `parameter` for messages).
pub fn resolve_value(
    template: &Template,
    service: &str,
    parameter: &str,
    l: &Lookups<'_>,
) -> Result<String, ResolveError> {
    template.render(|r| {
        if let Some(v) = plain(r, service, l) {
            return Ok(v);
        }
        match r {
            Reference::Var(v) => Err(ResolveError::MissingVar {
                service: service.to_string(),
                parameter: parameter.to_string(),
                stage: l.stage.name.clone(),
                var: v.clone(),
            }),
            Reference::Output {
                stage,
                service: from,
                key,
            } => {
                let stage = match stage {
                    None => None,
                    Some(s) => Some(
                        ferry_manifest::Workspace::output_stage(l.stage, s).ok_or_else(|| {
                            ResolveError::MissingVar {
                                service: service.to_string(),
                                parameter: parameter.to_string(),
                                stage: l.stage.name.clone(),
                                var: s.to_string(),
                            }
                        })?,
                    ),
                };
                let Some(outputs) = (l.outputs)(stage.as_deref(), from) else {
                    return Err(ResolveError::NoStack {
                        service: service.to_string(),
                        parameter: parameter.to_string(),
                        from: from.clone(),
                        stage: stage
                            .as_ref()
                            .map(|s| format!(" in stage `{s}`"))
                            .unwrap_or_default(),
                    });
                };
                outputs
                    .get(key)
                    .cloned()
                    .ok_or_else(|| ResolveError::MissingOutput {
                        service: service.to_string(),
                        parameter: parameter.to_string(),
                        from: from.clone(),
                        key: key.clone(),
                        available: if outputs.is_empty() {
                            "(none)".into()
                        } else {
                            outputs.keys().cloned().collect::<Vec<_>>().join(", ")
                        },
                    })
            }
            Reference::Ssm { name } => {
                let name = name
                    .render(|n| Ok::<_, ResolveError>(plain(n, service, l).unwrap_or_default()))?;
                let full = l.stage.config.parameter_name(&name);
                (l.ssm)(&full).ok_or(ResolveError::MissingSsm {
                    service: service.to_string(),
                    parameter: parameter.to_string(),
                    name: full,
                    stage: l.stage.name.clone(),
                })
            }
            _ => unreachable!("plain references are handled above"),
        }
    })
}

/// Every parameter of `service`, resolved; all problems are reported, first one wins the error.
pub fn resolve(
    service: &Service,
    l: &Lookups<'_>,
) -> Result<BTreeMap<String, String>, Vec<ResolveError>> {
    let mut out = BTreeMap::new();
    let mut errors = Vec::new();
    for (k, t) in &service.parameters {
        match resolve_value(t, &service.name, k, l) {
            Ok(v) => {
                out.insert(k.clone(), v);
            }
            Err(e) => errors.push(e),
        }
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}

/// The SSM names `service`'s parameters need (absolute), to load them before resolving
/// ([`Service::ssm_names_in`]; one whose variable the stage lacks is left out: resolving says so).
pub fn ssm_names(service: &Service, l: &Lookups<'_>) -> Vec<String> {
    service
        .ssm_names_in(l.project, &l.stage.id, &l.stage.config)
        .into_iter()
        .filter_map(|(_, full)| full)
        .collect()
}

#[cfg(test)]
mod tests {
    use ferry_manifest::{DeploymentMethod, StageConfig};

    use super::*;

    fn stage() -> Stage {
        Stage {
            name: "feature/x".into(),
            id: "feature-x".into(),
            preview: true,
            config: StageConfig {
                region: "eu-west-1".into(),
                account: None,
                role_arn: None,
                external_id: None,
                parameters_path: Some("/shop/preview/".into()),
                deployment_method: DeploymentMethod::Direct,
                protected: false,
                artifact_bucket: None,
                records_path: None,
                promote_from: None,
                on_test_failure: Default::default(),
                approval: false,
                variables: Default::default(),
            },
        }
    }

    fn service(params: &[(&str, &str)]) -> Service {
        Service {
            name: "api".into(),
            dir: "services/api".into(),
            kind: Default::default(),
            template: "template.yaml".into(),
            depends_on: vec![],
            inputs: vec![],
            parameters: params
                .iter()
                .map(|(k, v)| (k.to_string(), Template::parse(v).unwrap()))
                .collect(),
            package: Default::default(),
            acceptance: None,
            scripts: Default::default(),
            stack_name: None,
            serverless_command: None,
        }
    }

    fn outputs(stage: Option<&str>, service: &str) -> Option<Outputs> {
        match (stage, service) {
            (None, "database") => Some(BTreeMap::from([
                ("TableName".into(), "orders-x".into()),
                ("TableArn".into(), "arn:t".into()),
            ])),
            (Some("prod"), "database") => {
                Some(BTreeMap::from([("TableName".into(), "orders-prod".into())]))
            }
            _ => None,
        }
    }

    fn ssm(name: &str) -> Option<String> {
        (name == "/shop/preview/feature-x/admin").then(|| "ops@example.com".into())
    }

    #[test]
    fn every_reference_kind_resolves() {
        let st = stage();
        let l = Lookups {
            project: "shop",
            stage: &st,
            outputs: &outputs,
            ssm: &ssm,
        };
        let s = service(&[
            ("Stage", "${stage}"),
            ("Where", "${project}-${service}-${region}"),
            ("Table", "${output:database.TableName}"),
            ("ProdTable", "${output:prod:database.TableName}"),
            ("Admin", "${ssm:${stage}/admin}"),
        ]);
        let r = resolve(&s, &l).unwrap();
        assert_eq!(r["Stage"], "feature-x");
        assert_eq!(r["Where"], "shop-api-eu-west-1");
        assert_eq!(r["Table"], "orders-x");
        assert_eq!(r["ProdTable"], "orders-prod");
        assert_eq!(r["Admin"], "ops@example.com");
        assert_eq!(ssm_names(&s, &l), ["/shop/preview/feature-x/admin"]);
    }

    #[test]
    fn missing_things_are_named_with_what_exists() {
        let st = stage();
        let l = Lookups {
            project: "shop",
            stage: &st,
            outputs: &outputs,
            ssm: &ssm,
        };
        let s = service(&[
            ("A", "${output:database.TableNme}"),
            ("B", "${output:events.TopicArn}"),
            ("C", "${ssm:/nope}"),
        ]);
        let errs: Vec<String> = resolve(&s, &l)
            .unwrap_err()
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            errs,
            [
                "parameter A of `api` needs output `TableNme` of `database`, which has none by that name; its outputs are: TableArn, TableName",
                "parameter B of `api` needs outputs of `events`, which has no stack yet; deploy it first",
                "parameter C of `api` needs SSM parameter `/nope`, which does not exist; create it with `param set feature/x /nope` (the value on standard input; `--secure` for a secret)",
            ]
        );
    }
}
