//! The reference store: host work done once and kept on disk under a key of everything it depends
//! on, so that the next variant (each runs in a worker process of its own), the next run, or
//! another node of a farm sharing the folder reads it instead of doing it again.
//!
//! What it keeps: a built-in block's exact reference (output and taps, f64) and its CPU emulation
//! per policy. The key is the SHA-256 of precheck's sources and lock file (a build that may
//! compute otherwise never reads another's entries), the model as the suite describes it, the
//! seed, the reference format, the input's bytes, the weights' bytes when a checkpoint gives them,
//! and for an emulation the policy. An entry is one `.safetensors` file written to a temporary
//! file in the folder and renamed into place, so that readers, and runs writing at once, only
//! ever see whole entries. An entry that cannot be read, or that holds other shapes or another
//! key, is said once, recomputed and written again; the store never fails a run.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use rayon::prelude::*;
use safetensors::tensor::TensorView;
use safetensors::{Dtype, SafeTensors};
use sha2::{Digest, Sha256};

use crate::tensor::Tensor;

/// The SHA-256 of the sources and lock file this precheck was built from (`build.rs`).
pub const SOURCE_DIGEST: &str = env!("PRECHECK_SOURCE_DIGEST");

/// Entries not read or written for this long are removed when a run starts: every build of
/// precheck keys its own entries, so a nightly farm's store would otherwise only grow.
pub const KEPT_UNUSED: std::time::Duration = std::time::Duration::from_secs(14 * 24 * 3600);

/// The metadata key an entry's own key is written under.
const KEY_METADATA: &str = "precheck_store_key";

/// An entry's identity: what it is and the digest of everything it depends on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreKey {
    kind: &'static str,
    digest: String,
}

impl StoreKey {
    /// The key of a `kind` of entry (`reference`, `emulation`) that depends on `parts`, for this
    /// build of precheck.
    pub fn new(kind: &'static str, parts: &[&str]) -> Self {
        Self::for_build(SOURCE_DIGEST, kind, parts)
    }

    /// The key for the build whose sources hash to `source_digest`.
    fn for_build(source_digest: &str, kind: &'static str, parts: &[&str]) -> Self {
        let mut hasher = Sha256::new();
        for part in std::iter::once(source_digest)
            .chain([kind])
            .chain(parts.iter().copied())
        {
            hasher.update((part.len() as u64).to_le_bytes());
            hasher.update(part.as_bytes());
        }
        StoreKey {
            kind,
            digest: format!("{:x}", hasher.finalize()),
        }
    }

    /// This key extended with more `parts`, for a `kind` of entry derived from it.
    pub fn derived(&self, kind: &'static str, parts: &[&str]) -> Self {
        let mut all = vec![self.digest.as_str()];
        all.extend_from_slice(parts);
        Self::for_build(SOURCE_DIGEST, kind, &all)
    }

    fn file_name(&self) -> String {
        format!("{}-{}.safetensors", self.kind, self.digest)
    }
}

/// Named tensors, as an entry holds them.
pub type StoredTensors = Vec<(String, Tensor<f64>)>;

/// A store folder.
#[derive(Debug, Clone)]
pub struct Store {
    dir: PathBuf,
}

impl Store {
    /// The store in `dir`, made if it does not exist; None, said once, when it cannot be made
    /// (the run then computes everything, as without a store).
    pub fn open(dir: &Path) -> Option<Store> {
        match std::fs::create_dir_all(dir) {
            Ok(()) => Some(Store {
                dir: dir.to_owned(),
            }),
            Err(e) => {
                tracing::warn!(
                    "reference store {}: {e}; computing without it",
                    dir.display()
                );
                None
            }
        }
    }

    /// The entry of `key`, when there is a whole one whose tensors have the `shapes` (name,
    /// rows, columns) asked for, in that order.
    pub fn load(&self, key: &StoreKey, shapes: &[(&str, usize, usize)]) -> Option<StoredTensors> {
        self.load_as(key, shapes, |v| v)
    }

