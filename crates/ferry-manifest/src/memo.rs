//! The whole loaded workspace of one content id (a commit's root tree), kept in one file
//! (postcard: a compact binary form that reads back several times faster than JSON).
//!
//! Loading the configuration of a commit reads and validates every `service.toml` of it; with
//! 1,000 services that is most of a commit plan's time. The same commit is loaded again and
//! again: `validate`, `plan`, `package`, `deploy` and `test-acceptance` in one CI build, a
//! developer's repeated `plan --head HEAD`. Equal root tree ids mean equal files, so the
//! validated result of the last load is reused as it is.
//!
//! A memo is only ever written for a load without a problem, and is used only by the same build
//! of Ferry (its version and the modification time and size of the running executable), so a
//! change to the rules never meets a result of the old rules.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

use ferry_graph::DepGraph;
use serde::{Deserialize, Serialize};

use crate::model::{Project, Service, StageConfig, Workspace};

/// Bump when the meaning of a stored field changes without its shape changing (2: the graph
/// orders a service after those it reads by naming a stage).
const MEMO_FORMAT: u32 = 2;

#[derive(Serialize)]
struct StoredRef<'w> {
    build: &'w str,
    id: &'w str,
    project: &'w Project,
    stages: &'w BTreeMap<String, StageConfig>,
    default_stage: &'w Option<StageConfig>,
    services: &'w [Service],
    graph: &'w DepGraph,
}

#[derive(Deserialize)]
struct Stored {
    build: String,
    id: String,
    project: Project,
    stages: BTreeMap<String, StageConfig>,
    default_stage: Option<StageConfig>,
    services: Vec<Service>,
    graph: DepGraph,
}

/// Identifies this build of Ferry: a memo written by another build is never used.
pub(crate) fn build_id() -> String {
    let exe = std::env::current_exe()
        .and_then(fs::metadata)
        .map(|m| {
            let mtime = m
                .modified()
                .ok()
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map_or(0, |d| d.as_nanos());
            format!("{mtime}:{}", m.len())
        })
        .unwrap_or_default();
    format!("{MEMO_FORMAT}:{}:{exe}", env!("CARGO_PKG_VERSION"))
}

/// The workspace stored for content id `id`, with `root` as its root; `None` when the memo is
/// missing, unreadable, of another id or of another build.
pub fn read_memo(path: &Path, id: &str, root: &Path) -> Option<Workspace> {
    let bytes = fs::read(path).ok()?;
    let stored: Stored = postcard::from_bytes(unseal(&bytes)?).ok()?;
    if stored.id != id || stored.build != build_id() {
        return None;
    }
    let graph = stored.graph;
    Some(Workspace {
        root: root.to_path_buf(),
        project: stored.project,
        stages: stored.stages,
        default_stage: stored.default_stage,
        services: stored.services,
        graph,
    })
}

/// Stores `ws` as the workspace of content id `id`, replacing any earlier memo. Atomic: a
/// temporary file renamed into place.
pub fn write_memo(path: &Path, id: &str, ws: &Workspace) -> std::io::Result<()> {
    write_as(&build_id(), path, id, ws)
}

fn write_as(build: &str, path: &Path, id: &str, ws: &Workspace) -> std::io::Result<()> {
    let stored = StoredRef {
        build,
        id,
        project: &ws.project,
        stages: &ws.stages,
        default_stage: &ws.default_stage,
        services: &ws.services,
        graph: &ws.graph,
    };
    crate::write_atomic(
        path,
        seal(postcard::to_stdvec(&stored).map_err(std::io::Error::other)?),
    )
}

/// `payload` followed by its CRC-32: a cache file changed on disk (a byte flipped, a CI cache
/// restored half) is read as none, never as a plan's wrong answer. (A name's bytes replaced by
/// others of the same length still decoded, and a changed service was planned as unchanged.)
pub(crate) fn seal(mut payload: Vec<u8>) -> Vec<u8> {
    let crc = crc32fast::hash(&payload);
    payload.extend_from_slice(&crc.to_le_bytes());
    payload
}

