//! YAML read from the repository (templates, `serverless.yml`, lock files), guarded against
//! input that would take the parser unbounded time.

use serde::de::DeserializeOwned;

/// Deepest nesting of YAML flow collections (`[…]`, `{…}`) Ferry reads. Real files stay far
/// below it; the YAML parser takes quadratic time on deep flow nesting (20,000 levels of
/// `{a: …}` take a second, 500,000 over a minute), so deeper input is refused before it is
/// parsed.
pub const MAX_FLOW_DEPTH: usize = 100;

/// The line at which YAML flow collections nest deeper than `max`, if they do. Brackets in
/// quoted scalars (which may run over several lines), in block scalars (`key: |`, `- >-` and
/// the lines indented below them) and in comments do not count; a close never takes the depth
/// below zero.
pub fn flow_too_deep(text: &str, max: usize) -> Option<usize> {
    let mut depth = 0usize;
    let mut quote: Option<char> = None;
    // The indentation of the line that opened a block scalar: lines indented deeper (and blank
    // ones) are its text.
    let mut block: Option<usize> = None;
    for (n, line) in text.lines().enumerate() {
        let indent = line.len() - line.trim_start_matches(' ').len();
        if let Some(b) = block {
            if line.trim().is_empty() || indent > b {
                continue;
            }
            block = None;
        }
        let mut prev = ' ';
        let mut chars = line.chars().peekable();
        let mut outside = String::new();
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
            if quote.is_none() {
                outside.push(c);
            }
            prev = c;
        }
        // A block scalar's header ends its line: `|` or `>`, then chomping or indentation
        // indicators, after `:`, `-` or a space.
        if quote.is_none() {
            let said = outside.trim_end();
            let token = said.rsplit(char::is_whitespace).next().unwrap_or(said);
            let opens = token.starts_with(['|', '>'])
                && token[1..]
                    .chars()
                    .all(|c| c == '+' || c == '-' || c.is_ascii_digit());
            // (Only outside flow collections, where YAML allows a block scalar at all.)
            if opens && depth == 0 && said.len() > token.len() {
                block = Some(indent);
            }
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
        // Block scalars and quoted scalars over several lines hold text, not collections.
        let block = format!(
            "a: |\n  {}\n  more\nb: >-\n    {}\nc:\n  - |2\n     {}\nd: [1]\n",
            "[".repeat(150),
            "{".repeat(150),
            "[".repeat(150)
        );
        assert_eq!(flow_too_deep(&block, 100), None, "{block}");
        let quoted = format!("a: \"x\n  {}\n  y\"\nb: 1\n", "[".repeat(150));
        assert_eq!(flow_too_deep(&quoted, 100), None);
        // A header with a comment after it opens a block too.
        let commented = format!("a: |  # text\n  {}\n", "[".repeat(150));
        assert_eq!(flow_too_deep(&commented, 100), None);
        // After the block, collections count again.
        let after = format!("a: |\n  text\nb: {}\n", "[".repeat(150));
        assert_eq!(flow_too_deep(&after, 100), Some(3));
    }
}
