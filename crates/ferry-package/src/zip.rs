//! A reproducible zip writer.
//!
//! The archive is a function of the entries' names, bytes and executable bits only: entries in
//! the order given (the caller sorts them), every timestamp 1980-01-01 00:00, permissions
//! normalised to 0644 or 0755, no extra fields, no directory entries, UTF-8 names. Files are
//! deflated in parallel (each entry is compressed on its own, so the result does not depend on
//! the number of threads) and written in order, hashing the bytes as they are written.
//!
//! Limits: the classic zip format (no zip64), so fewer than 65,535 entries and under 4 GiB; Lambda
//! refuses packages far smaller than that.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;

use flate2::Compression;
use flate2::write::DeflateEncoder;
use sha2::{Digest, Sha256};

/// One file to put in an archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Name inside the archive, `/`-separated.
    pub name: String,
    /// Where the bytes are read from.
    pub path: PathBuf,
    pub executable: bool,
}

/// What was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Written {
    /// SHA-256 of the archive, lowercase hex.
    pub sha256: String,
    pub size: u64,
    pub entries: usize,
}

/// The compression level: zlib's default, as `zip` uses.
const LEVEL: u32 = 6;
/// MS-DOS date of 1980-01-01 (the earliest a zip can hold), time 00:00:00.
const DOS_DATE: u16 = (1 << 5) | 1;
const DOS_TIME: u16 = 0;
/// Bit 11: names are UTF-8.
const FLAGS: u16 = 1 << 11;
const VERSION_NEEDED: u16 = 20;
/// Made by Unix (3), spec 3.0: the external attributes carry a Unix mode.
const VERSION_MADE_BY: u16 = (3 << 8) | 30;

struct Compressed {
    method: u16,
    crc: u32,
    size: u64,
    data: Vec<u8>,
}

fn compress(path: &Path) -> io::Result<Compressed> {
    let raw = std::fs::read(path)?;
    let crc = crc32fast::hash(&raw);
    let mut enc = DeflateEncoder::new(
        Vec::with_capacity(raw.len() / 2 + 64),
        Compression::new(LEVEL),
    );
    enc.write_all(&raw)?;
    let deflated = enc.finish()?;
    let size = raw.len() as u64;
    Ok(if deflated.len() < raw.len() {
        Compressed {
            method: 8,
            crc,
            size,
            data: deflated,
        }
    } else {
        // Incompressible: stored as is, as zip does.
        Compressed {
            method: 0,
            crc,
            size,
            data: raw,
        }
    })
}

/// A writer whose errors name the file written (a full disk is then reported against the archive
/// being written, not a source file).
pub(crate) struct Named<'p, W> {
    pub(crate) inner: W,
    pub(crate) path: &'p Path,
}

/// `e`, which happened writing `path`, naming it.
pub(crate) fn writing(path: &Path, e: io::Error) -> io::Error {
    io::Error::new(e.kind(), format!("writing {}: {e}", path.display()))
}

impl<W: Write> Write for Named<'_, W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.inner.write(buf).map_err(|e| writing(self.path, e))
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush().map_err(|e| writing(self.path, e))
    }
}

/// Writes `entries` (already in their final order) to `out`. On error the partial file is
/// removed. An error reading an entry names the entry's file; one writing names `out`.
pub fn write(entries: &[Entry], out: &Path) -> io::Result<Written> {
    let result = write_inner(entries, out);
    if result.is_err() {
        let _ = std::fs::remove_file(out);
    }
    result
}

fn too_big(what: &str) -> io::Error {
    io::Error::other(format!(
        "the archive is too large for a zip without zip64 ({what}); Lambda refuses such packages: use a container image or a layer"
    ))
}

/// A writer that hashes and counts what passes through it.
pub(crate) struct Hashing<W> {
    pub(crate) inner: W,
    pub(crate) hash: Sha256,
    pub(crate) written: u64,
}

