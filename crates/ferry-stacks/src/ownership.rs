//! Who a stack belongs to, told by its tags, and whether a deploy may touch it.
//!
//! Ferry tags every stack it creates or updates with the project, the stage (its id, as in stack
//! names, and its name, as the user wrote it) and the service. Stack names alone do not say who
//! owns a stack: with the default pattern `{service}-{stage}` two projects of one account both
//! name a stack `api-dev`, and the preview stages `feature/login`, `feature-login` and
//! `Feature_Login` all get the id `feature-login`. So before a stack is updated, deleted or its
//! outputs are read, its tags are checked against the expected owner ([`check`], a pure decision
//! table like [`crate::disposition`]).

use std::collections::BTreeMap;

/// The project tag.
pub const TAG_PROJECT: &str = "ferry:project";
/// The stage id (as in stack names).
pub const TAG_STAGE: &str = "ferry:stage";
/// The stage name as the user wrote it, encoded by [`encode_tag_value`].
pub const TAG_STAGE_NAME: &str = "ferry:stage-name";
/// The service.
pub const TAG_SERVICE: &str = "ferry:service";
/// `true` on the stacks of a named stage (`[stages.<name>]` of the ferry.toml that deployed
/// it): a checkout that does not name the stage (another branch's) takes them for no preview's.
/// Absent on previews' stacks, and on stacks deployed before it was written.
pub const TAG_NAMED_STAGE: &str = "ferry:named-stage";

/// Who a stack of Ferry's belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ownership {
    pub project: String,
    /// The stage id (`feature-login`).
    pub stage_id: String,
    /// The stage name (`feature/login`).
    pub stage: String,
    pub service: String,
    /// The stage is a named stage of this checkout's ferry.toml (else a preview).
    pub named: bool,
}

/// What the tags of an existing stack say about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Ferry's tags name this project, stage and service (a stack tagged before stage names were
    /// tagged counts as this stage's when its stage id matches).
    Ours,
    /// No Ferry tags: made by another tool or by hand. Taken over only when asked.
    Unmanaged,
    /// Ferry's tags name another owner, described for messages.
    Foreign { owner: String },
    /// Ferry's tags name this project and stage, a named stage where it was deployed, which
    /// the expected owner takes for a preview (a stage only another branch's ferry.toml names).
    NamedElsewhere,
    /// Ferry's tags name this project and stage but another service: `service`. Still another
    /// owner's stack, unless that service was renamed to this one (see
    /// [`StackSpec::renamed_from`](crate::StackSpec::renamed_from)).
    OtherService { service: String, owner: String },
}

/// Characters AWS accepts in tag values everywhere tags propagate (stack tags are copied onto
/// the stack's resources), besides letters, digits and spaces. `=` is left out: it is the escape.
const TAG_SAFE: &str = "_.:/+-@";

/// Longest tag value AWS accepts, in characters.
pub const MAX_TAG_VALUE: usize = 256;

/// A tag value for any text: characters tags may hold are kept, every other byte (and `=`) is
/// written `=XX` in hex. Injective, so two stage names never share a tag; branch names such as
/// `feature/login` come out unchanged. Past [`MAX_TAG_VALUE`] characters the value is cut and
/// ends in `=H` and a 64-bit hash of the whole text (no escape looks like that).
pub fn encode_tag_value(text: &str) -> String {
    let out = escape(text);
    if out.chars().count() <= MAX_TAG_VALUE {
        return out;
    }
    let hash = text.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    });
    let suffix = format!("=H{hash:016X}");
    let mut cut: String = out.chars().take(MAX_TAG_VALUE - suffix.len()).collect();
    // Never cut an escape in half.
    while let Some(pos) = cut.rfind('=').filter(|p| cut.len() - p < 3) {
        cut.truncate(pos);
    }
    cut + &suffix
}

