//! SSM Parameter Store's naming rules, checked before any call: a name SSM would refuse (or, for
//! a relative name without a `parameters-path`, one that would land at the root of the account's
//! parameters) is an error that says how to write it.

/// Longest fully qualified parameter name SSM accepts.
pub const MAX_SSM_NAME: usize = 1011;
/// Deepest hierarchy SSM accepts.
pub const MAX_SSM_LEVELS: usize = 15;

/// Why a parameter name (or a path) cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SsmNameError {
    #[error(
        "SSM name `{name}` must be absolute (start with '/'), e.g. /shop/dev/{}",
        name.trim_start_matches('/')
    )]
    NotAbsolute { name: String },
    #[error(
        "SSM name `{name}` has `{ch}`; SSM names hold only letters, digits, '_', '.', '-' and '/'"
    )]
    BadCharacter { name: String, ch: char },
    #[error(
        "SSM name `{name}` has an empty level (`//`, or a name ending in '/'); remove the extra '/'"
    )]
    EmptyLevel { name: String },
    #[error("SSM name `{name}` has {len} characters; SSM accepts at most {MAX_SSM_NAME}")]
    TooLong { name: String, len: usize },
    #[error("SSM name `{name}` has {levels} levels; SSM accepts at most {MAX_SSM_LEVELS}")]
    TooDeep { name: String, levels: usize },
    #[error(
        "SSM name `{name}` starts with `{prefix}`, which AWS reserves (names may not begin with aws or ssm, in any case)"
    )]
    Reserved { name: String, prefix: String },
    #[error(
        "SSM name `{name}` ends in `:{selector}`, which is no version (a number from 1) or label (up to 100 letters, digits, '.', '-' and '_', not beginning with a digit, aws or ssm)"
    )]
    BadSelector { name: String, selector: String },
    #[error(
        "SSM name `{name}` reads a Secrets Manager secret with `:{selector}`; Parameter Store keeps no versions or labels of secrets, so it always reads the secret's current version: remove `:{selector}`"
    )]
    SecretSelector { name: String, selector: String },
}

/// Longest label SSM accepts on a parameter version.
const MAX_SSM_LABEL: usize = 100;

/// A name to read split from its selector: `/shop/db:3` reads version 3 of `/shop/db`, and
/// `/shop/db:live` the version labelled `live` (GetParameter takes both forms). No SSM name holds
/// a `:`, so the last one starts the selector.
pub fn split_ssm_selector(name: &str) -> (&str, Option<&str>) {
    match name.rsplit_once(':') {
        Some((name, selector)) => (name, Some(selector)),
        None => (name, None),
    }
}

/// A version (digits, from 1) or a label as SSM accepts them.
fn valid_selector(selector: &str) -> bool {
    let Some(first) = selector.chars().next() else {
        return false;
    };
    if first.is_ascii_digit() {
        // A version is a positive 64-bit number.
        return selector.bytes().all(|b| b.is_ascii_digit())
            && selector.parse::<i64>().is_ok_and(|v| v >= 1);
    }
    selector.len() <= MAX_SSM_LABEL
        && selector
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
        && reserved_prefix(selector).is_none()
}

/// The `aws` or `ssm` (in any case) that `text` begins with, which AWS keeps for itself in
/// parameter names and labels.
fn reserved_prefix(text: &str) -> Option<&str> {
    text.get(..3)
        .filter(|start| ["aws", "ssm"].iter().any(|r| start.eq_ignore_ascii_case(r)))
}

/// The start of the parameter types whose value is the name of an SSM parameter
/// (`AWS::SSM::Parameter::Value<String>`, `…<AWS::EC2::Image::Id>`, …): CloudFormation reads that
/// parameter itself, at every stack operation, so a new version of it changes the stack though
/// nothing Ferry passes changed.
pub const SSM_PARAMETER_TYPE: &str = "AWS::SSM::Parameter::Value<";

/// Where Parameter Store serves Secrets Manager secrets, read by their secret names, which may
/// also hold '+', '=' and '@'.
pub const SECRETS_MANAGER_REFERENCE: &str = "/aws/reference/secretsmanager/";

