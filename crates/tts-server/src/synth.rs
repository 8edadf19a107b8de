//! `tts-server synth`: one text to one file through the registry, without a server. Reports what
//! a benchmark needs: characters, sentences, audio seconds, wall time and real-time factor.

use std::path::Path;
use std::time::Instant;

use tts_audio::{AudioFormat, EncoderOptions, Pcm};
use tts_models::registry::{ModelRegistry, RegistryError};
use tts_models::{ModelError, SynthesisRequest};

use crate::cli::SynthArgs;
use crate::config::ServerConfig;
use crate::joiner::SentenceJoiner;

#[derive(Debug, thiserror::Error)]
pub enum SynthError {
    #[error("cannot tell the format from {0:?}: use .wav, .mp3, .opus, .flac, .pcm or .ulaw")]
    UnknownExtension(String),
    #[error("the text has nothing to speak")]
    EmptyText,
    #[error(transparent)]
    Registry(#[from] RegistryError),
    #[error(transparent)]
    Device(#[from] tts_models::device::DeviceError),
    #[error(transparent)]
    Model(#[from] ModelError),
    #[error(transparent)]
    Audio(#[from] tts_audio::AudioError),
    #[error("writing {path}: {source}")]
    Write {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

#[derive(Debug, Clone)]
pub struct SynthReport {
    pub characters: usize,
    pub sentences: usize,
    pub audio_seconds: f64,
    pub wall_seconds: f64,
    pub rtf: f64,
    pub sample_rate: u32,
}

pub fn format_for(path: &Path) -> Result<AudioFormat, SynthError> {
    let extension = path
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or("")
        .to_ascii_lowercase();
    AudioFormat::ALL
        .into_iter()
        .find(|f| f.extension() == extension || f.as_str() == extension)
        .ok_or_else(|| SynthError::UnknownExtension(path.display().to_string()))
}

pub fn run(args: &SynthArgs) -> Result<SynthReport, SynthError> {
    let format = format_for(&args.out)?;
    let device = args.device.open()?;
    let dtype = args.dtype.check_for(&device)?;
    let registry = ModelRegistry::load_dir_with_dtype(&args.models_dir, &device, dtype)?;
    let loaded = registry.resolve(args.model.as_deref(), &args.voice)?;
    let sentences = crate::speech::sentences(&args.text);
    if sentences.is_empty() {
        return Err(SynthError::EmptyText);
    }
    let defaults = ServerConfig::default();
    let rate = loaded.model.sample_rate();
    let mut joiner =
        SentenceJoiner::new(rate, defaults.sentence_fade_ms, defaults.sentence_pause_ms);

    let started = Instant::now();
    let mut samples = Vec::new();
    for sentence in &sentences {
        let mut request = SynthesisRequest::new(sentence.clone(), args.voice.clone());
        request.speed = args.speed;
        let pcm = loaded.model.synthesize(&request)?;
        let pcm = if pcm.sample_rate == rate {
            pcm
        } else {
            tts_audio::resample(&pcm, rate)?
        };
        samples.extend(joiner.next(pcm.samples));
    }
    let wall_seconds = started.elapsed().as_secs_f64();
    let mut pcm = Pcm::new(samples, rate);
    let audio_seconds = pcm.duration_secs();
    if let Some(target) = args.sample_rate.filter(|&r| r != rate) {
        pcm = tts_audio::resample(&pcm, target)?;
    }
    let mut encoder = tts_audio::new_encoder(&EncoderOptions {
        format,
        sample_rate: pcm.sample_rate,
        bitrate_kbps: None,
        total_samples: Some(pcm.samples.len() as u64),
    })?;
    let mut bytes = encoder.push(&pcm.samples)?;
    bytes.extend(encoder.finish()?);
    std::fs::write(&args.out, &bytes).map_err(|source| SynthError::Write {
        path: args.out.display().to_string(),
        source,
    })?;
    Ok(SynthReport {
        characters: args.text.chars().count(),
        sentences: sentences.len(),
        audio_seconds,
        wall_seconds,
        rtf: if audio_seconds > 0.0 {
            wall_seconds / audio_seconds
        } else {
            0.0
        },
        sample_rate: encoder.output_sample_rate(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn format_comes_from_the_extension() {
        assert_eq!(
            format_for(Path::new("a/out.MP3")).unwrap(),
            AudioFormat::Mp3
        );
        assert_eq!(format_for(Path::new("x.ulaw")).unwrap(), AudioFormat::Mulaw);
        assert!(format_for(Path::new("x.aac")).is_err());
    }
}
