//! Which branches and pull requests are still alive, for pruning the preview stages of those
//! that are gone: from a list of live refs the user passes (e.g. `git ls-remote --heads origin`,
//! or pull request numbers from the forge's API), or from a CI event that ends one (a pull
//! request closed or merged, a branch deleted).

use std::collections::BTreeSet;

/// Live branches and pull requests, from a list. A list that names no pull request at all says
/// nothing about pull requests (and likewise for branches): nothing is judged gone on absent
/// evidence.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LiveRefs {
    /// `None`: the list named no branch.
    pub branches: Option<BTreeSet<String>>,
    /// Pull request numbers; `None`: the list named no pull request.
    pub pull_requests: Option<BTreeSet<String>>,
}

/// A line of a live-refs list that is no ref: the whole list is refused, since a list that is
/// something else (an error message, JSON, a web page) would make every branch it fails to
/// name look gone.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "line {line} (`{text}`) is no ref: {why}; a list holds one ref per line, `refs/heads/<branch>` (or `<object id>\trefs/heads/<branch>`, as `git ls-remote` prints it), a branch name, `refs/pull/<n>/head`, `pr/<n>`, `#<n>`, or a pull request number"
)]
pub struct NotARef {
    pub line: usize,
    /// The line, cut to 80 characters, control characters shown escaped.
    pub text: String,
    pub why: &'static str,
}

impl LiveRefs {
    /// One ref per line, alone or after an object id (so `git ls-remote` output works as is):
    /// `refs/heads/<branch>` or a plain `<branch>`; `refs/pull/<n>/head`, `refs/pull/<n>/merge`,
    /// `pr/<n>`, `#<n>`, or a bare number for a pull request (as `gh pr list --json number -q
    /// '.[].number'` prints them), alone or beside refs written out; beside plain branch names
    /// a bare number is refused, as it could be either. A byte-order mark before the first line
    /// is passed over; an invisible character in a ref refuses the list. Tags and other `refs/…` are
    /// passed over (an annotated tag peeled too, `refs/tags/v1^{}`), as are `HEAD` and empty
    /// lines. A line that is none of these (a branch name git would
    /// refuse, more fields, an object id that is not hex) refuses the whole list ([`NotARef`]).
    pub fn parse(text: &str) -> Result<LiveRefs, NotARef> {
        let mut branches = BTreeSet::new();
        let mut prs = BTreeSet::new();
        let mut refs = Vec::new();
        // A byte-order mark, as Windows PowerShell writes a file: it made the first line a
        // branch no one has, and that branch's preview was pruned.
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        for (i, line) in text.lines().enumerate() {
            let bad = move |why: &'static str| NotARef {
                line: i + 1,
                text: line.chars().take(80).flat_map(char::escape_debug).collect(),
                why,
            };
            let fields: Vec<&str> = line.split_whitespace().collect();
            let r = match fields.as_slice() {
                [] => continue,
                [r] => *r,
                [id, r] if id.bytes().all(|b| b.is_ascii_hexdigit()) => *r,
                [_, _] => return Err(bad("two fields, the first no object id")),
                _ => return Err(bad("more than two fields")),
            };
            if r.chars().any(char::is_control) {
                return Err(bad("it holds a control character"));
            }
            if r.chars().any(crate::hides_or_steers) {
                return Err(bad(
                    "it holds an invisible character (a byte-order mark, a zero-width or text-direction character)",
                ));
            }
            refs.push((r, bad));
        }
        // Bare numbers are pull requests (`gh pr list` output), also beside refs written out
        // (`git ls-remote` output: the README's two lists in one). Beside plain branch names a
        // bare number could be either: the list is refused rather than judged one way.
        let plain_branch = |r: &str| {
            !digits(r)
                && r != "HEAD"
                && !r.starts_with("refs/")
                && !r.starts_with("pr/")
                && !r.starts_with('#')
        };
        if refs.iter().any(|(r, _)| plain_branch(r))
            && let Some((_, bad)) = refs.iter().find(|(r, _)| digits(r))
        {
            return Err(bad(
                "a bare number beside plain branch names could be a pull request or a branch: write pull requests as `#<n>`, or branches as `refs/heads/<name>`",
            ));
        }
        for (r, bad) in refs {
            if r == "HEAD" {
                // What `git ls-remote` of every ref names first: no branch (git refuses one of
                // that name).
                continue;
            }
            if let Some(b) = r.strip_prefix("refs/heads/") {
                if !branch_name(b) {
                    return Err(bad("not a branch name git takes"));
                }
                branches.insert(b.to_string());
            } else if let Some(rest) = r.strip_prefix("refs/pull/") {
                if let Some(n) = rest
                    .split_once('/')
                    .and_then(|(n, _)| pull_request_number(n))
                {
                    prs.insert(n.to_string());
                }
            } else if let Some(other) = r.strip_prefix("refs/") {
                // Tags, notes, …: not branches. (`git ls-remote` of every ref also names each
                // annotated tag peeled, `refs/tags/v1^{}`.)
                if !branch_name(other.strip_suffix("^{}").unwrap_or(other)) {
                    return Err(bad("not a ref name git takes"));
                }
            } else if let Some(n) = r
                .strip_prefix("pr/")
                .or_else(|| r.strip_prefix('#'))
                .or_else(|| digits(r).then_some(r))
            {
                // Written as a pull request: one (`#07` is 7), or none (`#0`), never a branch.
                if !digits(n) {
                    if r.starts_with('#') || n.is_empty() {
                        return Err(bad(
                            "a pull request is written `#<number>` or `pr/<number>`",
                        ));
                    }
                    // `pr/feature`: a branch of that name.
                    if !branch_name(r) {
                        return Err(bad("not a branch name git takes"));
                    }
                    branches.insert(r.to_string());
                } else if let Some(n) = pull_request_number(n) {
                    prs.insert(n.to_string());
                }
            } else if branch_name(r) {
                branches.insert(r.to_string());
            } else {
                return Err(bad("not a branch name git takes"));
            }
        }
        Ok(LiveRefs {
            branches: (!branches.is_empty()).then_some(branches),
            pull_requests: (!prs.is_empty()).then_some(prs),
        })
    }
}

