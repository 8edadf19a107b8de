//! The set of loaded models, found on disk, and the mapping from a voice id to the model that speaks it.
//!
//! Layout of a models directory: `piper/<voice>.onnx` with its `<voice>.onnx.json` (one Piper model
//! per voice) and `kokoro/` (one Kokoro model with many voices). Voice ids are unique across models,
//! so a request may name only a voice. A model that fails to load is logged and skipped, so one bad
//! file does not take the server down; a directory with no usable model at all is an error.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use candle_core::{DType, Device};

use crate::{ModelError, SpeechModel, VoiceInfo};

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("unknown voice {0:?}")]
    UnknownVoice(String),
    #[error("unknown model {0:?}")]
    UnknownModel(String),
    #[error("voice {voice:?} belongs to model {actual:?}, not {requested:?}")]
    VoiceNotInModel {
        voice: String,
        requested: String,
        actual: String,
    },
    #[error("blend {0:?} mixes voices of different models")]
    MixedBlend(String),
    #[error("no model could be loaded from {dir} (run scripts/fetch_models.py): {failures}")]
    Empty { dir: PathBuf, failures: String },
    #[error("reading models directory {dir}: {source}")]
    Io {
        dir: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// One loaded model under its id (the model family: `piper`, `kokoro`).
#[derive(Clone)]
pub struct LoadedModel {
    pub id: String,
    pub model: Arc<dyn SpeechModel>,
}

/// A summary of a model for listings.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ModelSummary {
    pub id: String,
    pub sample_rate: u32,
    pub voices: Vec<String>,
}

/// Every loaded model, with an index from voice id to model.
pub struct ModelRegistry {
    models: Vec<LoadedModel>,
    /// Voice id → index into `models`.
    voices: BTreeMap<String, usize>,
}

