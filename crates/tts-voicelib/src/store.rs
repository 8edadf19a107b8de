//! Finished voices on disk: `<storage_dir>/voices/<id>/{original.<ext>, processed.wav, style.npy,
//! voice.json}`, and an in-memory index of their `voice.json`.
//!
//! A voice is built in `<storage_dir>/voices/.tmp-<random>/` ([`PendingVoice`]): every file is
//! fsynced, then the directory is renamed to its id and the parent fsynced, so a voice directory
//! either holds all four files or does not exist. A pending voice that is dropped removes its temp
//! directory; one left by a crash is swept by [`VoiceLibrary::open`]. Deleting renames the voice to
//! a temp name first, so a crash mid-delete never leaves a voice with missing files.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::RwLock;

use candle_core::{DType, Device, Tensor};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tts_audio::Pcm;

use crate::{id, VoiceError};

/// Rows and width of a Kokoro style pack (`[510, 1, 256]` on disk).
pub const PACK_ROWS: usize = 510;
pub const STYLE_DIM: usize = 256;
const TEMP_PREFIX: &str = ".tmp-";

/// One stock voice's weight in the first-stage blend of a clone.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BlendWeight {
    pub voice: String,
    pub weight: f32,
}

/// The upload as received.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OriginalInfo {
    /// File name inside the voice directory, `original.<ext>`.
    pub file: String,
    /// `wav`, `mp3`, `flac`, `ogg` (Vorbis) or `opus`.
    pub format: String,
    pub bytes: u64,
    pub sample_rate: u32,
    pub duration: f64,
}

/// `voice.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VoiceMeta {
    pub id: String,
    pub name: String,
    /// RFC 3339, UTC.
    pub created: String,
    /// Seconds of the processed clip.
    pub duration: f64,
    /// sha256 (hex) of the original bytes and the fit parameters: changes whenever the voice would.
    pub digest: String,
    /// Speaker embedding (GE2E, 256 values, L2-normalised) of the processed clip.
    pub embedding: Vec<f32>,
    pub blend: Vec<BlendWeight>,
    /// Speaker similarity between the sample and speech synthesised with the fitted pack.
    pub similarity: f32,
    /// Models that can speak this voice.
    pub models: Vec<String>,
    pub language: Option<String>,
    pub transcript: Option<String>,
    /// The uploader confirmed the speaker's consent.
    pub consent: bool,
    pub original: OriginalInfo,
    /// Rate of `processed.wav`.
    pub sample_rate: u32,
    /// The fit parameters that went into the digest.
    pub fit: String,
}

/// Everything a finished voice needs besides the original file.
#[derive(Debug, Clone)]
pub struct VoiceDraft {
    pub name: String,
    pub language: Option<String>,
    pub transcript: Option<String>,
    pub consent: bool,
    /// The processed clip (`processed.wav`).
    pub processed: Pcm,
    pub source_rate: u32,
    pub source_secs: f64,
    pub embedding: Vec<f32>,
    pub blend: Vec<(String, f32)>,
    pub similarity: f32,
    /// The fitted pack, 510 × 256 values.
    pub pack: Tensor,
    pub models: Vec<String>,
    /// A stable spelling of the fit parameters (part of the digest).
    pub fit_params: String,
}

/// A voice read back at start-up: its metadata and its pack `[510, 1, 256]`.
#[derive(Debug, Clone)]
pub struct LoadedVoice {
    pub meta: VoiceMeta,
    pub pack: Tensor,
}

/// The voices directory and an index of what is in it.
#[derive(Debug)]
pub struct VoiceLibrary {
    root: PathBuf,
    index: RwLock<BTreeMap<String, VoiceMeta>>,
}

