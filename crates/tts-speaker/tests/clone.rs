//! Cloning into Kokoro on real weights, with a small search and a few gradient steps to keep CI short.

mod common;

use tts_models::{SpeechModel, SynthesisRequest};
use tts_speaker::clone::{
    fit_kokoro_style, synthesize_text_with_pack, FitOptions, StockVoices, FIT_TEXT,
};
use tts_speaker::cosine;

const HELD_OUT: &str =
    "Every evening she walks the dog along the river, then reads until midnight.";

#[test]
fn fitted_clone_is_at_least_as_close_as_the_nearest_stock_voice_on_held_out_speech(
) -> anyhow::Result<()> {
    let (enc, kokoro) = (common::encoder(), common::kokoro());
    // Fit on the stored joe clip; hold out a different joe sentence.
    let sample = common::clip("joe");
    let held = common::piper().synthesize(&SynthesisRequest::new(HELD_OUT, "en_US-joe-medium"))?;
    let held = enc.embed(&held)?;
    // One search step and three gradient steps: capped by count, not by time (the budget is
    // ample), so the test checks the same fit on any machine; about a minute on 2 cores.
    let opts = FitOptions {
        time_budget_secs: 300.0,
        max_iterations: 1,
        max_gradient_steps: 3,
        ..FitOptions::default()
    };
    let fitted = fit_kokoro_style(&sample, kokoro, enc, &opts)?;

    assert_eq!(fitted.pack.dims(), &[510, 256]);
    let total: f32 = fitted.blend.iter().map(|(_, w)| w).sum();
    assert!((total - 1.0).abs() < 1e-3, "blend weights sum to {total}");
    assert!(fitted
        .blend
        .iter()
        .all(|(id, w)| *w > 0.0 && kokoro.voice_store().contains(id)));
    // `similarity` is the clone's measured similarity to the sample on the fitting sentence.
    let again = synthesize_text_with_pack(kokoro, FIT_TEXT, &fitted.pack, opts.seed)?;
    let measured = cosine(&enc.embed(&again)?, &enc.embed(&sample)?);
    assert!(
        (measured - fitted.similarity).abs() < 1e-3,
        "{measured} vs {}",
        fitted.similarity
    );

    // Gradient refinement through the decoder raised the similarity on the fitting sentence.
    eprintln!(
        "fit-text similarity: searched {:.3}, refined {:.3}",
        fitted.searched_similarity, fitted.similarity
    );
    assert!(
        fitted.similarity > fitted.searched_similarity + 0.01,
        "refined {} vs searched {}",
        fitted.similarity,
        fitted.searched_similarity
    );

    let stock = StockVoices::of(kokoro, enc)?;
    let (nearest, _) = stock.nearest(&enc.embed(&sample)?);
    let score = |pack| -> anyhow::Result<f32> {
        let audio = synthesize_text_with_pack(kokoro, HELD_OUT, pack, opts.seed)?;
        Ok(cosine(&enc.embed(&audio)?, &held))
    };
    let nearest_sim = score(&stock.voices[nearest].pack)?;
    let clone_sim = score(&fitted.pack)?;
    eprintln!(
        "held-out similarity: nearest {} {nearest_sim:.3}, clone {clone_sim:.3}",
        stock.voices[nearest].id
    );
    assert!(
        clone_sim >= nearest_sim,
        "clone {clone_sim} < nearest stock {nearest_sim}"
    );
    Ok(())
}
