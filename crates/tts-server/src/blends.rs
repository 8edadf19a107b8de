//! Named blends: voices the operator defines as a weighted mix of one model's voices
//! (`[voice_blends] narrator = "jf_alpha(2)+jm_kumo(1)"` in the config). They are registered at
//! start like any voice, listed with kind `blend`, and usable on every route and in further
//! blends. Only models with style vectors (Kokoro) mix voices; Piper voices are single speakers.

use std::collections::BTreeMap;

use serde::Serialize;
use utoipa::ToSchema;

use crate::state::AppState;
use crate::StartError;

/// One registered blend.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct NamedBlend {
    pub id: String,
    /// The mix, as written in the config.
    pub blend: String,
    pub model: String,
    /// The language of the blend's first voice.
    pub language: String,
    pub sample_rate: u32,
}

/// The blends of this server, by id.
#[derive(Debug, Default)]
pub struct NamedBlends(BTreeMap<String, NamedBlend>);

impl NamedBlends {
    pub fn list(&self) -> impl Iterator<Item = &NamedBlend> {
        self.0.values()
    }

    pub fn get(&self, id: &str) -> Option<&NamedBlend> {
        self.0.get(id)
    }
}

/// Registers the config's blends with their model (after the cloned voices, which blends may
/// use). A blend that cannot be made stops the start with its name and why.
pub fn register(mut state: AppState) -> Result<AppState, StartError> {
    let mut blends = BTreeMap::new();
    for (id, spec) in &state.config.voice_blends {
        let blend = register_one(&state, id, spec).map_err(|message| StartError::Blend {
            name: id.clone(),
            message,
        })?;
        tracing::info!(voice = %id, blend = %spec, "voice blend registered");
        blends.insert(id.clone(), blend);
    }
    state.blends = std::sync::Arc::new(NamedBlends(blends));
    Ok(state)
}

fn register_one(state: &AppState, id: &str, spec: &str) -> Result<NamedBlend, String> {
    tts_voicelib::validate_voice_id(id).map_err(|err| err.to_string())?;
    let registry = state.registry();
    if registry.resolve(None, id).is_ok() {
        return Err(format!("{id:?} is already a voice"));
    }
    let loaded = registry
        .resolve(None, spec)
        .map_err(|err| err.to_string())?;
    let kokoro = registry
        .kokoro()
        .filter(|_| loaded.id == "kokoro")
        .ok_or_else(|| {
            format!(
                "only Kokoro voices can be blended, not {} voices",
                loaded.id
            )
        })?;
    let store = kokoro.voice_store();
    let pack = store.pack(spec).map_err(|err| err.to_string())?;
    store.insert(id, &pack).map_err(|err| err.to_string())?;
    let components: Vec<&str> = spec
        .split('+')
        .map(|part| part.split('(').next().unwrap_or(part).trim())
        .collect();
    // The entry changes whenever the mix or any voice in it does.
    let mut parts = vec!["blend".to_string(), spec.to_string()];
    for component in &components {
        parts.push(state.cache.voice_digest(component));
    }
    state.cache.set_voice_digest(
        id,
        &tts_cache::key::combine_digests(parts.iter().map(String::as_str)),
    );
    let language = registry
        .voices()
        .into_iter()
        .find(|voice| voice.id == components[0])
        .map(|voice| voice.language)
        .or_else(|| state.voices.get(components[0])?.language)
        .unwrap_or_else(|| "und".to_string());
    Ok(NamedBlend {
        id: id.to_string(),
        blend: spec.to_string(),
        model: loaded.id.clone(),
        language,
        sample_rate: loaded.model.sample_rate(),
    })
}
