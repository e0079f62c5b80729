//! YAML read from the repository (templates, `serverless.yml`, lock files), guarded against
//! input that would take the parser unbounded time.

use serde::de::DeserializeOwned;

/// Deepest nesting of YAML flow collections (`[…]`, `{…}`) Ferry reads. Real files stay far
/// below it; the YAML parser takes quadratic time on deep flow nesting (20,000 levels of
/// `{a: …}` take a second, 500,000 over a minute), so deeper input is refused before it is
/// parsed.
pub const MAX_FLOW_DEPTH: usize = 100;

/// The line at which YAML flow collections nest deeper than `max`, if they do. Brackets in
/// quoted scalars and comments do not count; a close never takes the depth below zero.
pub fn flow_too_deep(text: &str, max: usize) -> Option<usize> {
    let mut depth = 0usize;
    for (n, line) in text.lines().enumerate() {
        let mut quote: Option<char> = None;
        let mut prev = ' ';
        let mut chars = line.chars().peekable();
        while let Some(c) = chars.next() {
            match (quote, c) {
                // '' is an escaped quote inside a single-quoted scalar.
                (Some('\''), '\'') if chars.peek() == Some(&'\'') => {
                    chars.next();
                }
                (Some('"'), '\\') => {
                    chars.next();
                }
                (Some(q), c) if c == q => quote = None,
                (Some(_), _) => {}
                (None, '#') if prev.is_whitespace() => break,
                (None, '\'' | '"') if prev.is_whitespace() || "[{,:".contains(prev) => {
                    quote = Some(c)
                }
                (None, '[' | '{') => {
                    depth += 1;
                    if depth > max {
                        return Some(n + 1);
                    }
                }
                (None, ']' | '}') => depth = depth.saturating_sub(1),
                _ => {}
            }
            prev = c;
        }
    }
    None
}

/// Parses YAML, refusing first flow nesting deeper than [`MAX_FLOW_DEPTH`]; the error says why.
pub fn from_str<T: DeserializeOwned>(text: &str) -> Result<T, String> {
    if let Some(line) = flow_too_deep(text, MAX_FLOW_DEPTH) {
        return Err(format!(
            "its flow collections ([…], {{…}}) nest deeper than {MAX_FLOW_DEPTH} levels at line {line}; no real file needs that many"
        ));
    }
    serde_yaml_ng::from_str(text).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deep_flow_nesting_is_refused_before_parsing_and_quotes_do_not_count() {
        let deep = format!("{}{}", "{a: ".repeat(500_000), "}".repeat(500_000));
        // Refused before the parser sees it (which would take minutes).
        let err = from_str::<serde_yaml_ng::Value>(&deep).unwrap_err();
        assert!(err.contains("deeper than 100 levels at line 1"), "{err}");
        let quoted = format!("a: \"{}\"\n# {}\n", "[".repeat(200), "{".repeat(200));
        assert!(from_str::<serde_yaml_ng::Value>(&quoted).is_ok());
        assert_eq!(flow_too_deep("a: [[[]]]\n", 2), Some(1));
    }
}
