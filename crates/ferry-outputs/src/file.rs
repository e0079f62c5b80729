use std::collections::BTreeMap;
use std::path::Path;

use serde::Serialize;

use crate::Outputs;

/// All outputs of a stage: service → key → value. Written as JSON (like CDK's outputs file) or as
/// `FERRY_OUTPUT_<SERVICE>_<KEY>=value` lines.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct OutputsFile {
    pub stage: String,
    pub services: BTreeMap<String, Outputs>,
}

/// An output [`OutputsFile::env`] leaves out, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeftOut {
    /// Its value holds a line break (or a NUL).
    LineBreak { var: String },
    /// Outputs whose names give the one variable `var` (`service.Key`, each).
    Shared { var: String, outputs: Vec<String> },
}

impl std::fmt::Display for LeftOut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LeftOut::LineBreak { var } => write!(
                f,
                "{var} (its value holds a line break, which a line of `$GITHUB_ENV` or a dotenv file cannot hold: the rest of the value would set variables of its own)"
            ),
            LeftOut::Shared { var, outputs } => write!(
                f,
                "{var} (outputs {} all give that name, and the last would stand for the others)",
                outputs.join(", ")
            ),
        }
    }
}

impl OutputsFile {
    /// The same outputs with `mask` applied to every value (secrets a stack output echoes must
    /// not reach a file, a terminal or a record).
    pub fn masked(&self, mask: &dyn Fn(&str) -> String) -> OutputsFile {
        OutputsFile {
            stage: self.stage.clone(),
            services: self
                .services
                .iter()
                .map(|(s, o)| {
                    let o = o.iter().map(|(k, v)| (k.clone(), mask(v))).collect();
                    (s.clone(), o)
                })
                .collect(),
        }
    }

    pub fn json(&self) -> String {
        serde_json::to_string_pretty(self).expect("outputs serialise") + "\n"
    }

    /// `FERRY_OUTPUT_<SERVICE>_<KEY>=value` lines, each a POSIX shell assignment that runs
    /// nothing when the file is sourced: a value holding anything but letters, digits and
    /// `-_.:/@%+,=` is single-quoted (`~` too, which a shell expands; a quote in it as `'\''`). A value with a line break (or a
    /// NUL) cannot be one line of a `$GITHUB_ENV` or dotenv file, where the rest would set
    /// variables of its own: it is left out, and its variable's name returned. So are outputs
    /// whose names give one variable (`Url` and `URL` of one service, which CloudFormation
    /// tells apart): sourced, the last would stand for both.
    pub fn env(&self) -> (String, Vec<LeftOut>) {
        let mut out = String::new();
        let mut left_out = Vec::new();
        let givers = ferry_env::output_vars(
            self.services
                .iter()
                .flat_map(|(s, o)| o.keys().map(move |k| (s.as_str(), k.as_str()))),
        );
        for (var, outputs) in &givers {
            if outputs.len() > 1 {
                left_out.push(LeftOut::Shared {
                    var: var.clone(),
                    outputs: outputs.iter().map(|(s, k)| format!("{s}.{k}")).collect(),
                });
            }
        }
        for (service, outputs) in &self.services {
            for (k, v) in outputs {
                let name = ferry_env::output_var(service, k);
                if givers[&name].len() > 1 {
                    continue;
                }
                if v.contains(['\n', '\r', '\0']) {
                    left_out.push(LeftOut::LineBreak { var: name });
                    continue;
                }
                let plain = v.chars().all(|c| {
                    c.is_ascii_alphanumeric()
                        || matches!(c, '-' | '_' | '.' | ':' | '/' | '@' | '%' | '+' | ',' | '=')
                });
                if plain {
                    out.push_str(&format!("{name}={v}\n"));
                } else {
                    out.push_str(&format!("{name}='{}'\n", v.replace('\'', "'\\''")));
                }
            }
        }
        (out, left_out)
    }

    /// The outputs for people: each service, then `Key = value` lines, a value on one line
    /// ([`ferry_ci::one_line`]: an output's value is whatever its template made it, and a
    /// line break in it would forge a line of its own).
    pub fn text(&self) -> String {
        let mut out = String::new();
        for (service, outputs) in &self.services {
            out.push_str(&format!("{service}\n"));
            for (k, v) in outputs {
                out.push_str(&format!("  {k} = {}\n", ferry_ci::one_line(v)));
            }
        }
        out
    }

