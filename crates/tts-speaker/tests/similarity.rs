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

/// The differentiable path (what cloning follows) agrees with `embed` on real speech, and its
/// gradient with respect to the samples agrees with a finite difference.
#[test]
fn differentiable_embedding_matches_embed_and_has_the_right_gradient() -> anyhow::Result<()> {
    let enc = common::encoder();
    let clip = tts_audio::resample(&common::clip("kokoro_jf_alpha"), 24_000)?;
    let samples =
        candle_core::Var::from_slice(&clip.samples, clip.samples.len(), &candle_core::Device::Cpu)?;
    let embedding = enc.embed_differentiable(samples.as_tensor())?;
    let exact = enc.embed(&clip)?;
    let agreement = cosine(&embedding.to_vec1::<f32>()?, &exact);
    eprintln!("differentiable vs exact embedding: cosine {agreement:.4}");
    // Differences: the resampling filter and no silence trimming (the clip has little).
    assert!(agreement > 0.97, "cosine {agreement}");

    let target = candle_core::Tensor::new(
        enc.embed(&common::clip("joe"))?.as_slice(),
        &candle_core::Device::Cpu,
    )?;
    let similarity = |t: &candle_core::Tensor| -> anyhow::Result<candle_core::Tensor> {
        Ok((enc.embed_differentiable(t)? * &target)?.sum_all()?)
    };
    let started = std::time::Instant::now();
    let forward = similarity(samples.as_tensor())?;
    let forward_secs = started.elapsed().as_secs_f64();
    let started = std::time::Instant::now();
    let grads = forward.backward()?;
    eprintln!(
        "{} samples: forward {forward_secs:.2} s, backward {:.2} s",
        clip.samples.len(),
        started.elapsed().as_secs_f64()
    );
    let grad = grads
        .get(samples.as_tensor())
        .expect("gradient reaches the samples");
    let norm = grad.sqr()?.sum_all()?.sqrt()?.to_scalar::<f32>()?;
    assert!(norm.is_finite() && norm > 0.0, "gradient norm {norm}");
    let direction = (grad / f64::from(norm))?;
    let eps = 1e-3;
    let at = |sign: f64| -> anyhow::Result<f32> {
        let moved = (samples.as_tensor() + (&direction * (sign * eps))?)?;
        Ok(similarity(&moved)?.to_scalar::<f32>()?)
    };
    let finite = (at(1.0)? - at(-1.0)?) / (2.0 * eps as f32);
    eprintln!("directional derivative: autograd {norm:.4e}, finite difference {finite:.4e}");
    assert!(
        (finite - norm).abs() < 0.1 * norm,
        "autograd {norm} vs finite difference {finite}"
    );
    Ok(())
}
