//! Measured acceptance of Kokoro cloning (issue 6): for reference speakers that no stock pack
//! contains, fit a clone on one clip and score speaker similarity (GE2E cosine) against a
//! held-out clip of the same speaker with different text, for the nearest stock voice, the
//! NNLS blend and the refined clone. Every candidate speaks the held-out clip's text.
//!
//! ```text
//! cargo run --release -p tts-speaker --example clone_eval [-- --budget 55] [--gradient-share 0.75] [--only joe] [--wer]
//! ```
//! Speakers: Piper `en_US-joe-medium` (our candle Piper) and espeak-ng voice variants (CLI).

use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use candle_core::Device;
use tts_audio::Pcm;
use tts_models::kokoro::KokoroModel;
use tts_models::vits::PiperModel;
use tts_models::{SpeechModel, SynthesisRequest};
use tts_speaker::clone::{
    blend_weights, fit_kokoro_style, synthesize_text_with_pack, FitOptions, StockVoices,
};
use tts_speaker::prosody::ProsodyStats;
use tts_speaker::{cosine, SpeakerEncoder};

const FIT_TEXT: &str =
    "A large size in stockings is hard to sell. The boy was there when the sun rose. \
    Rice is often served in round bowls, and the juice of lemons makes fine punch.";
const HELD_OUT_TEXT: &str =
    "The fish twisted and turned on the bent hook. Press the pants and sew a button on the vest.";

enum Source {
    Piper,
    Espeak(&'static str),
}

fn models_dir() -> PathBuf {
    std::env::var_os("TTS_MODELS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../models"))
}