    /// Writes the JSON to `path` (see `Layout::outputs_file`) atomically: a reader sees the old
    /// file or the new one, never half of one (and two processes writing it at once each write
    /// their own temporary file: the last rename wins).
    pub fn write(&self, path: &Path) -> std::io::Result<()> {
        ferry_manifest::write_atomic(path, self.json())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Sourcing the env format runs nothing a stack output holds, and a value with a line break
    /// cannot set a variable of its own (in `$GITHUB_ENV` every line is one): it is left out.
    #[test]
    fn env_values_are_shell_words_and_line_breaks_are_left_out() {
        let f = OutputsFile {
            stage: "dev".into(),
            services: BTreeMap::from([(
                "api".into(),
                BTreeMap::from([
                    ("Url".into(), "https://x.example/dev?a=1,b".into()),
                    ("Run".into(), "$(touch pwned) `id` it's".into()),
                    ("Two".into(), "line1\nFOO=bar".into()),
                    ("Empty".into(), String::new()),
                    ("Home".into(), "x:~/y".into()),
                ]),
            )]),
        };
        let (text, left_out) = f.env();
        assert_eq!(
            left_out,
            [LeftOut::LineBreak {
                var: "FERRY_OUTPUT_API_TWO".into()
            }]
        );
        assert_eq!(
            text,
            "FERRY_OUTPUT_API_EMPTY=\nFERRY_OUTPUT_API_HOME='x:~/y'\nFERRY_OUTPUT_API_RUN='$(touch pwned) `id` it'\\''s'\nFERRY_OUTPUT_API_URL='https://x.example/dev?a=1,b'\n"
        );
        // What a shell makes of it: the values, verbatim, and nothing run.
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("outputs.env");
        std::fs::write(&file, &text).unwrap();
        let shown = std::process::Command::new("sh")
            .current_dir(dir.path())
            .arg("-c")
            .arg(r#". ./outputs.env && printf '%s|%s' "$FERRY_OUTPUT_API_RUN" "$FERRY_OUTPUT_API_URL""#)
            .output()
            .unwrap();
        assert_eq!(
            String::from_utf8_lossy(&shown.stdout),
            "$(touch pwned) `id` it's|https://x.example/dev?a=1,b"
        );
        assert!(!dir.path().join("pwned").exists());
    }

    #[test]
    fn formats() {
        let f = OutputsFile {
            stage: "dev".into(),
            services: BTreeMap::from([(
                "api".into(),
                BTreeMap::from([("FunctionName".into(), "fn-1".into())]),
            )]),
        };
        assert_eq!(
            f.env(),
            ("FERRY_OUTPUT_API_FUNCTIONNAME=fn-1\n".to_string(), vec![])
        );
        // Names CloudFormation tells apart that give one variable: both left out, said once.
        let shared = OutputsFile {
            stage: "dev".into(),
            services: BTreeMap::from([(
                "vault".into(),
                BTreeMap::from([
                    ("PlainOut".into(), "a".into()),
                    ("PLAINOUT".into(), "b".into()),
                    ("Other".into(), "c".into()),
                ]),
            )]),
        };
        let (text, left) = shared.env();
        assert_eq!(text, "FERRY_OUTPUT_VAULT_OTHER=c\n");
        assert_eq!(
            left,
            [LeftOut::Shared {
                var: "FERRY_OUTPUT_VAULT_PLAINOUT".into(),
                outputs: vec!["vault.PLAINOUT".into(), "vault.PlainOut".into()],
            }]
        );
        assert_eq!(f.text(), "api\n  FunctionName = fn-1\n");
        // A value whose line break would forge a line of its own is one line.
        let forged = OutputsFile {
            services: BTreeMap::from([(
                "api".into(),
                BTreeMap::from([("Url".into(), "x\nFAKE = y\u{1b}[2J".into())]),
            )]),
            ..f.clone()
        };
        assert_eq!(forged.text(), "api\n  Url = x FAKE = y\\u{1b}[2J\n");
        let tmp = tempfile::tempdir().unwrap();
        let p = tmp.path().join("outputs-dev.json");
        f.write(&p).unwrap();
        let back: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
        assert_eq!(back["services"]["api"]["FunctionName"], "fn-1");
    }
}
