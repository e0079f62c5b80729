use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::Outputs;

/// All outputs of a stage: service → key → value. Written as JSON (like CDK's outputs file) or as
/// `FERRY_OUTPUT_<SERVICE>_<KEY>=value` lines.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct OutputsFile {
    pub stage: String,
    pub services: BTreeMap<String, Outputs>,
}

/// `FERRY_OUTPUT_<SERVICE>_<KEY>`: uppercase, other characters as `_`.
pub fn env_name(service: &str, key: &str) -> String {
    let up = |s: &str| {
        s.chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() {
                    c.to_ascii_uppercase()
                } else {
                    '_'
                }
            })
            .collect::<String>()
    };
    format!("FERRY_OUTPUT_{}_{}", up(service), up(key))
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

    pub fn env(&self) -> String {
        let mut out = String::new();
        for (service, outputs) in &self.services {
            for (k, v) in outputs {
                out.push_str(&format!("{}={v}\n", env_name(service, k)));
            }
        }
        out
    }

    pub fn text(&self) -> String {
        let mut out = String::new();
        for (service, outputs) in &self.services {
            out.push_str(&format!("{service}\n"));
            for (k, v) in outputs {
                out.push_str(&format!("  {k} = {v}\n"));
            }
        }
        out
    }

    /// `<dir>/outputs-<stage id>.json`, written atomically.
    pub fn write(&self, dir: &Path, stage_id: &str) -> std::io::Result<PathBuf> {
        std::fs::create_dir_all(dir)?;
        let path = dir.join(format!("outputs-{stage_id}.json"));
        let tmp = path.with_extension("json.tmp");
        std::fs::write(&tmp, self.json())?;
        std::fs::rename(&tmp, &path)?;
        Ok(path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        let f = OutputsFile {
            stage: "dev".into(),
            services: BTreeMap::from([(
                "api".into(),
                BTreeMap::from([("FunctionName".into(), "fn-1".into())]),
            )]),
        };
        assert_eq!(f.env(), "FERRY_OUTPUT_API_FUNCTIONNAME=fn-1\n");
        assert_eq!(env_name("my-svc", "Url"), "FERRY_OUTPUT_MY_SVC_URL");
        assert_eq!(f.text(), "api\n  FunctionName = fn-1\n");
        let tmp = tempfile::tempdir().unwrap();
        let p = f.write(tmp.path(), "dev").unwrap();
        let back: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap();
        assert_eq!(back["services"]["api"]["FunctionName"], "fn-1");
    }
}