fn espeak(voice: &str, text: &str) -> Result<Pcm> {
    // `--stdout` writes a streaming WAV header with placeholder sizes; a file gets real ones.
    let path = std::env::temp_dir().join(format!(
        "clone_eval_{}_{}.wav",
        std::process::id(),
        voice.replace(['+', '-'], "_")
    ));
    let out = Command::new("espeak-ng")
        .args(["-s", "160", "-v", voice, "-w"])
        .arg(&path)
        .arg(text)
        .output()
        .context("running espeak-ng (apt-get install espeak-ng)")?;
    if !out.status.success() {
        bail!(
            "espeak-ng -v {voice} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let bytes = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
    std::fs::remove_file(&path).ok();
    Ok(tts_audio::decode(&bytes, Some("wav"))?)
}

fn main() -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "tts_speaker=info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let args: Vec<String> = std::env::args().collect();
    let arg = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
    };
    let budget: f32 = arg("--budget")
        .map(|s| s.parse())
        .transpose()
        .context("--budget takes seconds")?
        .unwrap_or(45.0);
    let gradient_share: f32 = arg("--gradient-share")
        .map(|s| s.parse())
        .transpose()
        .context("--gradient-share takes a fraction")?
        .unwrap_or(FitOptions::default().gradient_share);
    let only = arg("--only").cloned();
    // Intelligibility: word error rate of the held-out sentence (PocketSphinx, benches/asr_wer.py).
    let wer = args.iter().any(|a| a == "--wer");
    let mut wer_rows = Vec::new();

    let dir = models_dir();
    let device = Device::Cpu;
    let encoder = SpeakerEncoder::load(&dir.join("speaker/resemblyzer-ge2e.pt"), &device)?;
    let kokoro = KokoroModel::load(&dir.join("kokoro"), &device)?;
    let piper = PiperModel::load(
        &dir.join("piper/en_US-joe-medium.onnx"),
        &dir.join("piper/en_US-joe-medium.onnx.json"),
        &device,
    )?;
    let t0 = Instant::now();
    let stock = StockVoices::of(&kokoro, &encoder)?;
    eprintln!(
        "stock voices profiled in {:.1} s",
        t0.elapsed().as_secs_f64()
    );

    let speakers = [
        ("piper joe", Source::Piper),
        ("espeak en-us+m3", Source::Espeak("en-us+m3")),
        ("espeak en-gb+f4", Source::Espeak("en-gb+f4")),
        (
            "espeak en-gb-scotland+m1",
            Source::Espeak("en-gb-scotland+m1"),
        ),
    ];
    let opts = FitOptions {
        time_budget_secs: budget,
        gradient_share,
        ..FitOptions::default()
    };
    let mut rows = Vec::new();
    for (name, source) in &speakers {
        if only.as_ref().is_some_and(|o| !name.contains(o.as_str())) {
            continue;
        }
        let say = |text: &str| -> Result<Pcm> {
            match source {
                Source::Piper => {
                    Ok(piper.synthesize(&SynthesisRequest::new(text, "en_US-joe-medium"))?)
                }
                Source::Espeak(v) => espeak(v, text),
            }
        };
        let fit_clip = say(FIT_TEXT)?;
        let held_clip = say(HELD_OUT_TEXT)?;
        let fit_embed = encoder.embed(&fit_clip)?;
        let held_embed = encoder.embed(&held_clip)?;
        let fit_prosody = ProsodyStats::measure(&fit_clip)?;
        let held_sim = |pack: &candle_core::Tensor| -> Result<f32> {
            let audio = synthesize_text_with_pack(&kokoro, HELD_OUT_TEXT, pack, opts.seed)?;
            Ok(cosine(&encoder.embed(&audio)?, &held_embed))
        };
        // Nearest stock voice as judged from the fit clip, then scored on held-out speech.
        let (nearest, _) = stock.nearest(&fit_embed);
        let nearest_sim = held_sim(&stock.voices[nearest].pack)?;
        let mut best_stock = (String::new(), f32::MIN);
        for v in &stock.voices {
            let s = held_sim(&v.pack)?;
            if s > best_stock.1 {
                best_stock = (v.id.clone(), s);
            }
        }
        let weights = blend_weights(&stock, &fit_embed, &fit_prosody);
        let theta: Vec<f32> = weights.iter().chain(&weights).copied().collect();
        let blend_sim = held_sim(&stock.pack_for(&theta)?)?;
        let t = Instant::now();
        let fitted = fit_kokoro_style(&fit_clip, &kokoro, &encoder, &opts)?;
        let fit_secs = t.elapsed().as_secs_f64();
        let clone_sim = held_sim(&fitted.pack)?;
        if wer {
            let clips = [
                held_clip.clone(),
                synthesize_text_with_pack(
                    &kokoro,
                    HELD_OUT_TEXT,
                    &stock.voices[nearest].pack,
                    opts.seed,
                )?,
                synthesize_text_with_pack(&kokoro, HELD_OUT_TEXT, &fitted.pack, opts.seed)?,
            ];
            let rates = word_error_rates(&clips, HELD_OUT_TEXT)?;
            wer_rows.push(format!(
                "| {name} | {:.2} | {} {:.2} | {:.2} |",
                rates[0], stock.voices[nearest].id, rates[1], rates[2]
            ));
        }
        let blend_desc = fitted
            .blend
            .iter()
            .map(|(id, w)| format!("{id} {w:.2}"))
            .collect::<Vec<_>>()
            .join(", ");
        eprintln!("{name}: nearest {nearest_sim:.3} blend {blend_sim:.3} clone {clone_sim:.3}");
        rows.push(format!(
            "| {name} | {} {nearest_sim:.3} | {} {:.3} | {blend_sim:.3} ({blend_desc}) | {clone_sim:.3} | {:+.3} | {:.3} | {fit_secs:.0} |",
            stock.voices[nearest].id,
            best_stock.0,
            best_stock.1,
            clone_sim - nearest_sim,
            fitted.similarity,
        ));
    }
    println!("| speaker | nearest stock (by fit clip) | best stock (oracle, held-out) | blend | clone | clone − nearest | clone on fit text | fit s |");
    println!("|---|---|---|---|---|---|---|---|");
    for r in &rows {
        println!("{r}");
    }
    if wer {
        println!();
        println!("| speaker | WER, reference clip | WER, nearest stock | WER, clone |");
        println!("|---|---|---|---|");
        for r in &wer_rows {
            println!("{r}");
        }
    }
    Ok(())
}

/// PocketSphinx word error rates of `clips` saying `text` (`benches/asr_wer.py`).
fn word_error_rates(clips: &[Pcm], text: &str) -> Result<Vec<f32>> {
    let dir = std::env::temp_dir().join(format!("clone_eval_wer_{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let mut paths = Vec::new();
    for (i, clip) in clips.iter().enumerate() {
        let path = dir.join(format!("{i}.wav"));
        let pcm = tts_audio::resample(clip, 16_000)?;
        std::fs::write(
            &path,
            tts_audio::encode(&pcm, tts_audio::AudioFormat::Wav, None)?,
        )?;
        paths.push(path);
    }
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../benches/asr_wer.py");
    let out = Command::new("python3")
        .arg(&script)
        .arg(text)
        .args(&paths)
        .output()
        .context("running benches/asr_wer.py (pip install pocketsphinx)")?;
    std::fs::remove_dir_all(&dir).ok();
    if !out.status.success() {
        bail!(
            "asr_wer.py failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|line| {
            let rate = line.split('\t').nth(1).context("asr_wer.py output")?;
            eprintln!("ASR {line}");
            Ok(rate.parse()?)
        })
        .collect()
}