    /// [`Store::load`], each value converted by `convert` as it is decoded (an emulation's
    /// f32 output, kept as f64, read back without an f64 copy).
    pub fn load_as<T: Copy + Send>(
        &self,
        key: &StoreKey,
        shapes: &[(&str, usize, usize)],
        convert: impl Fn(f64) -> T + Sync,
    ) -> Option<Vec<(String, Tensor<T>)>> {
        let path = self.dir.join(key.file_name());
        let bytes = match std::fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
            Err(e) => {
                tracing::warn!("reference store: {}: {e}; recomputing", path.display());
                return None;
            }
        };
        match decode(&bytes, key, shapes, convert) {
            Ok(tensors) => {
                // Used: kept another KEPT_UNUSED.
                let touched = std::fs::File::options()
                    .append(true)
                    .open(&path)
                    .and_then(|file| file.set_modified(std::time::SystemTime::now()));
                if let Err(e) = touched {
                    tracing::debug!("reference store: touching {}: {e}", path.display());
                }
                Some(tensors)
            }
            Err(why) => {
                tracing::warn!(
                    "reference store: {} is unusable ({why}); recomputing it",
                    path.display()
                );
                None
            }
        }
    }

    /// Keeps `tensors` under `key`, replacing what was there in one rename. A failure is said and
    /// otherwise ignored: the work is done, only not kept.
    pub fn save(&self, key: &StoreKey, tensors: &[(&str, &Tensor<f64>)]) {
        let path = self.dir.join(key.file_name());
        if let Err(e) = self.write(key, tensors, &path) {
            tracing::warn!("reference store: writing {}: {e}", path.display());
        }
    }

    fn write(
        &self,
        key: &StoreKey,
        tensors: &[(&str, &Tensor<f64>)],
        path: &Path,
    ) -> Result<(), String> {
        let bytes: Vec<Vec<u8>> = tensors
            .iter()
            .map(|(_, t)| {
                t.data
                    .par_iter()
                    .flat_map_iter(|v| v.to_le_bytes())
                    .collect()
            })
            .collect();
        let views = tensors
            .iter()
            .zip(&bytes)
            .map(|((name, t), data)| {
                TensorView::new(Dtype::F64, vec![t.rows, t.cols], data).map(|v| (*name, v))
            })
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| e.to_string())?;
        let metadata = HashMap::from([(KEY_METADATA.to_owned(), key.digest.clone())]);
        let encoded = safetensors::serialize(views, Some(metadata)).map_err(|e| e.to_string())?;
        let mut file = tempfile::NamedTempFile::new_in(&self.dir).map_err(|e| e.to_string())?;
        file.write_all(&encoded).map_err(|e| e.to_string())?;
        file.persist(path).map_err(|e| e.to_string())?;
        Ok(())
    }
}