/// Whether git takes `name` as a branch's (`git check-ref-format --branch`): no space, control
/// character or any of `~^:?*[\`, no `..` or `@{`, not `@`, not starting with `-`, no empty
/// part (`a//b`, a leading or trailing `/`), no part starting with `.` or ending with `.lock`,
/// and not ending with `.`.
fn branch_name(name: &str) -> bool {
    !name.is_empty()
        && name != "@"
        && !name.starts_with('-')
        && !name.ends_with('.')
        && !name.contains("..")
        && !name.contains("@{")
        && !name
            .chars()
            .any(|c| c.is_control() || c == ' ' || "~^:?*[\\".contains(c))
        && name
            .split('/')
            .all(|part| !part.is_empty() && !part.starts_with('.') && !part.ends_with(".lock"))
}

/// Whether `s` is written as a number: digits only (`0` and `007` too).
fn digits(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

/// A pull request number in its one written form: digits only, without leading zeros (`007`
/// is pull request 7, so that both spellings name one preview stage and one pull request to
/// `previews prune`), and not 0, which no pull request has.
pub fn pull_request_number(s: &str) -> Option<&str> {
    let n = s.trim_start_matches('0');
    (digits(s) && !n.is_empty() && n.len() <= 20).then_some(n)
}

/// A branch or pull request that a CI event says is gone.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Ended {
    Branch(String),
    PullRequest(String),
}

impl std::fmt::Display for Ended {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Ended::Branch(b) => write!(f, "branch `{b}` was deleted"),
            Ended::PullRequest(n) => write!(f, "pull request #{n} was closed"),
        }
    }
}

