//! Prints the Kokoro phonemes for Japanese text: `cargo run -p tts-text --example ja_read -- "今日は"`.

fn main() -> Result<(), tts_text::TextError> {
    let g2p = tts_text::japanese::JapaneseG2p::global()?;
    for text in std::env::args().skip(1) {
        println!("{text}\n  {}", g2p.phonemize(&text)?);
    }
    Ok(())
}
