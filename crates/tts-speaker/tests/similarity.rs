//! The encoder as a speaker-similarity measure on real speech.

mod common;

use tts_audio::Pcm;
use tts_models::{SpeechModel, SynthesisRequest};
use tts_speaker::{cosine, SpeakerError};

#[test]
fn same_speaker_is_more_similar_than_other_speakers() -> anyhow::Result<()> {
    let enc = common::encoder();
    // Piper joe saying a sentence that is not in the stored clip.
    let joe2 = common::piper().synthesize(&SynthesisRequest::new(
        "Every evening she walks the dog along the river, then reads until midnight.",
        "en_US-joe-medium",
    ))?;
    let joe = enc.embed(&common::clip("joe"))?;
    let joe2 = enc.embed(&joe2)?;
    let same = cosine(&joe, &joe2);
    for other in ["espeak_f3", "kokoro_jf_alpha"] {
        let o = enc.embed(&common::clip(other))?;
        let cross = cosine(&joe2, &o);
        eprintln!("joe/joe {same:.3}, joe/{other} {cross:.3}");
        assert!(same > cross + 0.15, "joe/joe {same} vs joe/{other} {cross}");
    }
    assert!(same > 0.8, "two joe sentences: {same}");
    Ok(())
}

#[test]
fn embedding_does_not_depend_on_the_input_sample_rate() -> anyhow::Result<()> {
    let enc = common::encoder();
    let clip = common::clip("joe");
    let at_24k = tts_audio::resample(&clip, 24_000)?;
    let (a, b) = (enc.embed(&clip)?, enc.embed(&at_24k)?);
    assert_eq!(a.len(), tts_speaker::EMBEDDING_DIM);
    let norm: f32 = b.iter().map(|v| v * v).sum::<f32>().sqrt();
    assert!((norm - 1.0).abs() < 1e-4, "L2 norm {norm}");
    assert!(cosine(&a, &b) > 0.98, "16 vs 24 kHz: {}", cosine(&a, &b));
    Ok(())
}

#[test]
fn silence_is_rejected_as_invalid_audio() {
    let silent = Pcm::new(vec![0.0; 48_000], 16_000);
    assert!(matches!(
        common::encoder().embed(&silent),
        Err(SpeakerError::InvalidAudio(_))
    ));
    assert!(matches!(
        common::encoder().embed(&Pcm::new(Vec::new(), 16_000)),
        Err(SpeakerError::InvalidAudio(_))
    ));
}
