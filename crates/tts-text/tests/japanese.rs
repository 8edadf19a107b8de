//! Japanese reading on the real IPADIC dictionary (`scripts/fetch_models.py --only ja`), checked
//! against misaki's conventions (the `ja` front end Kokoro's Japanese voices were trained on).
//! Expected strings were derived by hand from misaki's rules: pronunciation (not spelling) of
//! each word, one IPA string per mora, ん assimilated inside a word, っ → ʔ, ー → ː, spaces
//! between words, Kokoro's punctuation.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::Arc;

use tts_text::japanese::{dictionary, JapaneseG2p};
use tts_text::kokoro::{phonemize_as, Language};

fn g2p() -> Arc<JapaneseG2p> {
    JapaneseG2p::global().unwrap_or_else(|e| panic!("{e}"))
}

fn read(text: &str) -> String {
    g2p()
        .phonemize(text)
        .unwrap_or_else(|e| panic!("{text}: {e}"))
}

fn models_dir() -> PathBuf {
    std::env::var_os("TTS_MODELS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../models"))
}

#[test]
fn kanji_sentences_are_read_in_misaki_conventions() {
    assert_eq!(
        read("今日はいい天気ですね。東京へ行きます。"),
        "kʲoː βa iː teŋkʲi desɨ ne. toːkʲoː e ikʲimasɨ."
    );
    assert_eq!(
        read("吾輩は猫である。名前はまだ無い。"),
        "βaɡahai βa neko de aɾɯ. namae βa mada nai."
    );
    assert_eq!(
        read("日本語の音声合成は難しいですか？"),
        "ɲihoŋɡo no oɴseː ɡoːseː βa mɯzɨkaɕiː desɨ ka?"
    );
}

#[test]
fn particles_are_read_by_pronunciation_not_spelling() {
    // は → βa, へ → e, を → o; the noun 葉 (は) keeps its ha.
    assert_eq!(
        read("私は学校へ行って、本を読みました。"),
        "βataɕi βa ɡaʔkoː e iʔte, hoɴ o jomʲi maɕita."
    );
    assert_eq!(read("葉が落ちる。"), "ha ɡa oʨiɾɯ.");
}

#[test]
fn kana_and_kanji_spellings_read_the_same() {
    assert_eq!(
        read("きょうはいいてんきですね。"),
        read("今日はいい天気ですね。")
    );
}

#[test]
fn numbers_are_read_with_counters_and_separators() {
    assert_eq!(read("りんごが3個あります。"), "ɾʲiŋɡo ɡa saɴ ko aɾʲimasɨ.");
    // 年 after a number is the counter ねん, not the noun とし.
    assert!(
        read("2026年").starts_with("ɲiseɲɲiʥɨːɾokɯ neɴ"),
        "{}",
        read("2026年")
    );
    assert_eq!(read("1,000円"), read("1000円"));
    assert!(read("1,000円").starts_with("seɴ eɴ"), "{}", read("1,000円"));
    assert!(
        read("12.5度").starts_with("ʥɨːɲiteŋɡo"),
        "{}",
        read("12.5度")
    );
    // Full-width digits are folded first.
    assert_eq!(read("３個"), read("3個"));
}

#[test]
fn counters_take_their_sound_changes_and_special_readings() {
    assert_eq!(
        read("11月21日、4月1日に3つ、1本、6分、8歳、3階。"),
        "ʥɨːiʨi ɡaʦɨ ɲiʥɨːiʨi ɲiʨi, ɕi ɡaʦɨ ʦɨitaʨi ɲi mʲiʔʦɨ, iʔpoɴ, ɾoʔpɯɴ, haʔsai, saɴ ɡai."
    );
    assert_eq!(read("1人、2人、3人。"), "çitoɾʲi, ɸɯtaɾʲi, saɴ ɲiɴ.");
}

#[test]
fn the_volitional_u_lengthens_the_vowel_before_it() {
    assert_eq!(read("行きましょう。"), "ikʲi maɕoː.");
}

