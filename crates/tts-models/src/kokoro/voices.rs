//! Voice packs and blends.
//!
//! A Kokoro voice is a pack of style vectors `[510, 1, 256]`, one row per input length: the row
//! for `n` phonemes is `pack[n − 1]`. Its first 128 values condition the decoder, the last 128
//! the prosody predictor. Packs come from an `.npz` (`voices_ja.npz`) or per-voice `.pt` files
//! (`voices/*.pt` of the official release). A blend such as `jf_alpha(2)+jm_kumo(1)` is the
//! weight-normalised sum of packs; each distinct blend is computed once and cached.
//! Packs can also be added and removed at runtime ([`VoiceStore::insert`], cloned voices); stock
//! packs are never replaced by them.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::{Arc, Mutex, RwLock};

use candle_core::{DType, Device, Tensor};

use crate::ModelError;

/// Rows per pack: one per phoneme count 1..=510.
pub const PACK_ROWS: usize = 510;
pub const STYLE_DIM: usize = 256;

#[derive(Debug)]
pub struct VoiceStore {
    /// Stock packs `[510, 256]` by id.
    packs: BTreeMap<String, Tensor>,
    /// Packs added at runtime (cloned voices) by id; read-locked only when a voice is not stock,
    /// so stock lookups never touch the lock.
    added: RwLock<BTreeMap<String, Arc<Tensor>>>,
    /// Blends by their canonical spelling.
    blends: Mutex<HashMap<String, Arc<Tensor>>>,
}

fn invalid(message: impl Into<String>) -> ModelError {
    ModelError::InvalidInput {
        field: "voice",
        message: message.into(),
    }
}

impl VoiceStore {
    pub fn new(packs: BTreeMap<String, Tensor>) -> Self {
        Self {
            packs,
            added: RwLock::new(BTreeMap::new()),
            blends: Mutex::new(HashMap::new()),
        }
    }

    /// Adds (or replaces) a runtime voice. `pack` holds 510 × 256 values (`[510, 1, 256]` or
    /// `[510, 256]`); it is moved to the device of the stock packs. Stock ids cannot be shadowed.
    pub fn insert(&self, id: &str, pack: &Tensor) -> Result<(), ModelError> {
        check_voice_name(id, id)?;
        if self.packs.contains_key(id) {
            return Err(invalid(format!("{id:?} is a stock voice")));
        }
        let device = self
            .packs
            .values()
            .next()
            .map(|t| t.device().clone())
            .unwrap_or(Device::Cpu);
        let pack = shaped_pack(pack, &device, |dims| {
            invalid(format!(
                "pack of {id} has shape {dims:?}, expected [510, 1, 256]"
            ))
        })?;
        self.added
            .write()
            .map_err(|_| invalid("voice store poisoned"))?
            .insert(id.to_string(), Arc::new(pack));
        self.forget_blends_with(id)?;
        Ok(())
    }

    /// Removes a runtime voice (and every cached blend that uses it); false when it was not there.
    pub fn remove(&self, id: &str) -> Result<bool, ModelError> {
        let removed = self
            .added
            .write()
            .map_err(|_| invalid("voice store poisoned"))?
            .remove(id)
            .is_some();
        self.forget_blends_with(id)?;
        Ok(removed)
    }

    /// Ids of the voices added at runtime, sorted.
    pub fn added_ids(&self) -> Vec<String> {
        self.added
            .read()
            .map(|added| added.keys().cloned().collect())
            .unwrap_or_default()
    }

    fn forget_blends_with(&self, id: &str) -> Result<(), ModelError> {
        self.blends
            .lock()
            .map_err(|_| invalid("voice cache poisoned"))?
            .retain(|key, _| {
                !key.split('+')
                    .any(|part| part.split('(').next() == Some(id))
            });
        Ok(())
    }

    /// A stock or runtime pack by exact id.
    fn single(&self, id: &str) -> Result<Option<Arc<Tensor>>, ModelError> {
        if let Some(t) = self.packs.get(id) {
            return Ok(Some(Arc::new(t.clone())));
        }
        Ok(self
            .added
            .read()
            .map_err(|_| invalid("voice store poisoned"))?
            .get(id)
            .cloned())
    }

    fn check_pack(
        path: &Path,
        name: &str,
        t: Tensor,
        device: &Device,
    ) -> Result<Tensor, ModelError> {
        shaped_pack(&t, device, |dims| ModelError::Weights {
            path: path.display().to_string(),
            message: format!("voice {name} has shape {dims:?}, expected [510, 1, 256]"),
        })
    }

    /// Reads every array of an `.npz` as a voice pack named by its key.
    pub fn from_npz(path: &Path, device: &Device) -> Result<Self, ModelError> {
        let arrays = Tensor::read_npz(path).map_err(|e| ModelError::Weights {
            path: path.display().to_string(),
            message: format!("cannot read voice packs: {e}"),
        })?;
        let mut packs = BTreeMap::new();
        for (name, t) in arrays {
            let name = name.trim_end_matches(".npy").to_string();
            let t = Self::check_pack(path, &name, t, device)?;
            packs.insert(name, t);
        }
        Ok(Self::new(packs))
    }

