//! One masker for every secret: SecureString values and credentials are registered as they are
//! loaded, and every piece of output Ferry prints (logs, errors, progress, JSON, reports, the
//! captured output of child processes) goes through [`Masker::mask`].

use std::sync::{Arc, RwLock};

/// What a secret is replaced with.
pub const MASK: &str = "****";

/// Shared, cheap to clone; registering from any thread is fine.
#[derive(Debug, Clone, Default)]
pub struct Masker {
    secrets: Arc<RwLock<Vec<String>>>,
}

impl Masker {
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers a secret value. Empty values are ignored.
    pub fn register(&self, secret: &str) {
        let secret = secret.trim();
        if secret.is_empty() {
            return;
        }
        let mut s = self.secrets.write().expect("masker lock");
        if !s.iter().any(|x| x == secret) {
            s.push(secret.to_string());
            // Longest first, so a secret containing another is masked whole.
            s.sort_by_key(|x| std::cmp::Reverse(x.len()));
        }
    }

    /// `text` with every registered secret replaced by [`MASK`].
    pub fn mask(&self, text: &str) -> String {
        let secrets = self.secrets.read().expect("masker lock");
        let mut out = text.to_string();
        for s in secrets.iter() {
            if out.contains(s.as_str()) {
                out = out.replace(s.as_str(), MASK);
            }
        }
        out
    }

    /// Whether `text` is a registered secret, or holds one of at least 8 characters. A
    /// shorter secret inside a longer text (`1` in a URL) is too likely to be a coincidence to
    /// refuse the text for: [`mask`](Self::mask) still hides it wherever it is printed.
    pub fn holds_secret(&self, text: &str) -> bool {
        let secrets = self.secrets.read().expect("masker lock");
        secrets
            .iter()
            .any(|s| text.trim() == s || (s.len() >= 8 && text.contains(s.as_str())))
    }

    pub fn len(&self) -> usize {
        self.secrets.read().expect("masker lock").len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_text_holds_a_secret_when_it_is_one_or_contains_a_long_one() {
        let m = Masker::new();
        m.register("1");
        m.register("correct-horse");
        assert!(m.holds_secret("1"));
        assert!(!m.holds_secret("https://api.example.com/v1"));
        assert!(m.holds_secret("https://x/?t=correct-horse"));
        assert!(!m.holds_secret("correct"));
    }

    #[test]
    fn masks_every_registered_secret_longest_first() {
        let m = Masker::new();
        m.register("hunter2");
        m.register("hunter2-extended");
        m.register("  ");
        assert_eq!(m.len(), 2);
        assert_eq!(
            m.mask("a hunter2-extended and hunter2."),
            "a **** and ****."
        );
        let clone = m.clone();
        clone.register("AKIAEXAMPLE");
        assert_eq!(
            m.mask("key AKIAEXAMPLE"),
            "key ****",
            "clones share one list"
        );
    }
}