impl VoiceLibrary {
    /// Opens (creating) `<storage_dir>/voices`, removes temp directories left by a crash and loads
    /// every voice; a voice that cannot be read is logged and skipped, not deleted.
    pub fn open(storage_dir: &Path) -> Result<(Self, Vec<LoadedVoice>), VoiceError> {
        let root = storage_dir.join("voices");
        std::fs::create_dir_all(&root).map_err(VoiceError::io("creating", &root))?;
        let mut loaded = Vec::new();
        let entries = std::fs::read_dir(&root).map_err(VoiceError::io("reading", &root))?;
        for entry in entries.flatten() {
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with(TEMP_PREFIX) {
                match std::fs::remove_dir_all(&path) {
                    Ok(()) => tracing::info!(path = %path.display(), "removed unfinished voice"),
                    Err(err) => {
                        tracing::warn!(path = %path.display(), error = %err, "cannot remove temp voice directory")
                    }
                }
                continue;
            }
            if !path.is_dir() {
                continue;
            }
            match read_voice(&path, &name) {
                Ok(voice) => loaded.push(voice),
                Err(err) => {
                    tracing::warn!(path = %path.display(), error = %err, "unusable voice skipped")
                }
            }
        }
        sync_dir(&root)?;
        loaded.sort_by(|a, b| a.meta.id.cmp(&b.meta.id));
        let index = loaded
            .iter()
            .map(|v| (v.meta.id.clone(), v.meta.clone()))
            .collect();
        Ok((
            Self {
                root,
                index: RwLock::new(index),
            },
            loaded,
        ))
    }

    /// `<storage_dir>/voices`.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Every stored voice, by id.
    pub fn list(&self) -> Vec<VoiceMeta> {
        self.index
            .read()
            .map(|index| index.values().cloned().collect())
            .unwrap_or_default()
    }

    pub fn get(&self, id: &str) -> Option<VoiceMeta> {
        self.index.read().ok()?.get(id).cloned()
    }

    pub fn contains(&self, id: &str) -> bool {
        self.index.read().is_ok_and(|index| index.contains_key(id))
    }