impl<W> Hashing<W> {
    pub(crate) fn new(inner: W) -> Self {
        Hashing {
            inner,
            hash: Sha256::new(),
            written: 0,
        }
    }
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hash.update(&buf[..n]);
        self.written += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

fn write_inner(entries: &[Entry], out: &Path) -> io::Result<Written> {
    if entries.len() >= u16::MAX as usize {
        return Err(too_big(&format!("{} files", entries.len())));
    }
    // Each file's size is checked before any file is read (each is read whole to be deflated):
    // a zip without zip64 cannot hold a file over 4 GiB. The archive's own size is checked as it
    // is written.
    for e in entries {
        let len = std::fs::metadata(&e.path)
            .map_err(|err| io::Error::new(err.kind(), format!("{}: {err}", e.path.display())))?
            .len();
        if len > u32::MAX as u64 {
            return Err(too_big(&format!("{} is {len} bytes", e.name)));
        }
    }
    let file = File::create(out).map_err(|e| writing(out, e))?;
    let mut w = Hashing::new(BufWriter::with_capacity(
        1 << 20,
        Named {
            inner: file,
            path: out,
        },
    ));
    let mut central = Vec::with_capacity(entries.len() * 64);
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .min(entries.len().max(1));
    let next = AtomicUsize::new(0);
    std::thread::scope(|scope| -> io::Result<()> {
        let (tx, rx) = mpsc::channel::<(usize, io::Result<Compressed>)>();
        for _ in 0..threads {
            let tx = tx.clone();
            let next = &next;
            scope.spawn(move || {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(e) = entries.get(i) else { break };
                    let r = compress(&e.path).map_err(|err| {
                        io::Error::new(err.kind(), format!("{}: {err}", e.path.display()))
                    });
                    let failed = r.is_err();
                    if tx.send((i, r)).is_err() || failed {
                        // Stop the others early: the archive cannot be finished.
                        next.store(usize::MAX / 2, Ordering::Relaxed);
                        break;
                    }
                }
            });
        }
        drop(tx);
        // Entries finish out of order; they are written in order.
        let mut pending: BTreeMap<usize, Compressed> = BTreeMap::new();
        let mut expected = 0;
        for (i, r) in rx {
            pending.insert(i, r?);
            while let Some(c) = pending.remove(&expected) {
                write_entry(&mut w, &mut central, &entries[expected], &c)?;
                expected += 1;
            }
        }
        if expected != entries.len() {
            return Err(io::Error::other("an archive entry was not compressed"));
        }
        Ok(())
    })?;

    let cd_offset = w.written;
    w.write_all(&central)?;
    let cd_size = central.len() as u64;
    if cd_offset > u32::MAX as u64 || cd_size > u32::MAX as u64 {
        return Err(too_big("over 4 GiB"));
    }
    let n = entries.len() as u16;
    let mut eocd = Vec::with_capacity(22);
    put32(&mut eocd, 0x0605_4b50);
    put16(&mut eocd, 0); // this disk
    put16(&mut eocd, 0); // disk with the central directory
    put16(&mut eocd, n);
    put16(&mut eocd, n);
    put32(&mut eocd, cd_size as u32);
    put32(&mut eocd, cd_offset as u32);
    put16(&mut eocd, 0); // comment length
    w.write_all(&eocd)?;
    w.flush()?;
    let size = w.written;
    let sha256 = hex(&w.hash.finalize());
    w.inner
        .into_inner()
        .map_err(|e| e.into_error())?
        .inner
        .sync_all()
        .map_err(|e| writing(out, e))?;
    Ok(Written {
        sha256,
        size,
        entries: entries.len(),
    })
}