/// A CloudFormation dynamic reference to an SSM parameter, `{{resolve:ssm:NAME}}` or
/// `{{resolve:ssm-secure:NAME}}`, as written: the name without its `:VERSION`, whether one
/// pinned it, and whether it is an `ssm-secure` one. A name may hold a substitution (`${Env}`
/// of an `Fn::Sub`), known only when it deploys: the caller judges.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DynamicSsmReference<'a> {
    pub name: &'a str,
    pub pinned: bool,
    pub secure: bool,
    /// The name as written, its `:VERSION` included.
    pub written: &'a str,
}

/// `template` (CloudFormation) without the values no stack operation reads, so that a dynamic
/// reference written there (`{{resolve:ssm:…}}` in a description) is no read: the template's
/// `Description` and `Metadata`, and each parameter's `Description`. (Everything else may be:
/// resources, outputs, a SAM template's `Globals`, a parameter's `Default`.) `init` reads its
/// templates' YAML by the same rule.
pub fn read_by_stacks(template: &serde_json::Value) -> serde_json::Value {
    let mut t = template.clone();
    if let Some(top) = t.as_object_mut() {
        top.remove("Description");
        top.remove("Metadata");
        if let Some(parameters) = top.get_mut("Parameters").and_then(|p| p.as_object_mut()) {
            for p in parameters.values_mut() {
                if let Some(p) = p.as_object_mut() {
                    p.remove("Description");
                }
            }
        }
    }
    t
}

/// The dynamic references to SSM parameters in `text` (one string of a template, or a whole
/// template's text): the `ssm` ones, then the `ssm-secure` ones, each in the order written.
pub fn dynamic_ssm_references(text: &str) -> Vec<DynamicSsmReference<'_>> {
    let mut out = Vec::new();
    for prefix in ["{{resolve:ssm:", "{{resolve:ssm-secure:"] {
        let mut rest = text;
        while let Some(at) = rest.find(prefix) {
            let after = &rest[at + prefix.len()..];
            let Some(end) = after.find("}}") else { break };
            let inner = &after[..end];
            // A name, then `:VERSION` (digits) when pinned.
            let secure = prefix == "{{resolve:ssm-secure:";
            let (name, pinned) = match inner.rsplit_once(':') {
                Some((name, v)) if !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()) => {
                    (name, true)
                }
                _ => (inner, false),
            };
            out.push(DynamicSsmReference {
                name,
                pinned,
                secure,
                written: inner,
            });
            rest = &after[end + 2..];
        }
    }
    out
}

/// Checks an absolute parameter name (`/shop/dev/db/password`) or, with `path = true`, a path
/// that ends with '/' (`/shop/dev/`), as a name to write (or to write under): names beginning
/// with `aws` or `ssm` are AWS's.
pub fn check_ssm_name(name: &str, path: bool) -> Result<(), SsmNameError> {
    check(name, path, false)
}

/// How to make the missing parameter `name` exist, `stage` the stage to name (`<stage>` when
/// not known): `param set` for one of the account's own; AWS's own names are not written with
/// it (SSM refuses names under `/aws/`).
pub fn create_advice(name: &str, stage: &str) -> String {
    if let Some(secret) = name.strip_prefix(SECRETS_MANAGER_REFERENCE) {
        format!(
            "it reads the Secrets Manager secret `{secret}`: create that secret in Secrets Manager (in the stage's account and region), or check its name"
        )
    } else if name.starts_with("/aws/") {
        "it is one of the parameters AWS publishes (`/aws/service/…`): check its name, and that AWS publishes it in the stage's region".to_string()
    } else {
        format!(
            "create it with `param set {stage} {name}` (the value on standard input; `--secure` for a secret)"
        )
    }
}