#[test]
fn mixed_kana_kanji_and_latin_read_latin_as_english() {
    let out = read("私はPythonで勉強しています。");
    let english = phonemize_as("Python", Language::EnglishUs, 510).expect("english g2p");
    let english = english[0].trim_end_matches(['.', ',']);
    assert_eq!(
        out,
        format!("βataɕi βa {english} de beŋkʲoː ɕite imasɨ."),
        "Latin words go through the English reading"
    );
}

#[test]
fn punctuation_quotes_and_geminates_follow_misaki_spacing() {
    assert_eq!(read("「こんにちは」と言った。"), "“koɲɲiʨiβa” to iʔta.");
    assert_eq!(read("ちょっと待って！本当？"), "ʨoʔto maʔte! hontoː?");
    assert_eq!(
        read("コンピューターを使います。"),
        "kompʲɨːtaː o ʦɨkaimasɨ."
    );
}

#[test]
fn clauses_split_after_punctuation() {
    let clauses = g2p()
        .phonemize_clauses("今日はいい天気ですね。東京へ行きます。")
        .expect("clauses");
    assert_eq!(
        clauses,
        ["kʲoː βa iː teŋkʲi desɨ ne.", "toːkʲoː e ikʲimasɨ."]
    );
}

#[test]
fn every_symbol_is_in_kokoros_vocabulary() {
    let path = models_dir().join("kokoro/vocab.json");
    let raw = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e}; run scripts/fetch_models.py", path.display()));
    let json: serde_json::Value = serde_json::from_str(&raw).expect("vocab.json");
    let vocab: HashSet<char> = json["vocab"]
        .as_object()
        .expect("vocab object")
        .keys()
        .filter_map(|k| k.chars().next())
        .collect();
    for text in [
        "今日はいい天気ですね。東京へ行きます。",
        "「ファイル」をダウンロードしてください（約3.5MB）。",
        "ヴァイオリンとチェロ、ティーカップ〜！",
        "彼は1,234,567円を払った…",
        "Ωの記号とЖの文字。",
    ] {
        let out = read(text);
        let unknown: Vec<char> = out.chars().filter(|c| !vocab.contains(c)).collect();
        assert!(unknown.is_empty(), "{text} → {out}: {unknown:?}");
        assert!(!out.trim().is_empty(), "{text}");
    }
}

#[test]
fn a_corrupt_compiled_dictionary_is_rebuilt_from_the_sources() {
    let src = models_dir().join("ja").join(dictionary::SOURCES);
    assert!(
        src.join("lex.csv").exists(),
        "{} is missing: run scripts/fetch_models.py --only ja",
        src.display()
    );
    let tmp = std::env::temp_dir().join(format!("tts-ja-dict-test-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp).expect("tmp dir");
    std::os::unix::fs::symlink(&src, tmp.join(dictionary::SOURCES)).expect("symlink sources");
    std::fs::write(tmp.join(dictionary::COMPILED), b"not a dictionary").expect("write junk");

    let loaded = dictionary::load(&tmp);
    let reread = dictionary::read_compiled(&tmp.join(dictionary::COMPILED));
    let leftovers: Vec<String> = std::fs::read_dir(&tmp)
        .expect("read tmp")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".part"))
        .collect();
    let _ = std::fs::remove_dir_all(&tmp);
    assert!(loaded.is_ok(), "{:?}", loaded.err());
    assert!(
        reread.is_ok(),
        "the rebuilt file must replace the corrupt one: {:?}",
        reread.err()
    );
    assert!(leftovers.is_empty(), "temp files left: {leftovers:?}");
}

#[test]
fn a_missing_dictionary_names_the_fetch_script() {
    let empty = std::env::temp_dir().join(format!("tts-ja-missing-{}", std::process::id()));
    std::fs::create_dir_all(&empty).expect("tmp dir");
    let err = JapaneseG2p::load(&empty).expect_err("no dictionary there");
    let _ = std::fs::remove_dir_all(&empty);
    assert!(err.to_string().contains("scripts/fetch_models.py"), "{err}");
}