    /// Reads `<dir>/*.pt` (one pickled tensor per voice, as in the official release).
    pub fn from_pt_dir(dir: &Path, device: &Device) -> Result<Self, ModelError> {
        let mut packs = BTreeMap::new();
        for entry in std::fs::read_dir(dir)? {
            let path = entry?.path();
            if path.extension().and_then(|e| e.to_str()) != Some("pt") {
                continue;
            }
            let Some(name) = path
                .file_stem()
                .and_then(|s| s.to_str())
                .map(str::to_string)
            else {
                continue;
            };
            let tensors =
                candle_core::pickle::read_all(&path).map_err(|e| ModelError::Weights {
                    path: path.display().to_string(),
                    message: format!("cannot read voice: {e}"),
                })?;
            let (_, t) = tensors
                .into_iter()
                .next()
                .ok_or_else(|| ModelError::Weights {
                    path: path.display().to_string(),
                    message: "no tensor in voice file".into(),
                })?;
            let t = Self::check_pack(&path, &name, t, device)?;
            packs.insert(name, t);
        }
        Ok(Self::new(packs))
    }

    /// Stock voice ids, sorted.
    pub fn ids(&self) -> Vec<String> {
        self.packs.keys().cloned().collect()
    }

    /// Whether `id` is a stock or runtime voice.
    pub fn contains(&self, id: &str) -> bool {
        self.packs.contains_key(id) || self.added.read().is_ok_and(|added| added.contains_key(id))
    }

    /// The pack of a stock voice or blend, `[510, 256]`.
    pub fn pack(&self, voice: &str) -> Result<Arc<Tensor>, ModelError> {
        let parts = parse_blend(voice)?;
        if parts.len() == 1 && (parts[0].1 - 1.0).abs() < f32::EPSILON {
            return self
                .single(&parts[0].0)?
                .ok_or_else(|| ModelError::UnknownVoice(voice.to_string()));
        }
        let key = canonical_blend(&parts);
        {
            let cache = self
                .blends
                .lock()
                .map_err(|_| invalid("voice cache poisoned"))?;
            if let Some(t) = cache.get(&key) {
                return Ok(t.clone());
            }
        }
        let total: f32 = parts.iter().map(|(_, w)| w).sum();
        let mut acc: Option<Tensor> = None;
        for (id, w) in &parts {
            let t = self
                .single(id)?
                .ok_or_else(|| ModelError::UnknownVoice(id.clone()))?;
            let scaled = (t.as_ref() * f64::from(w / total))?;
            acc = Some(match acc {
                None => scaled,
                Some(a) => (a + scaled)?,
            });
        }
        let blend = Arc::new(acc.ok_or_else(|| invalid("empty blend"))?);
        let mut cache = self
            .blends
            .lock()
            .map_err(|_| invalid("voice cache poisoned"))?;
        Ok(cache.entry(key).or_insert(blend).clone())
    }

    /// The style vector `[1, 256]` for an input of `n_phonemes` phonemes (row `n − 1`, clamped).
    pub fn style(&self, voice: &str, n_phonemes: usize) -> Result<Tensor, ModelError> {
        let pack = self.pack(voice)?;
        let row = n_phonemes.clamp(1, PACK_ROWS) - 1;
        Ok(pack.narrow(0, row, 1)?)
    }
}

/// A pack as `[510, 256]` f32 on `device`, from any shape holding 510 × 256 values (the
/// released packs are `[510, 1, 256]`); `reject` names the problem otherwise.
fn shaped_pack(
    pack: &Tensor,
    device: &Device,
    reject: impl FnOnce(&[usize]) -> ModelError,
) -> Result<Tensor, ModelError> {
    if pack.elem_count() != PACK_ROWS * STYLE_DIM {
        return Err(reject(pack.dims()));
    }
    Ok(pack
        .to_dtype(DType::F32)?
        .reshape((PACK_ROWS, STYLE_DIM))?
        .to_device(device)?)
}

/// Parses `a(2)+b(1)` / `a+b` / `a` into `(id, weight)` pairs.
pub fn parse_blend(spec: &str) -> Result<Vec<(String, f32)>, ModelError> {
    let spec = spec.trim();
    if spec.is_empty() {
        return Err(invalid("empty voice id"));
    }
    let mut out = Vec::new();
    for part in spec.split('+') {
        let part = part.trim();
        let (id, weight) = match part.split_once('(') {
            Some((id, rest)) => {
                let w = rest
                    .strip_suffix(')')
                    .ok_or_else(|| invalid(format!("unclosed weight in {part:?}")))?;
                let w: f32 = w
                    .trim()
                    .parse()
                    .map_err(|_| invalid(format!("bad weight {w:?} in {spec:?}")))?;
                (id.trim(), w)
            }
            None => (part, 1.0),
        };
        check_voice_name(id, spec)?;
        if !(weight.is_finite() && weight > 0.0) {
            return Err(invalid(format!(
                "weight of {id} must be positive, got {weight}"
            )));
        }
        out.push((id.to_string(), weight));
    }
    Ok(out)
}

