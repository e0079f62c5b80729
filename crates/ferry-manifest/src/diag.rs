use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

/// One problem in the configuration: where it is, which key, what is wrong and what to do.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Diagnostic {
    /// Path relative to the repository root, with `/` separators.
    pub file: PathBuf,
    /// 1-based line, where the parser knows it.
    pub line: Option<usize>,
    /// Dotted key path, e.g. `stages.dev.region` or `service.depends-on`.
    pub key: Option<String>,
    /// What is wrong, then what to do.
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        if let Some(key) = &self.key {
            write!(f, ": {key}")?;
        }
        write!(f, ": {}", self.message)
    }
}

/// Every problem found while loading a workspace, sorted by file and line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{} in the Ferry configuration:\n{}", count(.0.len()), render(.0))]
pub struct ManifestErrors(pub Vec<Diagnostic>);

fn count(n: usize) -> String {
    if n == 1 {
        "1 problem".into()
    } else {
        format!("{n} problems")
    }
}

fn render(diags: &[Diagnostic]) -> String {
    diags
        .iter()
        .map(|d| format!("  {d}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Collects diagnostics for one source file, turning byte spans into line numbers.
pub(crate) struct FileDiags<'a> {
    pub file: PathBuf,
    src: &'a str,
    pub out: &'a mut Vec<Diagnostic>,
}

impl<'a> FileDiags<'a> {
    pub fn new(file: &Path, src: &'a str, out: &'a mut Vec<Diagnostic>) -> Self {
        FileDiags {
            file: file.to_path_buf(),
            src,
            out,
        }
    }

    pub fn line_of(&self, span: &Range<usize>) -> usize {
        let end = span.start.min(self.src.len());
        self.src.as_bytes()[..end]
            .iter()
            .filter(|&&b| b == b'\n')
            .count()
            + 1
    }

    pub fn error(
        &mut self,
        span: Option<Range<usize>>,
        key: Option<&str>,
        message: impl Into<String>,
    ) {
        let line = span.map(|s| self.line_of(&s));
        self.out.push(Diagnostic {
            file: self.file.clone(),
            line,
            key: key.map(String::from),
            message: message.into(),
        });
    }
}

/// The closest candidate within a small edit distance, for "did you mean" hints.
pub(crate) fn suggest<'c>(
    input: &str,
    candidates: impl IntoIterator<Item = &'c str>,
) -> Option<&'c str> {
    let normalized = input.to_ascii_lowercase().replace('_', "-");
    candidates
        .into_iter()
        .map(|c| (edit_distance(&normalized, c), c))
        .filter(|(d, c)| *d <= 2.max(c.len() / 3))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// `"; did you mean `x`?"` for the closest candidate, or an empty string.
pub fn did_you_mean<'c>(input: &str, candidates: impl IntoIterator<Item = &'c str>) -> String {
    match suggest(input, candidates) {
        Some(s) => format!("; did you mean `{s}`?"),
        None => String::new(),
    }
}

/// `text` as a message quotes input it refuses: whole up to `max` characters, else its first
/// `max` and how many more (a 3,000-character id echoed back whole hides the message).
pub fn clipped(text: &str, max: usize) -> String {
    let n = text.chars().count();
    if n <= max {
        return text.to_string();
    }
    let head: String = text.chars().take(max).collect();
    format!("{head}… ({} more characters)", n - max)
}

/// The first `shown` of `items` joined with `, `, and ` and N more` when there are others: how
/// a message names a list that may be long (paths, files).
pub fn first_few<S: AsRef<str>>(items: &[S], shown: usize) -> String {
    let mut text = items
        .iter()
        .take(shown)
        .map(AsRef::as_ref)
        .collect::<Vec<_>>()
        .join(", ");
    if items.len() > shown {
        text.push_str(&format!(" and {} more", items.len() - shown));
    }
    text
}

/// Whether `a` is `b` with one letter added, dropped or changed, or two neighbours swapped
/// (`stagin`, `stagign`, `dve` of `staging` and `dev`): a slip of the keyboard, more than a
/// near name.
pub(crate) fn one_slip(a: &str, b: &str) -> bool {
    let (x, y): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    let swapped = x.len() == y.len() && {
        let differ: Vec<usize> = (0..x.len()).filter(|&i| x[i] != y[i]).collect();
        matches!(differ.as_slice(), [i, j] if *j == i + 1 && x[*i] == y[*j] && x[*j] == y[*i])
    };
    swapped || edit_distance(a, b) == 1
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            cur[j + 1] = sub.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_few_names_the_first_ones_and_counts_the_rest() {
        assert_eq!(first_few::<&str>(&[], 3), "");
        assert_eq!(first_few(&["a", "b"], 3), "a, b");
        assert_eq!(first_few(&["a", "b", "c"], 3), "a, b, c");
        assert_eq!(
            first_few(&["a", "b", "c", "d", "e"], 3),
            "a, b, c and 2 more"
        );
    }

    #[test]
    fn suggestions_catch_near_misses_only() {
        assert_eq!(
            suggest("depends_on", ["name", "template", "depends-on", "inputs"]),
            Some("depends-on")
        );
        assert_eq!(suggest("regoin", ["region", "account"]), Some("region"));
        assert_eq!(suggest("colour", ["region", "account"]), None);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        for (slip, of) in [
            ("dve", "dev"),
            ("stagin", "staging"),
            ("prdo", "prod"),
            ("prodd", "prod"),
            ("stageing", "staging"),
        ] {
            assert!(one_slip(slip, of), "{slip}");
        }
        for (other, of) in [
            ("pr-3", "prod"),
            ("dev", "dev"),
            ("feat", "dev"),
            ("qa-2", "qa"),
            ("ved", "dev"),
        ] {
            assert!(!one_slip(other, of), "{other}");
        }
    }
}