/// What this CI build's event ends, read through `var` (environment variables) and `event` (the
/// text of GitHub's event file, `GITHUB_EVENT_PATH`): a CodeBuild `PULL_REQUEST_MERGED` or
/// `PULL_REQUEST_CLOSED` (`CODEBUILD_WEBHOOK_TRIGGER=pr/<n>`); a GitHub `pull_request` event
/// whose action is `closed`; a GitHub `delete` event of a branch.
pub fn ended(var: &dyn Fn(&str) -> Option<String>, event: Option<&str>) -> Vec<Ended> {
    let get = |k: &str| var(k).filter(|v| !v.trim().is_empty());
    // A GitHub Actions job on a runner CodeBuild hosts: GitHub's event is the job's, CodeBuild's
    // the runner's (`WORKFLOW_JOB_QUEUED`), as `CiContext` reads them.
    let github = get("GITHUB_ACTIONS").is_some_and(|v| crate::flag(&v) == Some(true));
    if let Some(e) = get("CODEBUILD_WEBHOOK_EVENT").filter(|_| !github) {
        let closing = matches!(e.as_str(), "PULL_REQUEST_MERGED" | "PULL_REQUEST_CLOSED");
        return match get("CODEBUILD_WEBHOOK_TRIGGER") {
            Some(t) if closing => t
                .strip_prefix("pr/")
                .and_then(pull_request_number)
                .map(|n| vec![Ended::PullRequest(n.to_string())])
                .unwrap_or_default(),
            _ => Vec::new(),
        };
    }
    let Some(name) = get("GITHUB_EVENT_NAME") else {
        return Vec::new();
    };
    let Some(json) = event.and_then(|t| serde_json::from_str::<serde_json::Value>(t).ok()) else {
        return Vec::new();
    };
    match name.as_str() {
        "pull_request" | "pull_request_target" if json["action"] == "closed" => json["number"]
            .as_u64()
            .filter(|n| *n > 0)
            .map(|n| vec![Ended::PullRequest(n.to_string())])
            .unwrap_or_default(),
        "delete" if json["ref_type"] == "branch" => json["ref"]
            .as_str()
            .map(|r| {
                vec![Ended::Branch(
                    r.trim_start_matches("refs/heads/").to_string(),
                )]
            })
            .unwrap_or_default(),
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(items: &[&str]) -> Option<BTreeSet<String>> {
        Some(items.iter().map(|s| s.to_string()).collect())
    }

    #[test]
    fn live_refs_from_ls_remote_and_lists() {
        let ls = "3e18202\trefs/heads/main\nabc\trefs/heads/feature/login\n\
                  def\trefs/tags/v1\ndef\trefs/tags/v1^{}\nabc\tHEAD\n0a1\trefs/pull/42/head\n0a2\trefs/pull/7/merge\n\
                  0a3\trefs/pull/x/head\n0a4\trefs/pull/0099/head\n0a5\trefs/pull/0/head\n\n";
        let live = LiveRefs::parse(ls).unwrap();
        assert_eq!(live.branches, set(&["feature/login", "main"]));
        assert_eq!(live.pull_requests, set(&["42", "7", "99"]));
        let plain = LiveRefs::parse("main\n#12\npr/13\n").unwrap();
        assert_eq!(plain.branches, set(&["main"]));
        assert_eq!(plain.pull_requests, set(&["12", "13"]));
        // Among plain branch names, a bare number could be a branch or a pull request: refused,
        // never judged one way (as a branch, it hid every pull request from the prune).
        let err = LiveRefs::parse("main\n1234\n").unwrap_err();
        assert_eq!(err.line, 2);
        assert!(
            err.to_string()
                .contains("could be a pull request or a branch"),
            "{err}"
        );
        // Beside `git ls-remote`'s lines (the README's two lists in one), it is a pull request.
        let both = LiveRefs::parse("3e18202\trefs/heads/feature/q\n31\n60\n").unwrap();
        assert_eq!(both.branches, set(&["feature/q"]));
        assert_eq!(both.pull_requests, set(&["31", "60"]));
        // A byte-order mark before the first line (Windows PowerShell writes one) made that
        // line a branch no one has, and the listed branch's preview was pruned.
        let marked = LiveRefs::parse("\u{feff}refs/heads/feature/q\nrefs/heads/main\n").unwrap();
        assert_eq!(marked.branches, set(&["feature/q", "main"]));
        let err = LiveRefs::parse("refs/heads/main\nrefs/heads/feat\u{00ad}ure\n").unwrap_err();
        assert_eq!(err.line, 2);
        assert!(err.to_string().contains("invisible character"), "{err}");
        // What `gh pr list --json number -q '.[].number'` prints: pull requests only.
        assert_eq!(LiveRefs::parse("12\n7\n").unwrap().branches, None);
        assert_eq!(
            LiveRefs::parse("12\n7\n").unwrap().pull_requests,
            set(&["12", "7"])
        );
        assert_eq!(
            LiveRefs::parse("012\n07\n").unwrap().pull_requests,
            set(&["12", "7"])
        );
        // 0 is no pull request, and does not make a list of numbers one of branches.
        let zero = LiveRefs::parse("12\n0\n").unwrap();
        assert_eq!((zero.branches, zero.pull_requests), (None, set(&["12"])));
        let zero = LiveRefs::parse("main\npr/0\n#0\n").unwrap();
        assert_eq!((zero.branches, zero.pull_requests), (set(&["main"]), None));
        // Only branches: nothing is said about pull requests, and the other way round.
        assert_eq!(
            LiveRefs::parse("a\trefs/heads/main\n")
                .unwrap()
                .pull_requests,
            None
        );
        assert_eq!(LiveRefs::parse("#5\n").unwrap().branches, None);
        assert_eq!(LiveRefs::parse("").unwrap(), LiveRefs::default());
        // `pr/` and a name that is not a number: a branch of that name.
        assert_eq!(
            LiveRefs::parse("pr/feature\n").unwrap().branches,
            set(&["pr/feature"])
        );
    }

    // Anything else refuses the whole list: an error message, JSON or a web page piped in by
    // mistake named "branches" that no preview has, and every branch preview was pruned.
    #[test]
    fn a_list_that_holds_something_other_than_refs_is_refused() {
        for (list, line, why) in [
            (
                "[{\"number\":7},{\"number\":12}]\n",
                1,
                "not a branch name git takes",
            ),
            (
                "main\nfatal: could not read from remote repository.\n",
                2,
                "more than two fields",
            ),
            (
                "<html><body>502 Bad Gateway</body></html>\n",
                1,
                "more than two fields",
            ),
            (
                "#\n",
                1,
                "a pull request is written `#<number>` or `pr/<number>`",
            ),
            (
                "pr/\n",
                1,
                "a pull request is written `#<number>` or `pr/<number>`",
            ),
            (
                "#feature\n",
                1,
                "a pull request is written `#<number>` or `pr/<number>`",
            ),
            (
                "x\trefs/heads/main\n",
                1,
                "two fields, the first no object id",
            ),
            ("0a1\trefs/heads/\n", 1, "not a branch name git takes"),
            ("7\0\n", 1, "it holds a control character"),
            ("feature/x.\n", 1, "not a branch name git takes"),
            ("a..b\n", 1, "not a branch name git takes"),
            ("-x\n", 1, "not a branch name git takes"),
            ("refs/tags/v1:\n", 1, "not a ref name git takes"),
        ] {
            let e = LiveRefs::parse(list).unwrap_err();
            assert_eq!((e.line, e.why), (line, why), "{list:?}");
        }
        let e = LiveRefs::parse("7\0\n").unwrap_err();
        assert!(
            e.to_string()
                .starts_with("line 1 (`7\\0`) is no ref: it holds a control character; "),
            "{e}"
        );
    }

    #[test]
    fn the_events_that_end_a_branch_or_pull_request() {
        let vars = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| {
                pairs
                    .iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| v.to_string())
            }
        };
        let cb = vars(&[
            ("CODEBUILD_WEBHOOK_EVENT", "PULL_REQUEST_MERGED"),
            ("CODEBUILD_WEBHOOK_TRIGGER", "pr/42"),
        ]);
        assert_eq!(ended(&cb, None), [Ended::PullRequest("42".into())]);
        let open = vars(&[
            ("CODEBUILD_WEBHOOK_EVENT", "PULL_REQUEST_UPDATED"),
            ("CODEBUILD_WEBHOOK_TRIGGER", "pr/42"),
        ]);
        assert!(ended(&open, None).is_empty());
        let zeros = vars(&[
            ("CODEBUILD_WEBHOOK_EVENT", "PULL_REQUEST_CLOSED"),
            ("CODEBUILD_WEBHOOK_TRIGGER", "pr/042"),
        ]);
        assert_eq!(ended(&zeros, None), [Ended::PullRequest("42".into())]);
        let gh = vars(&[("GITHUB_EVENT_NAME", "pull_request")]);
        assert_eq!(
            ended(&gh, Some(r#"{"action": "closed", "number": 9}"#)),
            [Ended::PullRequest("9".into())]
        );
        assert!(ended(&gh, Some(r#"{"action": "synchronize", "number": 9}"#)).is_empty());
        assert!(ended(&gh, Some(r#"{"action": "closed", "number": 0}"#)).is_empty());
        assert!(ended(&gh, Some("not json")).is_empty());
        let del = vars(&[("GITHUB_EVENT_NAME", "delete")]);
        assert_eq!(
            ended(&del, Some(r#"{"ref": "feature/x", "ref_type": "branch"}"#)),
            [Ended::Branch("feature/x".into())]
        );
        assert!(ended(&del, Some(r#"{"ref": "v1", "ref_type": "tag"}"#)).is_empty());
        assert!(ended(&vars(&[]), None).is_empty());
        // A GitHub Actions job on a runner CodeBuild hosts: the runner's CodeBuild event is
        // not the job's, and the closed pull request is still seen.
        let runner = vars(&[
            ("CODEBUILD_WEBHOOK_EVENT", "WORKFLOW_JOB_QUEUED"),
            ("GITHUB_ACTIONS", "true"),
            ("GITHUB_EVENT_NAME", "pull_request"),
        ]);
        assert_eq!(
            ended(&runner, Some(r#"{"action": "closed", "number": 9}"#)),
            [Ended::PullRequest("9".into())]
        );
    }
}