/// Voice ids are `[A-Za-z0-9_-]+`, so they can never spell a blend or a path.
fn check_voice_name(id: &str, spec: &str) -> Result<(), ModelError> {
    if id.is_empty()
        || !id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        return Err(invalid(format!("bad voice name {id:?} in {spec:?}")));
    }
    Ok(())
}

fn canonical_blend(parts: &[(String, f32)]) -> String {
    parts
        .iter()
        .map(|(id, w)| format!("{id}({w})"))
        .collect::<Vec<_>>()
        .join("+")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blend_spec_parses_weights_and_defaults() -> Result<(), ModelError> {
        assert_eq!(
            parse_blend("jf_alpha(2)+jm_kumo(1)")?,
            vec![("jf_alpha".to_string(), 2.0), ("jm_kumo".to_string(), 1.0)]
        );
        assert_eq!(
            parse_blend(" jf_alpha ")?,
            vec![("jf_alpha".to_string(), 1.0)]
        );
        assert!(parse_blend("jf_alpha(0)").is_err());
        assert!(parse_blend("jf_alpha(2").is_err());
        assert!(parse_blend("").is_err());
        assert!(parse_blend("a+").is_err());
        Ok(())
    }

    #[test]
    fn blend_is_the_normalised_weighted_sum_and_is_cached() -> Result<(), ModelError> {
        let dev = Device::Cpu;
        let mut packs = BTreeMap::new();
        packs.insert(
            "a".to_string(),
            Tensor::ones((PACK_ROWS, STYLE_DIM), DType::F32, &dev)?,
        );
        packs.insert(
            "b".to_string(),
            Tensor::zeros((PACK_ROWS, STYLE_DIM), DType::F32, &dev)?,
        );
        let store = VoiceStore::new(packs);
        let s = store.style("a(3)+b(1)", 10)?;
        let v: Vec<f32> = s.flatten_all()?.to_vec1()?;
        assert!(v.iter().all(|x| (x - 0.75).abs() < 1e-6));
        let p1 = store.pack("a(3)+b(1)")?;
        let p2 = store.pack("a(3)+b(1)")?;
        assert!(Arc::ptr_eq(&p1, &p2), "second lookup comes from the cache");
        assert!(matches!(store.pack("c"), Err(ModelError::UnknownVoice(_))));
        Ok(())
    }

    #[test]
    fn runtime_voice_is_usable_alone_and_in_blends_until_removed() -> Result<(), ModelError> {
        let dev = Device::Cpu;
        let mut packs = BTreeMap::new();
        packs.insert(
            "a".to_string(),
            Tensor::ones((PACK_ROWS, STYLE_DIM), DType::F32, &dev)?,
        );
        let store = VoiceStore::new(packs);
        let cloned = Tensor::zeros((PACK_ROWS, 1, STYLE_DIM), DType::F32, &dev)?;
        store.insert("mine-1a2b", &cloned)?;
        assert!(store.contains("mine-1a2b"));
        assert_eq!(store.added_ids(), vec!["mine-1a2b".to_string()]);
        assert_eq!(
            store.ids(),
            vec!["a".to_string()],
            "stock list is unchanged"
        );
        let v: Vec<f32> = store
            .style("a(1)+mine-1a2b(1)", 3)?
            .flatten_all()?
            .to_vec1()?;
        assert!(v.iter().all(|x| (x - 0.5).abs() < 1e-6));

        assert!(store.remove("mine-1a2b")?);
        assert!(!store.remove("mine-1a2b")?);
        assert!(!store.contains("mine-1a2b"));
        assert!(
            matches!(
                store.pack("a(1)+mine-1a2b(1)"),
                Err(ModelError::UnknownVoice(_))
            ),
            "a cached blend of a removed voice is forgotten"
        );
        Ok(())
    }

    #[test]
    fn insert_rejects_stock_ids_bad_names_and_wrong_shapes() -> Result<(), ModelError> {
        let dev = Device::Cpu;
        let mut packs = BTreeMap::new();
        packs.insert(
            "a".to_string(),
            Tensor::ones((PACK_ROWS, STYLE_DIM), DType::F32, &dev)?,
        );
        let store = VoiceStore::new(packs);
        let good = Tensor::zeros((PACK_ROWS, STYLE_DIM), DType::F32, &dev)?;
        assert!(store.insert("a", &good).is_err());
        assert!(store.insert("../x", &good).is_err());
        assert!(store.insert("x(2)", &good).is_err());
        let wrong = Tensor::zeros((10, STYLE_DIM), DType::F32, &dev)?;
        assert!(store.insert("x", &wrong).is_err());
        assert!(!store.contains("x"));
        Ok(())
    }
}