impl std::fmt::Debug for ModelRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ModelRegistry")
            .field("voices", &self.voices.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl ModelRegistry {
    /// Builds a registry from already-loaded models. The first model to claim a voice id keeps it.
    pub fn from_models(models: Vec<LoadedModel>) -> Self {
        let mut voices = BTreeMap::new();
        for (index, loaded) in models.iter().enumerate() {
            for voice in loaded.model.voices() {
                if voices.contains_key(&voice.id) {
                    tracing::warn!(voice = %voice.id, model = %loaded.id, "duplicate voice id ignored");
                    continue;
                }
                voices.insert(voice.id, index);
            }
        }
        Self { models, voices }
    }

    /// Loads every model found under `models_dir` (see the module docs for the layout).
    pub fn load_dir(models_dir: &Path, device: &Device) -> Result<Self, RegistryError> {
        Self::load_dir_with_dtype(models_dir, device, DType::F32)
    }

    /// [`Self::load_dir`] with Kokoro's weights in `dtype` (Piper always runs f32; see
    /// [`crate::vits::PiperModel::load`]).
    pub fn load_dir_with_dtype(
        models_dir: &Path,
        device: &Device,
        dtype: DType,
    ) -> Result<Self, RegistryError> {
        if dtype != DType::F32 {
            tracing::info!(?dtype, "kokoro loads in {dtype:?}; piper voices stay f32");
        }
        let mut models = Vec::new();
        let mut failures = Vec::new();

        Self::load_piper(models_dir, device, &mut models, &mut failures)?;
        Self::load_kokoro(models_dir, device, dtype, &mut models, &mut failures);

        if models.is_empty() {
            let failures = if failures.is_empty() {
                "no piper/*.onnx or kokoro/ found".to_string()
            } else {
                failures.join("; ")
            };
            return Err(RegistryError::Empty {
                dir: models_dir.to_path_buf(),
                failures,
            });
        }
        Ok(Self::from_models(models))
    }

    fn load_piper(
        models_dir: &Path,
        device: &Device,
        models: &mut Vec<LoadedModel>,
        failures: &mut Vec<String>,
    ) -> Result<(), RegistryError> {
        for (onnx, config) in piper_voice_files(&models_dir.join("piper"))? {
            let started = std::time::Instant::now();
            match crate::vits::PiperModel::load(&onnx, &config, device) {
                Ok(model) => {
                    tracing::info!(path = %onnx.display(), secs = started.elapsed().as_secs_f64(), "loaded piper voice");
                    models.push(LoadedModel {
                        id: model.family().to_string(),
                        model: Arc::new(model),
                    });
                }
                Err(err) => record_failure(failures, &onnx, err),
            }
        }
        Ok(())
    }

    fn load_kokoro(
        models_dir: &Path,
        device: &Device,
        dtype: DType,
        models: &mut Vec<LoadedModel>,
        failures: &mut Vec<String>,
    ) {
        let dir = models_dir.join("kokoro");
        if !dir.is_dir() {
            return;
        }
        let started = std::time::Instant::now();
        match crate::kokoro::KokoroModel::load_with_dtype(&dir, device, dtype) {
            Ok(model) => {
                tracing::info!(path = %dir.display(), secs = started.elapsed().as_secs_f64(), "loaded kokoro");
                // Japanese reading: the dictionary sits beside the weights (models/ja). Loading it here
                // keeps its cost off the first Japanese request.
                tts_text::japanese::set_dictionary_dir(models_dir.join("ja"));
                if let Err(err) = tts_text::japanese::JapaneseG2p::global() {
                    tracing::warn!(
                        "{err} (Japanese with kanji will be refused; kana still reads through espeak-ng)"
                    );
                }
                models.push(LoadedModel {
                    id: model.family().to_string(),
                    model: Arc::new(model),
                });
            }
            Err(err) => record_failure(failures, &dir, err),
        }
    }

    /// The model that speaks `voice`, checked against `model` when the caller named one.
    /// Blends (`a(2)+b(1)`) resolve when every component belongs to the same model.
    pub fn resolve(&self, model: Option<&str>, voice: &str) -> Result<&LoadedModel, RegistryError> {
        if let Some(requested) = model {
            if !self.models.iter().any(|m| m.id == requested) {
                return Err(RegistryError::UnknownModel(requested.to_string()));
            }
        }
        let mut found: Option<usize> = None;
        for component in blend_components(voice) {
            // Voices added at runtime (Kokoro's cloned voices) are not indexed: ask the models.
            let index = self
                .voices
                .get(component)
                .copied()
                .or_else(|| self.models.iter().position(|m| m.model.speaks(component)))
                .ok_or_else(|| RegistryError::UnknownVoice(voice.to_string()))?;
            match found {
                Some(previous) if previous != index => {
                    return Err(RegistryError::MixedBlend(voice.to_string()))
                }
                _ => found = Some(index),
            }
        }
        let loaded = found
            .map(|index| &self.models[index])
            .ok_or_else(|| RegistryError::UnknownVoice(voice.to_string()))?;
        match model {
            Some(requested) if requested != loaded.id => Err(RegistryError::VoiceNotInModel {
                voice: voice.to_string(),
                requested: requested.to_string(),
                actual: loaded.id.clone(),
            }),
            _ => Ok(loaded),
        }
    }

    /// Keeps only the models `keep` accepts (e.g. those that passed a warm-up), re-indexing voices.
    pub fn retain(self, keep: impl FnMut(&LoadedModel) -> bool) -> Self {
        Self::from_models(self.models.into_iter().filter(keep).collect())
    }

    pub fn models(&self) -> &[LoadedModel] {
        &self.models
    }

    /// Every voice, sorted by id.
    pub fn voices(&self) -> Vec<VoiceInfo> {
        let mut voices: Vec<VoiceInfo> = self
            .voices
            .iter()
            .filter_map(|(id, &index)| {
                self.models[index]
                    .model
                    .voices()
                    .into_iter()
                    .find(|v| &v.id == id)
            })
            .collect();
        voices.sort_by(|a, b| a.id.cmp(&b.id));
        voices
    }

    /// Models merged by id (several Piper voices are several instances of the `piper` model).
    pub fn model_summaries(&self) -> Vec<ModelSummary> {
        let mut summaries: Vec<ModelSummary> = Vec::new();
        for (voice, &index) in &self.voices {
            let loaded = &self.models[index];
            match summaries.iter_mut().find(|s| s.id == loaded.id) {
                Some(summary) => summary.voices.push(voice.clone()),
                None => summaries.push(ModelSummary {
                    id: loaded.id.clone(),
                    sample_rate: loaded.model.sample_rate(),
                    voices: vec![voice.clone()],
                }),
            }
        }
        summaries
    }

    pub fn has_voice(&self, voice: &str) -> bool {
        self.resolve(None, voice).is_ok()
    }

    /// The loaded Kokoro model, whose voice store takes runtime (cloned) voices.
    pub fn kokoro(&self) -> Option<&crate::kokoro::KokoroModel> {
        self.models.iter().find_map(|m| {
            m.model
                .as_any()?
                .downcast_ref::<crate::kokoro::KokoroModel>()
        })
    }

    /// Whether `voice` is one of the models' built-in voices (not added at runtime).
    pub fn is_stock_voice(&self, voice: &str) -> bool {
        self.voices.contains_key(voice)
    }
}

/// `jf_alpha(2)+jm_kumo(1)` → `["jf_alpha", "jm_kumo"]`; a plain id yields itself.
fn blend_components(voice: &str) -> impl Iterator<Item = &str> {
    voice
        .split('+')
        .map(|part| part.split('(').next().unwrap_or(part).trim())
}

fn record_failure(failures: &mut Vec<String>, path: &Path, err: ModelError) {
    tracing::error!(path = %path.display(), error = %err, "model failed to load; skipped");
    failures.push(format!("{}: {err}", path.display()));
}

/// `(voice.onnx, voice.onnx.json)` pairs in `dir`, sorted; an `.onnx` without its config is skipped.
fn piper_voice_files(dir: &Path) -> Result<Vec<(PathBuf, PathBuf)>, RegistryError> {
    if !dir.is_dir() {
        return Ok(Vec::new());
    }
    let entries = std::fs::read_dir(dir).map_err(|source| RegistryError::Io {
        dir: dir.to_path_buf(),
        source,
    })?;
    let mut pairs = Vec::new();
    for entry in entries.flatten() {
        let path = entry.path();
        if path.extension().and_then(|e| e.to_str()) != Some("onnx") {
            continue;
        }
        let mut config = path.clone().into_os_string();
        config.push(".json");
        let config = PathBuf::from(config);
        if config.is_file() {
            pairs.push((path, config));
        } else {
            tracing::warn!(path = %path.display(), "piper voice without .onnx.json skipped");
        }
    }
    pairs.sort();
    Ok(pairs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{SynthesisRequest, VoiceKind};
    use tts_audio::Pcm;

    struct FakeModel {
        family: &'static str,
        voices: Vec<&'static str>,
    }

    impl SpeechModel for FakeModel {
        fn family(&self) -> &str {
            self.family
        }
        fn sample_rate(&self) -> u32 {
            16_000
        }
        fn voices(&self) -> Vec<VoiceInfo> {
            self.voices
                .iter()
                .map(|id| VoiceInfo {
                    id: id.to_string(),
                    family: self.family.to_string(),
                    language: "en".into(),
                    kind: VoiceKind::Stock,
                })
                .collect()
        }
        fn synthesize(&self, _request: &SynthesisRequest) -> Result<Pcm, ModelError> {
            Ok(Pcm::new(vec![0.0; 160], 16_000))
        }
    }

    fn registry() -> ModelRegistry {
        let model = |family, voices| LoadedModel {
            id: String::from(family),
            model: Arc::new(FakeModel { family, voices }),
        };
        ModelRegistry::from_models(vec![
            model("piper", vec!["en_US-joe-medium"]),
            model("kokoro", vec!["jf_alpha", "jm_kumo"]),
        ])
    }

    #[test]
    fn voice_resolves_to_its_model_without_naming_the_model() {
        let registry = registry();
        assert_eq!(registry.resolve(None, "jf_alpha").unwrap().id, "kokoro");
        assert_eq!(
            registry.resolve(None, "en_US-joe-medium").unwrap().id,
            "piper"
        );
    }

    #[test]
    fn blend_of_one_models_voices_resolves_and_mixed_blend_is_rejected() {
        let registry = registry();
        assert_eq!(
            registry.resolve(None, "jf_alpha(2)+jm_kumo(1)").unwrap().id,
            "kokoro"
        );
        assert!(matches!(
            registry.resolve(None, "jf_alpha+en_US-joe-medium"),
            Err(RegistryError::MixedBlend(_))
        ));
    }

    #[test]
    fn unknown_voice_model_and_mismatch_are_distinct_errors() {
        let registry = registry();
        assert!(matches!(
            registry.resolve(None, "nobody"),
            Err(RegistryError::UnknownVoice(_))
        ));
        assert!(matches!(
            registry.resolve(Some("tacotron"), "jf_alpha"),
            Err(RegistryError::UnknownModel(_))
        ));
        assert!(matches!(
            registry.resolve(Some("piper"), "jf_alpha"),
            Err(RegistryError::VoiceNotInModel { .. })
        ));
    }

    #[test]
    fn summaries_group_voices_by_model() {
        let summaries = registry().model_summaries();
        let kokoro = summaries.iter().find(|s| s.id == "kokoro").unwrap();
        assert_eq!(kokoro.voices, vec!["jf_alpha", "jm_kumo"]);
    }

    #[test]
    fn retain_drops_a_model_and_its_voices() {
        let registry = registry().retain(|m| m.id != "kokoro");
        assert!(registry.has_voice("en_US-joe-medium"));
        assert!(!registry.has_voice("jf_alpha"));
    }

    #[test]
    fn voice_a_model_speaks_but_does_not_list_resolves_to_that_model() {
        struct RuntimeVoices;
        impl SpeechModel for RuntimeVoices {
            fn family(&self) -> &str {
                "kokoro"
            }
            fn sample_rate(&self) -> u32 {
                24_000
            }
            fn voices(&self) -> Vec<VoiceInfo> {
                Vec::new()
            }
            fn speaks(&self, voice: &str) -> bool {
                voice == "uploaded-x1"
            }
            fn synthesize(&self, _request: &SynthesisRequest) -> Result<Pcm, ModelError> {
                Ok(Pcm::new(vec![0.0; 240], 24_000))
            }
        }
        let registry = ModelRegistry::from_models(vec![LoadedModel {
            id: "kokoro".into(),
            model: Arc::new(RuntimeVoices),
        }]);
        assert_eq!(registry.resolve(None, "uploaded-x1").unwrap().id, "kokoro");
        assert!(!registry.is_stock_voice("uploaded-x1"));
        assert!(
            registry.voices().is_empty(),
            "runtime voices are not listed"
        );
        assert!(registry.kokoro().is_none(), "not a KokoroModel");
    }

    #[test]
    fn empty_directory_is_an_error() {
        let dir = std::env::temp_dir().join(format!("tts-registry-empty-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let result = ModelRegistry::load_dir(&dir, &Device::Cpu);
        std::fs::remove_dir_all(&dir).ok();
        assert!(matches!(result, Err(RegistryError::Empty { .. })));
    }
}
