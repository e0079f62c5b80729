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
                out.push_str(&format!("{}={v}\n", ferry_env::output_var(service, k)));
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

    /// Writes the JSON to `path` (see `Layout::outputs_file`) atomically: a reader sees the old
    /// file or the new one, never half of one (and two processes writing it at once each write
    /// their own temporary file: the last rename wins).
    pub fn write(&self, path: &Path) -> std::io::Result<()> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let tmp = path.with_extension(format!("json.{}.tmp", std::process::id()));
        std::fs::write(&tmp, self.json())?;
        std::fs::rename(&tmp, path)
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
        assert_eq!(f.text(), "api\n  FunctionName = fn-1\n");
        let tmp = tempfile::tempdir().unwrap();
        let p = tmp.path().join("outputs-dev.json");
        f.write(&p).unwrap();
        let back: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
        assert_eq!(back["services"]["api"]["FunctionName"], "fn-1");
    }
}