/// The text a tag value written by [`encode_tag_value`] holds; `None` for a value cut short (its
/// end is a hash) or one that is not such an encoding.
pub fn decode_tag_value(value: &str) -> Option<String> {
    let mut bytes = Vec::with_capacity(value.len());
    let mut rest = value.as_bytes();
    while let Some((&b, tail)) = rest.split_first() {
        if b == b'=' {
            let hex = std::str::from_utf8(tail.get(..2)?).ok()?;
            bytes.push(u8::from_str_radix(hex, 16).ok()?);
            rest = &tail[2..];
        } else {
            bytes.push(b);
            rest = tail;
        }
    }
    String::from_utf8(bytes).ok()
}

fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_alphanumeric() || c == ' ' || TAG_SAFE.contains(c) {
            out.push(c);
        } else {
            let mut buf = [0u8; 4];
            for b in c.encode_utf8(&mut buf).bytes() {
                out.push_str(&format!("={b:02X}"));
            }
        }
    }
    out
}

impl Ownership {
    /// The tags that say so.
    pub fn tags(&self) -> BTreeMap<String, String> {
        BTreeMap::from([
            (TAG_PROJECT.to_string(), self.project.clone()),
            (TAG_STAGE.to_string(), self.stage_id.clone()),
            (TAG_STAGE_NAME.to_string(), encode_tag_value(&self.stage)),
            (TAG_SERVICE.to_string(), self.service.clone()),
        ])
        .into_iter()
        .chain(
            self.named
                .then(|| (TAG_NAMED_STAGE.to_string(), "true".to_string())),
        )
        .collect()
    }
}

