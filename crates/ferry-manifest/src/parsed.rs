//! What a `service.toml` parses to: [`ServiceDraft`] while a workspace loads, and [`Parsed`],
//! the part of it that the folder cache ([`crate::cache::ManifestCache`]) keeps.

use std::collections::BTreeMap;
use std::ops::Range;

use crate::model::Service;

/// One service read during a load, with what the checks across services need to point at the
/// right line of its manifest.
pub(crate) struct ServiceDraft {
    pub service: Service,
    /// dependency → where it was declared (span, key) in the service file.
    pub dep_sites: BTreeMap<String, (Range<usize>, String)>,
    /// The span of `service.name`, when the manifest sets it.
    pub name_span: Option<Range<usize>>,
    /// The manifest's text.
    pub src: String,
}

/// What a valid `service.toml` parsed to, as the folder cache keeps it: all that the checks
/// across services need, so a cached folder is neither read nor parsed again.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub(crate) struct Parsed {
    service: Service,
    dep_sites: BTreeMap<String, (Range<usize>, String)>,
    name_span: Option<Range<usize>>,
}

impl ServiceDraft {
    /// The draft of a cached folder: its manifest's text and what it parsed to.
    pub fn from_cached(src: &str, parsed: &Parsed) -> ServiceDraft {
        ServiceDraft {
            service: parsed.service.clone(),
            dep_sites: parsed.dep_sites.clone(),
            name_span: parsed.name_span.clone(),
            src: src.to_string(),
        }
    }

    /// What the folder cache keeps of this draft.
    pub fn to_parsed(&self) -> Parsed {
        Parsed {
            service: self.service.clone(),
            dep_sites: self.dep_sites.clone(),
            name_span: self.name_span.clone(),
        }
    }
}