/// Removes from the store `dir` the entries last used more than [`KEPT_UNUSED`] ago, and the
/// temporary files (`.tmp*`) of writers killed more than a day ago: once per run, at its start
/// (each variant's worker opens the store again). Entries of other runs that vanish meanwhile
/// are not an error.
pub fn prune(dir: &Path) {
    let now = std::time::SystemTime::now();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let kept = if name.ends_with(".safetensors") {
            KEPT_UNUSED
        } else if name.starts_with(".tmp") {
            std::time::Duration::from_secs(24 * 3600)
        } else {
            continue;
        };
        let age = entry
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|modified| now.duration_since(modified).ok());
        if age.is_some_and(|age| age > kept) {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// An entry's tensors, checked against its key and the shapes asked for.
fn decode<T: Copy + Send>(
    bytes: &[u8],
    key: &StoreKey,
    shapes: &[(&str, usize, usize)],
    convert: impl Fn(f64) -> T + Sync,
) -> Result<Vec<(String, Tensor<T>)>, String> {
    let (_, metadata) = SafeTensors::read_metadata(bytes).map_err(|e| e.to_string())?;
    let written = metadata
        .metadata()
        .as_ref()
        .and_then(|m| m.get(KEY_METADATA).cloned());
    if written.as_deref() != Some(key.digest.as_str()) {
        return Err("it holds another key".into());
    }
    let file = SafeTensors::deserialize(bytes).map_err(|e| e.to_string())?;
    shapes
        .iter()
        .map(|&(name, rows, cols)| {
            let view = file
                .tensor(name)
                .map_err(|_| format!("no tensor `{name}`"))?;
            if view.dtype() != Dtype::F64 || view.shape() != [rows, cols] {
                return Err(format!(
                    "`{name}` is {:?} {:?}, not F64 [{rows}, {cols}]",
                    view.dtype(),
                    view.shape()
                ));
            }
            // In parallel: an MLP's reference taps are hundreds of megabytes.
            let data = view
                .data()
                .par_chunks_exact(8)
                .map(|b| convert(f64::from_le_bytes(b.try_into().expect("8 bytes"))))
                .collect();
            Ok((name.to_owned(), Tensor::new(rows, cols, data)))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tensor(rows: usize, cols: usize, start: f64) -> Tensor<f64> {
        let data = (0..rows * cols).map(|i| start + i as f64 / 3.0).collect();
        Tensor::new(rows, cols, data)
    }

    #[test]
    fn an_entry_reads_back_bit_for_bit() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let key = StoreKey::new("reference", &["model", "42"]);
        let (output, tap) = (tensor(3, 4, 0.1), tensor(3, 2, -7.0));
        assert!(store.load(&key, &[("output", 3, 4)]).is_none());
        store.save(&key, &[("output", &output), ("layer.0", &tap)]);
        let read = store
            .load(&key, &[("output", 3, 4), ("layer.0", 3, 2)])
            .unwrap();
        assert_eq!(
            read,
            vec![("output".into(), output), ("layer.0".into(), tap)]
        );
    }

    #[test]
    fn another_build_seed_or_input_is_another_key() {
        let key = StoreKey::new("reference", &["model", "42", "input-digest"]);
        let others = [
            StoreKey::for_build(
                "another build",
                "reference",
                &["model", "42", "input-digest"],
            ),
            StoreKey::new("reference", &["model", "43", "input-digest"]),
            StoreKey::new("reference", &["model", "42", "another input"]),
            StoreKey::new("emulation", &["model", "42", "input-digest"]),
            // Parts are delimited: moving a character between two parts changes the key.
            StoreKey::new("reference", &["model4", "2", "input-digest"]),
            key.derived("emulation", &["fp8"]),
        ];
        for other in others {
            assert_ne!(key, other);
        }
    }

    #[test]
    fn a_corrupt_or_misshapen_entry_is_recomputed_and_rewritten() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let key = StoreKey::new("reference", &["m"]);
        let path = dir.path().join(key.file_name());
        let output = tensor(2, 2, 1.0);
        for garbage in [&b"not safetensors"[..], &[0xff; 9][..], &[][..]] {
            std::fs::write(&path, garbage).unwrap();
            assert!(store.load(&key, &[("output", 2, 2)]).is_none());
        }
        store.save(&key, &[("output", &output)]);
        let bytes = std::fs::read(&path).unwrap();
        std::fs::write(&path, &bytes[..bytes.len() - 5]).unwrap();
        assert!(store.load(&key, &[("output", 2, 2)]).is_none(), "truncated");
        store.save(&key, &[("output", &output)]);
        assert!(
            store.load(&key, &[("output", 2, 3)]).is_none(),
            "other shape"
        );
        assert!(store.load(&key, &[("output", 2, 2)]).is_some());
        // An entry renamed onto another key's file is not that key's.
        let other = StoreKey::new("reference", &["n"]);
        std::fs::copy(&path, dir.path().join(other.file_name())).unwrap();
        assert!(store.load(&other, &[("output", 2, 2)]).is_none());
    }

    #[test]
    fn entries_unused_for_two_weeks_and_stale_temporary_files_are_pruned() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let (old, used, fresh) = (
            StoreKey::new("reference", &["old"]),
            StoreKey::new("reference", &["used"]),
            StoreKey::new("reference", &["fresh"]),
        );
        let output = tensor(2, 2, 0.0);
        for key in [&old, &used, &fresh] {
            store.save(key, &[("output", &output)]);
        }
        let leftover = dir.path().join(".tmpKILLED");
        std::fs::write(&leftover, b"half an entry").unwrap();
        let month_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(30 * 86400);
        for path in [
            dir.path().join(old.file_name()),
            dir.path().join(used.file_name()),
            leftover.clone(),
        ] {
            let file = std::fs::File::options().append(true).open(&path).unwrap();
            file.set_modified(month_ago).unwrap();
        }
        // Reading an entry keeps it.
        assert!(store.load(&used, &[("output", 2, 2)]).is_some());
        prune(dir.path());
        let reopened = Store::open(dir.path()).unwrap();
        assert!(
            reopened.load(&old, &[("output", 2, 2)]).is_none(),
            "unused for a month"
        );
        assert!(reopened.load(&used, &[("output", 2, 2)]).is_some());
        assert!(reopened.load(&fresh, &[("output", 2, 2)]).is_some());
        assert!(!leftover.exists());
    }

    #[test]
    fn writers_at_once_leave_a_whole_entry() {
        let dir = tempfile::tempdir().unwrap();
        let key = StoreKey::new("reference", &["shared"]);
        let output = tensor(64, 64, 0.5);
        std::thread::scope(|scope| {
            for _ in 0..8 {
                scope.spawn(|| {
                    let store = Store::open(dir.path()).unwrap();
                    for _ in 0..20 {
                        store.save(&key, &[("output", &output)]);
                        if let Some(read) = store.load(&key, &[("output", 64, 64)]) {
                            assert_eq!(read[0].1, output);
                        }
                    }
                });
            }
        });
        let files: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(files.len(), 1, "no temporary file is left behind");
    }
}