/// The payload of what [`seal`] wrote, if its CRC-32 holds.
pub(crate) fn unseal(bytes: &[u8]) -> Option<&[u8]> {
    let (payload, crc) = bytes.split_last_chunk::<4>()?;
    (crc32fast::hash(payload) == u32::from_le_bytes(*crc)).then_some(payload)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn workspace(dir: &Path) -> Workspace {
        fs::write(
            dir.join("ferry.toml"),
            "[project]\nname = \"shop\"\n\n[stages.dev]\nregion = \"eu-west-1\"\nparameters-path = \"/shop/dev\"\n\n[stages.\"*\"]\nregion = \"us-east-1\"\n",
        )
        .unwrap();
        for (name, manifest) in [
            (
                "database",
                "[service]\ntemplate = \"template.yaml\"\n\n[parameters]\nStage = \"${stage}\"\nLiteral = \"$${not-a-ref}\"\n",
            ),
            (
                "api",
                "[service]\ntemplate = \"template.yaml\"\ninputs = [\"shared/**\"]\n\n[parameters]\nTable = \"${output:database.TableName}\"\nKey = \"${ssm:api-key}\"\n\n[package]\nbuild = [\"make\"]\n[package.artifacts]\nFn = \"src\"\n\n[acceptance]\ncommand = [\"cargo\", \"test\"]\ntimeout = 30\n",
            ),
        ] {
            let d = dir.join("services").join(name);
            fs::create_dir_all(d.join("src")).unwrap();
            fs::write(d.join("service.toml"), manifest).unwrap();
            fs::write(d.join("template.yaml"), "Resources: {}\n").unwrap();
        }
        fs::create_dir_all(dir.join("shared")).unwrap();
        fs::write(dir.join("shared/lib.py"), "").unwrap();
        crate::load(dir).unwrap()
    }

    #[test]
    fn a_memo_gives_back_the_workspace_it_stored() {
        let tmp = tempfile::tempdir().unwrap();
        let ws = workspace(tmp.path());
        let memo = tmp.path().join("cache/workspace.bin");
        write_memo(&memo, "tree-1", &ws).unwrap();

        let back = read_memo(&memo, "tree-1", Path::new("/elsewhere")).expect("memo hit");
        assert_eq!(back.root, Path::new("/elsewhere"));
        assert_eq!(format!("{:?}", back.project), format!("{:?}", ws.project));
        assert_eq!(back.stages, ws.stages);
        assert_eq!(back.default_stage, ws.default_stage);
        assert_eq!(format!("{:?}", back.services), format!("{:?}", ws.services));
        let api = back.service("api").unwrap();
        assert_eq!(
            api.dependencies().into_iter().collect::<Vec<_>>(),
            ["database"]
        );
        assert_eq!(
            back.graph().topo_order(),
            ws.graph().topo_order(),
            "the rebuilt graph orders like the loaded one"
        );
        let literal = &back.service("database").unwrap().parameters["Literal"];
        assert_eq!(literal.to_string(), "$${not-a-ref}");
    }

    #[test]
    fn a_memo_of_another_id_or_a_damaged_one_is_not_used() {
        let tmp = tempfile::tempdir().unwrap();
        let ws = workspace(tmp.path());
        let memo = tmp.path().join("workspace.bin");
        assert!(read_memo(&memo, "tree-1", tmp.path()).is_none(), "no file");
        write_memo(&memo, "tree-1", &ws).unwrap();
        assert!(read_memo(&memo, "tree-2", tmp.path()).is_none());

        let bytes = fs::read(&memo).unwrap();
        fs::write(&memo, &bytes[..bytes.len() / 2]).unwrap();
        assert!(
            read_memo(&memo, "tree-1", tmp.path()).is_none(),
            "cut short"
        );
        // A service's folder changed in place, byte for byte: it still decodes, and would
        // have been used.
        let at = bytes
            .windows(b"services/api".len())
            .position(|w| w == b"services/api")
            .unwrap();
        let mut changed = bytes.clone();
        changed[at + b"services/ap".len()] = b'x';
        fs::write(&memo, &changed).unwrap();
        assert!(
            read_memo(&memo, "tree-1", tmp.path()).is_none(),
            "changed in place"
        );
        fs::write(&memo, &bytes).unwrap();
        assert!(read_memo(&memo, "tree-1", tmp.path()).is_some());

        write_as("another build", &memo, "tree-1", &ws).unwrap();
        assert!(
            read_memo(&memo, "tree-1", tmp.path()).is_none(),
            "written by another build"
        );
    }
}