fn write_entry<W: Write>(
    w: &mut Hashing<W>,
    central: &mut Vec<u8>,
    e: &Entry,
    c: &Compressed,
) -> io::Result<()> {
    let offset = w.written;
    let csize = c.data.len() as u64;
    if offset > u32::MAX as u64 || csize > u32::MAX as u64 || c.size > u32::MAX as u64 {
        return Err(too_big("over 4 GiB"));
    }
    let name = e.name.as_bytes();
    let name_len = u16::try_from(name.len())
        .map_err(|_| io::Error::other(format!("name too long: {}", e.name)))?;
    let mut local = Vec::with_capacity(30 + name.len());
    put32(&mut local, 0x0403_4b50);
    put16(&mut local, VERSION_NEEDED);
    put16(&mut local, FLAGS);
    put16(&mut local, c.method);
    put16(&mut local, DOS_TIME);
    put16(&mut local, DOS_DATE);
    put32(&mut local, c.crc);
    put32(&mut local, csize as u32);
    put32(&mut local, c.size as u32);
    put16(&mut local, name_len);
    put16(&mut local, 0); // extra length
    local.extend_from_slice(name);
    w.write_all(&local)?;
    w.write_all(&c.data)?;

    let mode: u32 = if e.executable { 0o100755 } else { 0o100644 };
    put32(central, 0x0201_4b50);
    put16(central, VERSION_MADE_BY);
    put16(central, VERSION_NEEDED);
    put16(central, FLAGS);
    put16(central, c.method);
    put16(central, DOS_TIME);
    put16(central, DOS_DATE);
    put32(central, c.crc);
    put32(central, csize as u32);
    put32(central, c.size as u32);
    put16(central, name_len);
    put16(central, 0); // extra length
    put16(central, 0); // comment length
    put16(central, 0); // disk number
    put16(central, 0); // internal attributes
    put32(central, mode << 16);
    put32(central, offset as u32);
    central.extend_from_slice(name);
    Ok(())
}

fn put16(v: &mut Vec<u8>, x: u16) {
    v.extend_from_slice(&x.to_le_bytes());
}

fn put32(v: &mut Vec<u8>, x: u32) {
    v.extend_from_slice(&x.to_le_bytes());
}

/// Lowercase hex.
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(dir: &Path, name: &str, bytes: &[u8]) -> Entry {
        let path = dir.join(name);
        std::fs::write(&path, bytes).unwrap();
        Entry {
            name: name.into(),
            path,
            executable: false,
        }
    }

    #[test]
    fn an_error_names_the_file_it_is_about_and_leaves_no_partial_archive() {
        let dir = tempfile::tempdir().unwrap();
        let a = entry(dir.path(), "a.txt", b"a");
        let gone = Entry {
            name: "gone.txt".into(),
            path: dir.path().join("gone.txt"),
            executable: false,
        };
        let out = dir.path().join("out.zip");
        let e = write(&[a.clone(), gone], &out).unwrap_err();
        assert!(
            e.to_string()
                .starts_with(&format!("{}: ", dir.path().join("gone.txt").display())),
            "a file that cannot be read is named: {e}"
        );
        assert!(!out.exists(), "no partial archive is left");

        let nowhere = dir.path().join("no-such-folder/out.zip");
        let e = write(std::slice::from_ref(&a), &nowhere).unwrap_err();
        assert!(
            e.to_string()
                .starts_with(&format!("writing {}: ", nowhere.display())),
            "{e}"
        );
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn a_full_disk_is_reported_against_the_archive_being_written() {
        let dir = tempfile::tempdir().unwrap();
        let a = entry(dir.path(), "a.txt", b"some bytes");
        // A link to /dev/full: every write fails with ENOSPC; on error the link (not the
        // device) is removed.
        let out = dir.path().join("full.zip");
        std::os::unix::fs::symlink("/dev/full", &out).unwrap();
        let e = write(&[a], &out).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::StorageFull, "{e}");
        assert!(
            e.to_string().starts_with(&format!(
                "writing {}: No space left on device",
                out.display()
            )),
            "{e}"
        );
        assert!(Path::new("/dev/full").exists());
    }
}