/// Checks an absolute parameter name to read. AWS's own names may be read: public parameters
/// (`/aws/service/ami-amazon-linux-latest/…`) and Secrets Manager secrets through Parameter
/// Store ([`SECRETS_MANAGER_REFERENCE`]`my/secret`). A parameter's name may end in a selector,
/// `:VERSION` or `:LABEL` ([`split_ssm_selector`]); a secret's may not.
pub fn check_ssm_read_name(name: &str) -> Result<(), SsmNameError> {
    let (base, selector) = split_ssm_selector(name);
    check(base, false, true)?;
    match selector {
        None => Ok(()),
        Some(selector) if base.starts_with(SECRETS_MANAGER_REFERENCE) => {
            Err(SsmNameError::SecretSelector {
                name: name.to_string(),
                selector: selector.to_string(),
            })
        }
        Some(selector) if valid_selector(selector) => Ok(()),
        Some(selector) => Err(SsmNameError::BadSelector {
            name: name.to_string(),
            selector: selector.to_string(),
        }),
    }
}

fn check(name: &str, path: bool, read: bool) -> Result<(), SsmNameError> {
    let err_name = || name.to_string();
    let secret = read && name.starts_with(SECRETS_MANAGER_REFERENCE);
    let Some(rest) = name.strip_prefix('/') else {
        return Err(SsmNameError::NotAbsolute { name: err_name() });
    };
    let body = if path {
        rest.strip_suffix('/').unwrap_or(rest)
    } else {
        rest
    };
    if let Some(ch) = name.chars().find(|c| {
        !(c.is_ascii_alphanumeric() || "_.-/".contains(*c) || secret && "+=@".contains(*c))
    }) {
        return Err(SsmNameError::BadCharacter {
            name: err_name(),
            ch,
        });
    }
    // A path is "/" alone, or levels separated by single slashes.
    if !(path && body.is_empty()) && body.split('/').any(str::is_empty) {
        return Err(SsmNameError::EmptyLevel { name: err_name() });
    }
    if name.len() > MAX_SSM_NAME {
        return Err(SsmNameError::TooLong {
            name: err_name(),
            len: name.len(),
        });
    }
    let levels = body.split('/').filter(|s| !s.is_empty()).count();
    if levels > MAX_SSM_LEVELS {
        return Err(SsmNameError::TooDeep {
            name: err_name(),
            levels,
        });
    }
    let first = body.split('/').next().unwrap_or_default();
    match reserved_prefix(first).filter(|_| !read) {
        Some(prefix) => Err(SsmNameError::Reserved {
            name: err_name(),
            prefix: prefix.to_string(),
        }),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A missing name of AWS's own is not advised to be written with `param set`, which
    /// refuses it (`param get` of a missing secret reference said to).
    #[test]
    fn a_missing_name_of_aws_own_is_advised_otherwise_than_param_set() {
        assert_eq!(
            create_advice("/shop/dev/db", "dev"),
            "create it with `param set dev /shop/dev/db` (the value on standard input; `--secure` for a secret)"
        );
        assert!(
            create_advice("/aws/reference/secretsmanager/db/pw", "dev").starts_with(
                "it reads the Secrets Manager secret `db/pw`: create that secret in Secrets Manager"
            )
        );
        let public = create_advice("/aws/service/ami-amazon-linux-latest/x", "dev");
        assert!(public.contains("parameters AWS publishes") && !public.contains("param set"));
    }

    #[test]
    fn dynamic_references_give_their_names_and_whether_a_version_pins_them() {
        let r = |name: &'static str, pinned| DynamicSsmReference {
            name,
            pinned,
            secure: name == "db",
            written: if name == "db" { "db:2" } else { name },
        };
        assert_eq!(
            dynamic_ssm_references(
                "a {{resolve:ssm-secure:db:2}} b {{resolve:ssm:/x/y}} {{resolve:ssm:/x/${Env}}} {{resolve:ssm:z:}} {{resolve:ssm:/open"
            ),
            [
                r("/x/y", false),
                // Up to the first `}}`: a substitution's own brace ends it, and the `${` left
                // tells the caller the name is known only when it deploys.
                r("/x/${Env", false),
                r("z:", false),
                r("db", true)
            ]
        );
    }

    #[test]
    fn aws_names_may_be_read_not_written() {
        let ami = "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64";
        assert_eq!(check_ssm_read_name(ami), Ok(()));
        assert!(matches!(
            check_ssm_name(ami, false),
            Err(SsmNameError::Reserved { .. })
        ));
        assert_eq!(
            check_ssm_read_name("/aws/reference/secretsmanager/prod/db+main=1@x"),
            Ok(())
        );
        // Those characters only in a secret's name; the other rules hold for reads too.
        for bad in [
            "/shop/dev/db+main",
            "/aws/service/a b",
            "shop/x",
            "/shop//x",
        ] {
            assert!(check_ssm_read_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_name_to_read_may_select_a_version_or_a_label() {
        for good in [
            "/shop/db:3",
            "/shop/db:10",
            "/shop/db:live",
            "/shop/db:Prod_2.x-y",
            "/aws/service/ami:2",
        ] {
            assert_eq!(check_ssm_read_name(good), Ok(()), "{good}");
        }
        assert_eq!(
            split_ssm_selector("/shop/db:live"),
            ("/shop/db", Some("live"))
        );
        assert_eq!(split_ssm_selector("/shop/db"), ("/shop/db", None));
        for bad in [
            "/shop/db:",
            "/shop/db:0",
            "/shop/db:00",
            "/shop/db:3a",
            "/shop/db:awsx",
            "/shop/db:SSM",
            "/shop/db:a b",
            "/shop/db:a:b",
            "/shop/db:99999999999999999999",
            "/shop/db:éé",
            "/shop/db:aé",
        ] {
            assert!(
                matches!(
                    check_ssm_read_name(bad),
                    Err(SsmNameError::BadSelector { .. } | SsmNameError::BadCharacter { .. })
                ),
                "{bad}"
            );
        }
        let long = format!("/shop/db:{}", "l".repeat(101));
        assert!(matches!(
            check_ssm_read_name(&long),
            Err(SsmNameError::BadSelector { .. })
        ));
        assert_eq!(
            check_ssm_read_name(&format!("/shop/db:{}", "l".repeat(100))),
            Ok(())
        );
        assert!(matches!(
            check_ssm_read_name("/aws/reference/secretsmanager/db:2"),
            Err(SsmNameError::SecretSelector { .. })
        ));
        // Names to write take no selector.
        assert!(matches!(
            check_ssm_name("/shop/db:3", false),
            Err(SsmNameError::BadCharacter { ch: ':', .. })
        ));
    }

    #[test]
    fn names_ssm_accepts_and_refuses() {
        assert_eq!(check_ssm_name("/shop/dev/db-password_2.x", false), Ok(()));
        assert_eq!(check_ssm_name("/shop/dev/", true), Ok(()));
        assert_eq!(check_ssm_name("/", true), Ok(()));
        assert!(matches!(
            check_ssm_name("shop/dev", false),
            Err(SsmNameError::NotAbsolute { .. })
        ));
        assert!(matches!(
            check_ssm_name("/shop/dev/a b", false),
            Err(SsmNameError::BadCharacter { ch: ' ', .. })
        ));
        assert!(matches!(
            check_ssm_name("/shop//x", false),
            Err(SsmNameError::EmptyLevel { .. })
        ));
        assert!(matches!(
            check_ssm_name("/shop/x/", false),
            Err(SsmNameError::EmptyLevel { .. })
        ));
        assert!(matches!(
            check_ssm_name(&format!("/{}", "a/".repeat(16)), true),
            Err(SsmNameError::TooDeep { levels: 16, .. })
        ));
        assert!(matches!(
            check_ssm_name(&format!("/{}", "a".repeat(1100)), false),
            Err(SsmNameError::TooLong { .. })
        ));
        assert!(matches!(
            check_ssm_name("/AWS/service/x", false),
            Err(SsmNameError::Reserved { .. })
        ));
        assert!(matches!(
            check_ssm_name("/ssmthing", false),
            Err(SsmNameError::Reserved { .. })
        ));
        assert_eq!(check_ssm_name("/ss/x", false), Ok(()));
    }
}
