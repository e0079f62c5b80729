//! The folder cache: what each service folder parsed to, keyed by the folder's content id, kept
//! between loads in a file.

use std::collections::{HashMap, HashSet};
use std::fs;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::parsed::Parsed;

/// What is known of a folder with a given content id.
#[derive(Debug, Clone, Serialize, Deserialize)]
enum Entry {
    /// No `service.toml` in it.
    NotAService,
    /// A valid service: its manifest text (for the line numbers of a later problem, e.g. an
    /// unknown dependency) and what it parsed to.
    Service {
        manifest: String,
        parsed: Box<Parsed>,
    },
}

/// Parsed-folder cache keyed by `(folder, content id)`, for sources that have content ids. A
/// folder whose id is unchanged needs no read and no parse. Only services that loaded without a
/// problem and whose template lies inside their folder are kept. A cache written by another
/// build of Ferry is not used (the rules that parsed it may differ).
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct ManifestCache {
    version: u32,
    build: String,
    entries: HashMap<String, Entry>,
    #[serde(skip)]
    used: HashSet<String>,
    #[serde(skip)]
    changed: bool,
}

const CACHE_VERSION: u32 = 2;

impl ManifestCache {
    /// Reads a cache file; a missing, unreadable or outdated one, or one of another build, gives
    /// an empty cache.
    pub fn read(path: &Path) -> ManifestCache {
        let build = crate::memo::build_id();
        fs::read(path)
            .ok()
            .and_then(|b| postcard::from_bytes::<ManifestCache>(crate::memo::unseal(&b)?).ok())
            .filter(|c| c.version == CACHE_VERSION && c.build == build)
            .unwrap_or_else(|| ManifestCache {
                version: CACHE_VERSION,
                build,
                ..Default::default()
            })
    }

    /// Writes the cache (only the entries used by the last load) when it changed. Atomic: a
    /// temporary file renamed into place.
    pub fn write(&mut self, path: &Path) -> std::io::Result<()> {
        let unused = self.entries.len() != self.used.len();
        if !self.changed && !unused {
            return Ok(());
        }
        let used = std::mem::take(&mut self.used);
        self.entries.retain(|k, _| used.contains(k));
        self.used = used;
        // Two runs in one checkout (batch nodes on one machine) may write at once.
        crate::write_atomic(
            path,
            crate::memo::seal(postcard::to_stdvec(self).map_err(std::io::Error::other)?),
        )?;
        self.changed = false;
        Ok(())
    }

    fn key(dir: &str, id: &str) -> String {
        format!("{dir}\t{id}")
    }

    /// `Some(None)`: known not to be a service; `Some(Some((text, parsed)))`: a cached service.
    pub(crate) fn get(&mut self, dir: &str, id: &str) -> Option<Option<(&str, &Parsed)>> {
        let key = Self::key(dir, id);
        let entry = self.entries.get(&key)?;
        self.used.insert(key);
        Some(match entry {
            Entry::NotAService => None,
            Entry::Service { manifest, parsed } => Some((manifest.as_str(), parsed)),
        })
    }

    pub(crate) fn put(&mut self, dir: &str, id: &str, service: Option<(String, Parsed)>) {
        let key = Self::key(dir, id);
        self.used.insert(key.clone());
        let entry = match service {
            Some((manifest, parsed)) => Entry::Service {
                manifest,
                parsed: Box::new(parsed),
            },
            None => Entry::NotAService,
        };
        self.entries.insert(key, entry);
        self.changed = true;
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}