    /// Starts a voice: picks an id from `name` (one `taken` does not claim), creates its temp
    /// directory and writes the original upload there.
    pub fn begin(
        &self,
        name: &str,
        original: &[u8],
        format: &str,
        taken: &dyn Fn(&str) -> bool,
    ) -> Result<PendingVoice, VoiceError> {
        let id = (0..8)
            .map(|_| id::new_voice_id(name))
            .find(|id| !taken(id) && !self.contains(id) && !self.root.join(id).exists())
            .ok_or_else(|| VoiceError::InvalidInput {
                field: "name",
                message: "no free id for this name".into(),
            })?;
        let dir = self
            .root
            .join(format!("{TEMP_PREFIX}{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir(&dir).map_err(VoiceError::io("creating", &dir))?;
        let pending = PendingVoice {
            dir,
            id,
            original: OriginalInfo {
                file: format!("original.{format}"),
                format: format.to_string(),
                bytes: original.len() as u64,
                sample_rate: 0,
                duration: 0.0,
            },
            hasher: Sha256::new_with_prefix(original),
            committed: false,
        };
        write_synced(&pending.dir.join(&pending.original.file), original)?;
        Ok(pending)
    }

    /// Writes the rest of the voice, fsyncs it and renames it into place; then it is listed.
    pub fn commit(
        &self,
        mut pending: PendingVoice,
        draft: VoiceDraft,
    ) -> Result<VoiceMeta, VoiceError> {
        let pack = draft.pack.to_device(&Device::Cpu)?.to_dtype(DType::F32)?;
        if pack.elem_count() != PACK_ROWS * STYLE_DIM {
            return Err(VoiceError::InvalidInput {
                field: "pack",
                message: format!("shape {:?}, expected [510, 1, 256]", pack.dims()),
            });
        }
        let pack = pack.reshape((PACK_ROWS, 1, STYLE_DIM))?;
        pending.hasher.update(b"\nfit:");
        pending.hasher.update(draft.fit_params.as_bytes());
        let digest = format!("{:x}", pending.hasher.clone().finalize());
        let created = time::OffsetDateTime::now_utc()
            .format(&time::format_description::well_known::Rfc3339)
            .map_err(|e| VoiceError::InvalidInput {
                field: "created",
                message: e.to_string(),
            })?;
        let meta = VoiceMeta {
            id: pending.id.clone(),
            name: draft.name,
            created,
            duration: draft.processed.duration_secs(),
            digest,
            embedding: draft.embedding,
            blend: draft
                .blend
                .into_iter()
                .map(|(voice, weight)| BlendWeight { voice, weight })
                .collect(),
            similarity: draft.similarity,
            models: draft.models,
            language: draft.language,
            transcript: draft.transcript,
            consent: draft.consent,
            original: OriginalInfo {
                sample_rate: draft.source_rate,
                duration: draft.source_secs,
                ..pending.original.clone()
            },
            sample_rate: draft.processed.sample_rate,
            fit: draft.fit_params,
        };
        let processed = pending.dir.join("processed.wav");
        draft.processed.write_wav_file(&processed)?;
        sync_file(&processed)?;
        let style = pending.dir.join("style.npy");
        pack.write_npy(&style)?;
        sync_file(&style)?;
        let json = serde_json::to_vec_pretty(&meta).map_err(|e| VoiceError::InvalidInput {
            field: "voice",
            message: e.to_string(),
        })?;
        write_synced(&pending.dir.join("voice.json"), &json)?;
        sync_dir(&pending.dir)?;
        let target = self.root.join(&meta.id);
        // rename(2) onto a non-empty directory fails, so an existing voice is never replaced.
        std::fs::rename(&pending.dir, &target).map_err(VoiceError::io("renaming to", &target))?;
        pending.committed = true;
        sync_dir(&self.root)?;
        if let Ok(mut index) = self.index.write() {
            index.insert(meta.id.clone(), meta.clone());
        }
        Ok(meta)
    }

    /// Removes a voice: out of the index, renamed to a temp name, then deleted.
    pub fn delete(&self, voice_id: &str) -> Result<VoiceMeta, VoiceError> {
        id::validate_voice_id(voice_id)?;
        let meta = self
            .index
            .write()
            .ok()
            .and_then(|mut index| index.remove(voice_id))
            .ok_or_else(|| VoiceError::NotFound(voice_id.to_string()))?;
        let dir = self.root.join(voice_id);
        let doomed = self.root.join(format!(
            "{TEMP_PREFIX}del-{}",
            uuid::Uuid::new_v4().simple()
        ));
        std::fs::rename(&dir, &doomed).map_err(VoiceError::io("renaming", &dir))?;
        sync_dir(&self.root)?;
        std::fs::remove_dir_all(&doomed).map_err(VoiceError::io("removing", &doomed))?;
        Ok(meta)
    }
}

/// A voice being built in its temp directory; dropped without [`VoiceLibrary::commit`], it is removed.
#[derive(Debug)]
pub struct PendingVoice {
    dir: PathBuf,
    id: String,
    original: OriginalInfo,
    /// sha256 over the original bytes so far; the fit parameters are added at commit.
    hasher: Sha256,
    committed: bool,
}

impl PendingVoice {
    /// The id the voice will have.
    pub fn id(&self) -> &str {
        &self.id
    }

    pub fn temp_dir(&self) -> &Path {
        &self.dir
    }
}

impl Drop for PendingVoice {
    fn drop(&mut self) {
        if !self.committed {
            if let Err(err) = std::fs::remove_dir_all(&self.dir) {
                tracing::warn!(path = %self.dir.display(), error = %err, "cannot remove unfinished voice");
            }
        }
    }
}

fn read_voice(dir: &Path, name: &str) -> Result<LoadedVoice, VoiceError> {
    let corrupt = |message: String| VoiceError::Corrupt {
        path: dir.to_path_buf(),
        message,
    };
    id::validate_voice_id(name)?;
    let json_path = dir.join("voice.json");
    let text = std::fs::read(&json_path).map_err(VoiceError::io("reading", &json_path))?;
    let meta: VoiceMeta =
        serde_json::from_slice(&text).map_err(|e| corrupt(format!("voice.json: {e}")))?;
    if meta.id != name {
        return Err(corrupt(format!("voice.json names id {:?}", meta.id)));
    }
    let pack = Tensor::read_npy(dir.join("style.npy"))
        .map_err(|e| corrupt(format!("style.npy: {e}")))?
        .to_dtype(DType::F32)?;
    if pack.elem_count() != PACK_ROWS * STYLE_DIM {
        return Err(corrupt(format!("style.npy has shape {:?}", pack.dims())));
    }
    let values: Vec<f32> = pack.flatten_all()?.to_vec1()?;
    if values.iter().any(|v| !v.is_finite()) {
        return Err(corrupt("style.npy has non-finite values".into()));
    }
    Ok(LoadedVoice {
        meta,
        pack: pack.reshape((PACK_ROWS, 1, STYLE_DIM))?,
    })
}

fn write_synced(path: &Path, bytes: &[u8]) -> Result<(), VoiceError> {
    let mut file = File::create(path).map_err(VoiceError::io("creating", path))?;
    file.write_all(bytes)
        .map_err(VoiceError::io("writing", path))?;
    file.sync_all().map_err(VoiceError::io("syncing", path))
}

fn sync_file(path: &Path) -> Result<(), VoiceError> {
    File::open(path)
        .and_then(|f| f.sync_all())
        .map_err(VoiceError::io("syncing", path))
}

/// Makes a rename or create inside `dir` durable.
fn sync_dir(dir: &Path) -> Result<(), VoiceError> {
    File::open(dir)
        .and_then(|f| f.sync_all())
        .map_err(VoiceError::io("syncing", dir))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn draft(name: &str, fill: f32) -> VoiceDraft {
        VoiceDraft {
            name: name.into(),
            language: Some("en-US".into()),
            transcript: None,
            consent: true,
            processed: Pcm::new(vec![0.1; 24_000 * 7], 24_000),
            source_rate: 44_100,
            source_secs: 7.5,
            embedding: vec![0.0625; 256],
            blend: vec![("af_heart".into(), 0.7), ("am_adam".into(), 0.3)],
            similarity: 0.8,
            pack: Tensor::full(fill, (PACK_ROWS, STYLE_DIM), &Device::Cpu).unwrap(),
            models: vec!["kokoro".into()],
            fit_params: "budget=1;iterations=2".into(),
        }
    }

    fn entries(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn committed_voice_has_all_files_and_reloads() {
        let storage = tempfile::tempdir().unwrap();
        let (library, loaded) = VoiceLibrary::open(storage.path()).unwrap();
        assert!(loaded.is_empty());
        let pending = library
            .begin("Ada Lovelace", b"RIFF-original", "wav", &|_| false)
            .unwrap();
        let id = pending.id().to_string();
        assert!(id.starts_with("ada-lovelace-"));
        let meta = library.commit(pending, draft("Ada Lovelace", 0.5)).unwrap();
        assert_eq!(meta.id, id);
        assert_eq!(meta.digest.len(), 64);
        assert_eq!(meta.original.file, "original.wav");
        assert!((meta.duration - 7.0).abs() < 1e-9);
        assert_eq!(
            entries(&storage.path().join("voices").join(&id)),
            ["original.wav", "processed.wav", "style.npy", "voice.json"]
        );
        assert_eq!(
            entries(&storage.path().join("voices")),
            std::slice::from_ref(&id),
            "no temp dirs left"
        );
        assert_eq!(library.list(), vec![meta.clone()]);

        let (reopened, loaded) = VoiceLibrary::open(storage.path()).unwrap();
        assert_eq!(loaded.len(), 1);
        assert_eq!(loaded[0].meta, meta);
        assert_eq!(loaded[0].pack.dims(), &[PACK_ROWS, 1, STYLE_DIM]);
        let values: Vec<f32> = loaded[0].pack.flatten_all().unwrap().to_vec1().unwrap();
        assert!(values.iter().all(|v| *v == 0.5));
        assert_eq!(reopened.get(&id), Some(meta));
    }

    #[test]
    fn digest_depends_on_original_and_fit_parameters() {
        let storage = tempfile::tempdir().unwrap();
        let (library, _) = VoiceLibrary::open(storage.path()).unwrap();
        let digest = |bytes: &[u8], params: &str| {
            let pending = library.begin("x", bytes, "wav", &|_| false).unwrap();
            let mut d = draft("x", 0.1);
            d.fit_params = params.into();
            library.commit(pending, d).unwrap().digest
        };
        let a = digest(b"one", "p");
        assert_eq!(a, digest(b"one", "p"));
        assert_ne!(a, digest(b"two", "p"));
        assert_ne!(a, digest(b"one", "q"));
    }

    #[test]
    fn dropped_pending_voice_leaves_nothing() {
        let storage = tempfile::tempdir().unwrap();
        let (library, _) = VoiceLibrary::open(storage.path()).unwrap();
        let pending = library.begin("x", b"bytes", "mp3", &|_| false).unwrap();
        assert!(pending.temp_dir().join("original.mp3").is_file());
        drop(pending);
        assert!(entries(library.root()).is_empty());
        assert!(library.list().is_empty());
    }

    #[test]
    fn open_sweeps_temp_dirs_and_skips_broken_voices() {
        let storage = tempfile::tempdir().unwrap();
        let (library, _) = VoiceLibrary::open(storage.path()).unwrap();
        let good = library
            .commit(
                library.begin("good", b"a", "wav", &|_| false).unwrap(),
                draft("good", 0.2),
            )
            .unwrap();
        let root = library.root().to_path_buf();
        // A crash mid-upload leaves a temp dir; a hand-edited voice may be broken.
        let pending = library.begin("crashed", b"b", "wav", &|_| false).unwrap();
        let leftover = pending.temp_dir().to_path_buf();
        std::mem::forget(pending);
        std::fs::create_dir(root.join("broken-1")).unwrap();
        std::fs::write(root.join("broken-1").join("voice.json"), b"{not json").unwrap();
        std::fs::create_dir(root.join("Bad Name")).unwrap();
        let (reopened, loaded) = VoiceLibrary::open(storage.path()).unwrap();
        assert!(!leftover.exists());
        assert_eq!(loaded.len(), 1);
        assert_eq!(reopened.list(), vec![good]);
        assert!(
            root.join("broken-1").exists(),
            "broken voices are kept for inspection"
        );
    }

    #[test]
    fn delete_removes_the_directory_and_rejects_unknown_or_escaping_ids() {
        let storage = tempfile::tempdir().unwrap();
        let (library, _) = VoiceLibrary::open(storage.path()).unwrap();
        let meta = library
            .commit(
                library.begin("gone", b"a", "flac", &|_| false).unwrap(),
                draft("gone", 0.3),
            )
            .unwrap();
        assert_eq!(library.delete(&meta.id).unwrap(), meta);
        assert!(entries(library.root()).is_empty());
        assert!(matches!(
            library.delete(&meta.id),
            Err(VoiceError::NotFound(_))
        ));
        assert!(matches!(
            library.delete("../voices"),
            Err(VoiceError::InvalidId(_))
        ));
        assert!(storage.path().join("voices").is_dir());
    }

    #[test]
    fn ids_claimed_elsewhere_are_not_handed_out() {
        let storage = tempfile::tempdir().unwrap();
        let (library, _) = VoiceLibrary::open(storage.path()).unwrap();
        assert!(library.begin("x", b"a", "wav", &|_| true).is_err());
        let pending = library
            .begin("x", b"a", "wav", &|id| id.ends_with('0'))
            .unwrap();
        assert!(!pending.id().ends_with('0'));
    }

    #[test]
    fn wrong_pack_shape_is_refused_and_cleaned_up() {
        let storage = tempfile::tempdir().unwrap();
        let (library, _) = VoiceLibrary::open(storage.path()).unwrap();
        let mut bad = draft("x", 0.1);
        bad.pack = Tensor::zeros((10, 256), DType::F32, &Device::Cpu).unwrap();
        let pending = library.begin("x", b"a", "wav", &|_| false).unwrap();
        assert!(library.commit(pending, bad).is_err());
        assert!(entries(library.root()).is_empty());
    }
}