/// Whether a stack with `tags` belongs to `expected`.
pub fn check(expected: &Ownership, tags: &BTreeMap<String, String>) -> Verdict {
    let Some(project) = tags.get(TAG_PROJECT) else {
        return Verdict::Unmanaged;
    };
    let stage_id = tags.get(TAG_STAGE).map(String::as_str).unwrap_or("?");
    let stage_name = tags.get(TAG_STAGE_NAME);
    let service = tags.get(TAG_SERVICE).map(String::as_str).unwrap_or("?");
    // Shown as the stage is named (`*`, not its tag's `=2A`), or as written if no encoding.
    let stage = stage_name
        .map(|n| decode_tag_value(n).unwrap_or_else(|| n.clone()))
        .unwrap_or_else(|| stage_id.to_string());
    let owner = format!("service `{service}` of stage `{stage}` of project `{project}`");
    if *project != expected.project
        || stage_id != expected.stage_id
        || stage_name.is_some_and(|n| *n != encode_tag_value(&expected.stage))
    {
        return Verdict::Foreign { owner };
    }
    // A named stage's stack, to a checkout that takes the stage for a preview.
    if !expected.named && tags.get(TAG_NAMED_STAGE).is_some_and(|v| v == "true") {
        return Verdict::NamedElsewhere;
    }
    if service != expected.service {
        return Verdict::OtherService {
            service: service.to_string(),
            owner,
        };
    }
    Verdict::Ours
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ours() -> Ownership {
        Ownership {
            project: "shop".into(),
            stage_id: "feature-login".into(),
            stage: "feature/login".into(),
            service: "api".into(),
            named: false,
        }
    }

    #[test]
    fn tag_values_are_injective_and_keep_branch_names() {
        assert_eq!(encode_tag_value("feature/login"), "feature/login");
        assert_eq!(encode_tag_value("Feature_Login"), "Feature_Login");
        assert_eq!(encode_tag_value("a=b"), "a=3Db");
        assert_eq!(encode_tag_value("a#b"), "a=23b");
        assert_eq!(encode_tag_value("ü"), "ü");
        assert_ne!(encode_tag_value("a#b"), encode_tag_value("a=23b"));
        let long_a = encode_tag_value(&format!("{}a", "x/".repeat(200)));
        let long_b = encode_tag_value(&format!("{}b", "x/".repeat(200)));
        assert_eq!(long_a.chars().count(), MAX_TAG_VALUE);
        assert_ne!(long_a, long_b);
        assert!(encode_tag_value(&"#".repeat(300)).chars().count() <= MAX_TAG_VALUE);
        for name in ["feature/login", "a=b", "a#b", "ü", "pr-42", "x y"] {
            assert_eq!(
                decode_tag_value(&encode_tag_value(name)).as_deref(),
                Some(name)
            );
        }
        assert_eq!(
            decode_tag_value(&long_a),
            None,
            "a cut value is not decoded"
        );
        assert_eq!(decode_tag_value("a=4"), None);
        assert_eq!(decode_tag_value("a=FF"), None, "not UTF-8");
    }

    #[test]
    fn every_row_of_the_ownership_table() {
        let tags = |p: Option<&str>, id: &str, name: Option<&str>, svc: &str| {
            let mut t = BTreeMap::new();
            if let Some(p) = p {
                t.insert(TAG_PROJECT.to_string(), p.to_string());
            }
            t.insert(TAG_STAGE.to_string(), id.to_string());
            if let Some(n) = name {
                t.insert(TAG_STAGE_NAME.to_string(), n.to_string());
            }
            t.insert(TAG_SERVICE.to_string(), svc.to_string());
            t
        };
        let e = ours();
        assert_eq!(check(&e, &e.tags()), Verdict::Ours);
        // A named stage's stacks say so; a preview of the same name does not take them.
        let named = Ownership {
            named: true,
            ..ours()
        };
        assert_eq!(named.tags()[TAG_NAMED_STAGE], "true");
        assert!(!e.tags().contains_key(TAG_NAMED_STAGE));
        assert_eq!(check(&named, &named.tags()), Verdict::Ours);
        assert_eq!(check(&named, &e.tags()), Verdict::Ours, "tagged before");
        assert_eq!(check(&e, &named.tags()), Verdict::NamedElsewhere);
        assert_eq!(check(&e, &BTreeMap::new()), Verdict::Unmanaged);
        assert_eq!(
            check(&e, &tags(None, "feature-login", None, "api")),
            Verdict::Unmanaged
        );
        assert_eq!(
            check(&e, &tags(Some("shop"), "feature-login", None, "api")),
            Verdict::Ours,
            "stacks tagged before stage names were tagged"
        );
        let foreign = |t| matches!(check(&e, &t), Verdict::Foreign { .. });
        assert!(foreign(tags(Some("rel"), "feature-login", None, "api")));
        assert!(foreign(tags(Some("shop"), "dev", None, "api")));
        assert!(foreign(tags(
            Some("shop"),
            "feature-login",
            Some("feature-login"),
            "api"
        )));
        assert_eq!(
            check(
                &e,
                &tags(Some("shop"), "feature-login", Some("feature/login"), "web")
            ),
            Verdict::OtherService {
                service: "web".into(),
                owner: "service `web` of stage `feature/login` of project `shop`".into()
            },
            "this project and stage, another service"
        );
        assert!(matches!(
            check(&e, &tags(Some("shop"), "feature-login", None, "web")),
            Verdict::OtherService { .. }
        ));
        let Verdict::Foreign { owner } = check(
            &e,
            &tags(Some("rel"), "feature-login", Some("Feature_Login"), "api"),
        ) else {
            panic!()
        };
        assert_eq!(
            owner,
            "service `api` of stage `Feature_Login` of project `rel`"
        );
        // The previews' bootstrap, its stage name encoded in its tag: named as written.
        let Verdict::Foreign { owner } = check(
            &e,
            &tags(
                Some("shop"),
                "previews",
                Some(&encode_tag_value("*")),
                "_bootstrap",
            ),
        ) else {
            panic!()
        };
        assert_eq!(owner, "service `_bootstrap` of stage `*` of project `shop`");
    }
}
