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
/// below zero. It reads as YAML does where that decides what hides a bracket: a quote opens a
/// scalar only where a value starts, a comment needs a space or tab before it, lines end at any
/// of YAML's line breaks, and a block scalar's text is what is indented deeper than the node
/// that holds it. A quote still open at the end (which YAML would have refused) proves
/// nothing: the text is then read again with no quotes at all.
pub fn flow_too_deep(text: &str, max: usize) -> Option<usize> {
    match scan(text, max, true) {
        Scan::Open => match scan(text, max, false) {
            Scan::Deep(line) => Some(line),
            _ => None,
        },
        Scan::Deep(line) => Some(line),
        Scan::Shallow => None,
    }
}

enum Scan {
    Deep(usize),
    Shallow,
    /// A quote was still open at the end.
    Open,
}

/// YAML's line breaks: line feed, carriage return (alone or before a line feed), next line,
/// line and paragraph separators. Numbered by line feeds, as editors number them.
fn yaml_lines(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.split('\n').enumerate().flat_map(|(n, line)| {
        line.split(['\r', '\u{85}', '\u{2028}', '\u{2029}'])
            .map(move |part| (n + 1, part))
    })
}

fn scan(text: &str, max: usize, quotes: bool) -> Scan {
    let blank = |c: char| c == ' ' || c == '\t';
    let mut depth = 0usize;
    let mut quote: Option<char> = None;
    // The column a block scalar's text must be indented past, while in one.
    let mut block: Option<usize> = None;
    for (n, line) in yaml_lines(text) {
        let indent = line.len() - line.trim_start_matches(' ').len();
        if quote.is_none()
            && let Some(b) = block
        {
            if line.trim_matches(blank).is_empty() || indent > b {
                continue;
            }
            block = None;
        }
        // Where the node the line holds starts: past its indentation and any `- ` or `? `.
        let mut node = indent;
        while let Some(rest) = line.get(node..)
            && (rest.starts_with("- ") || rest.starts_with("? ") || rest.starts_with("-\t"))
        {
            node += 2;
            node += line[node..].len() - line[node..].trim_start_matches(blank).len();
        }
        // Whether a value may start here (a quoted scalar, a block scalar's header).
        let mut starts = quote.is_none();
        let mut prev = ' ';
        // A block scalar's header (`|`, `>`, then indicators) ends the line, when it does.
        let mut header = false;
        let chars: Vec<char> = line.chars().collect();
        let mut i = 0;
        while i < chars.len() {
            let c = chars[i];
            let next = chars.get(i + 1).copied();
            let ends = next.is_none_or(blank);
            match quote {
                Some('\'') => {
                    if c == '\'' {
                        if next == Some('\'') {
                            i += 1;
                        } else {
                            quote = None;
                        }
                    }
                }
                Some(_) => {
                    if c == '\\' {
                        i += 1;
                    } else if c == '"' {
                        quote = None;
                    }
                }
                None => match c {
                    ' ' | '\t' => {}
                    '#' if blank(prev) => break,
                    '\'' | '"' if quotes && starts => {
                        quote = Some(c);
                        starts = false;
                        header = false;
                    }
                    '[' | '{' => {
                        depth += 1;
                        if depth > max {
                            return Scan::Deep(n);
                        }
                        starts = true;
                        header = false;
                    }
                    ']' | '}' => {
                        depth = depth.saturating_sub(1);
                        starts = false;
                        header = false;
                    }
                    ',' if depth > 0 => {
                        starts = true;
                        header = false;
                    }
                    '-' | '?' if starts && ends => {}
                    ':' if ends || depth > 0 => {
                        starts = true;
                        header = false;
                    }
                    '|' | '>' if starts && depth == 0 => {
                        header = true;
                        starts = false;
                    }
                    '+' | '-' | '0'..='9' if header => {}
                    _ => {
                        starts = false;
                        header = false;
                    }
                },
            }
            prev = c;
            i += 1;
        }
        if header && quote.is_none() {
            block = Some(node);
        }
    }
    if quote.is_some() {
        Scan::Open
    } else {
        Scan::Shallow
    }
}

/// Parses YAML, refusing first flow nesting deeper than [`MAX_FLOW_DEPTH`]; the error says why.
pub fn from_str<T: DeserializeOwned>(text: &str) -> Result<T, String> {
    if let Some(line) = flow_too_deep(text, MAX_FLOW_DEPTH) {
        return Err(format!(
            "its flow collections ([…], {{…}}) nest deeper than {MAX_FLOW_DEPTH} levels at line {line}; no real file needs that many"
        ));
    }
    serde_yaml_ng::from_str(text).map_err(|e| error_text(&e))
}

/// A YAML parser's error in words a reader acts on: the parser's own, and for its limits
/// (`repetition limit exceeded`, `recursion limit exceeded`) what they mean and what to change.
pub fn error_text(e: &serde_yaml_ng::Error) -> String {
    let text = e.to_string();
    let hint = if text.contains("repetition limit exceeded") {
        " (its aliases (*name) expand to too many values, as a \"billion laughs\" file's do: write the values out, or alias fewer)"
    } else if text.contains("recursion limit exceeded") {
        " (it nests too deeply: no real file needs that many levels)"
    } else {
        ""
    };
    format!("{text}{hint}")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A "billion laughs" file (aliases of aliases) is refused by the parser's limit, in words
    /// that say what it means (before, only "repetition limit exceeded").
    #[test]
    fn an_alias_bomb_is_refused_saying_what_the_limit_means() {
        let mut text = String::from("a: &a [x, x, x, x, x, x, x, x, x, x]\n");
        for (i, name) in ["b", "c", "d", "e", "f", "g", "h", "i"].iter().enumerate() {
            let prev = ["a", "b", "c", "d", "e", "f", "g", "h"][i];
            let refs = vec![format!("*{prev}"); 10].join(", ");
            text.push_str(&format!("{name}: &{name} [{refs}]\n"));
        }
        let e = from_str::<serde_yaml_ng::Value>(&text).unwrap_err();
        assert!(
            e.contains("repetition limit exceeded") && e.contains("billion laughs"),
            "{e}"
        );
    }

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
        // Quotes YAML does not open (inside a plain scalar) hide nothing; nor does a quote
        // still open at the end, nor a carriage return or a non-breaking space.
        let deep = "[".repeat(150);
        for hiding in [
            format!("a: b '\nc: {deep}\n"),
            format!("a: b:'c\nd: {deep}\n"),
            format!("a: '\nc: {deep}\n"),
            format!("# note\rx: {deep}\n"),
            format!("a: |\n  text\rb: {deep}\n"),
            format!("x: [a, \u{a0}#b, {deep}]\n"),
            // Block text is what is indented past the node holding it, not past the line.
            format!("- a: |\n  b: {deep}\n"),
            format!("- - |\n  - {deep}\n"),
        ] {
            assert!(flow_too_deep(&hiding, 100).is_some(), "{hiding:?}");
        }
        // After the block, collections count again.
        let after = format!("a: |\n  text\nb: {}\n", "[".repeat(150));
        assert_eq!(flow_too_deep(&after, 100), Some(3));
    }
}
