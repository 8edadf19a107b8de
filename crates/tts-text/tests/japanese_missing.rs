//! Without the Japanese dictionary (own test binary: the dictionary location is process-wide),
//! kanji are an error that says how to fetch it, and kana-only text still reads through espeak-ng.

use tts_text::kokoro::phonemize;
use tts_text::TextError;

#[test]
fn kanji_without_the_dictionary_is_a_clear_error_and_kana_falls_back_to_espeak() {
    let empty = std::env::temp_dir().join(format!("tts-ja-none-{}", std::process::id()));
    std::fs::create_dir_all(&empty).expect("tmp dir");
    tts_text::japanese::set_dictionary_dir(&empty);

    let err = phonemize("東京へ行きます。", 510).expect_err("kanji need the dictionary");
    assert!(matches!(err, TextError::JapaneseDictionary(_)), "{err:?}");
    assert!(err.to_string().contains("scripts/fetch_models.py"), "{err}");

    let kana = phonemize("こんにちは、ありがとう。", 510).expect("kana via espeak");
    let _ = std::fs::remove_dir_all(&empty);
    assert_eq!(kana.len(), 1);
    assert!(kana[0].contains("konniʨi"), "{kana:?}");
}
