//! Kokoro's text front end: espeak-ng IPA rewritten into the phoneme set Kokoro v1.0 was
//! trained on (misaki's), and split into chunks of at most 510 phonemes.
//!
//! English follows misaki's espeak fallback (`misaki/espeak.py`, `EspeakFallback.E2M`):
//! diphthongs become single letters (`eɪ`→`A`, `aɪ`→`I`, `aʊ`→`W`, `ɔɪ`→`Y`, `oʊ`→`O`,
//! British `əʊ`→`Q`), affricates become ligatures (`dʒ`→`ʤ`, `tʃ`→`ʧ`), `ɚ`→`əɹ`, syllabic
//! consonants get a reduced vowel (`n̩`→`ᵊn`), American `ɜː`→`ɜɹ` and length marks dropped.
//! Japanese is read by [`crate::japanese`] (dictionary-based, misaki's conventions). Without the
//! Japanese dictionary, kana-only text falls back to espeak's `ja` voice (affricates become
//! `ʦ ʣ ʨ ʥ`, diacritics and stress marks dropped); text with kanji is then an error, because
//! espeak-ng 1.51 cannot read kanji.

use unicode_normalization::UnicodeNormalization;

use crate::{Espeak, PhonemeClause, TextError};

/// The language a text is phonemised in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Language {
    EnglishUs,
    EnglishGb,
    Japanese,
}

impl Language {
    /// The espeak-ng voice for this language.
    pub fn espeak_voice(self) -> &'static str {
        match self {
            Self::EnglishUs => "en-us",
            Self::EnglishGb => "en-gb",
            Self::Japanese => "ja",
        }
    }
}

fn is_kana(c: char) -> bool {
    matches!(c, '\u{3040}'..='\u{30FF}' | '\u{FF66}'..='\u{FF9F}')
}

fn is_kanji(c: char) -> bool {
    matches!(c, '\u{4E00}'..='\u{9FFF}' | '\u{3400}'..='\u{4DBF}' | '\u{F900}'..='\u{FAFF}')
}

/// Japanese when the text contains kana or kanji, otherwise American English.
pub fn detect_language(text: &str) -> Language {
    if text.chars().any(|c| is_kana(c) || is_kanji(c)) {
        Language::Japanese
    } else {
        Language::EnglishUs
    }
}

/// Longest first, so `oʊ` is rewritten before `o`.
const EN_COMMON: &[(&str, &str)] = &[
    ("ʔn̩", "tᵊn"),
    ("aɪ", "I"),
    ("aʊ", "W"),
    ("dʒ", "ʤ"),
    ("eɪ", "A"),
    ("tʃ", "ʧ"),
    ("ɔɪ", "Y"),
    ("e", "A"),
    ("r", "ɹ"),
    ("x", "k"),
    ("ç", "k"),
    ("ɐ", "ə"),
    ("ɚ", "əɹ"),
    ("ɬ", "l"),
    ("ʔ", "t"),
    ("ʲ", ""),
];

/// Rewrites espeak-ng IPA for English into Kokoro's (misaki's) English phonemes.
pub fn english_to_kokoro(ipa: &str, british: bool) -> String {
    let mut ps = ipa.to_string();
    for (from, to) in EN_COMMON {
        ps = ps.replace(from, to);
    }
    ps = syllabic_to_schwa(&ps);
    if british {
        ps = ps
            .replace("əʊ", "Q")
            .replace("eə", "ɛː")
            .replace("iə", "ɪə");
    } else {
        ps = ps
            .replace("oʊ", "O")
            .replace("ɜːɹ", "ɜɹ")
            .replace("ɜː", "ɜɹ")
            .replace("ɪə", "iə")
            .replace('ː', "");
    }
    // espeak < 1.52 writes a bare `o` for what misaki spells `ɔ`.
    ps.replace('o', "ɔ")
}

/// `X̩` (syllabic consonant) → `ᵊX`.
fn syllabic_to_schwa(s: &str) -> String {
    let chars: Vec<char> = s.chars().collect();
    let mut out = String::with_capacity(s.len());
    let mut i = 0;
    while i < chars.len() {
        if i + 1 < chars.len() && chars[i + 1] == '\u{0329}' {
            out.push('ᵊ');
            out.push(chars[i]);
            i += 2;
        } else {
            if chars[i] != '\u{0329}' {
                out.push(chars[i]);
            }
            i += 1;
        }
    }
    out
}

/// Rewrites espeak-ng's Japanese IPA into Kokoro's symbols.
pub fn japanese_to_kokoro(ipa: &str) -> String {
    // Drop diacritics (o̞ → o, ä → a) but keep the modifier letter ᵝ, which Kokoro uses.
    let plain: String = ipa
        .nfd()
        .filter(|c| !('\u{0300}'..='\u{036F}').contains(c))
        .collect::<String>()
        .nfc()
        .collect();
    plain
        .replace("tɕ", "ʨ")
        .replace("dʑ", "ʥ")
        .replace("ts", "ʦ")
        .replace("dz", "ʣ")
        .replace(['ˈ', 'ˌ'], "")
}

/// Removes espeak's language-switch markers such as `(en)` and `(ja)`.
fn strip_language_switches(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(open) = rest.find('(') {
        out.push_str(&rest[..open]);
        match rest[open..].find(')') {
            Some(close)
                if rest[open + 1..open + close]
                    .chars()
                    .all(|c| c.is_ascii_alphabetic() || c == '-') =>
            {
                rest = &rest[open + close + 1..];
            }
            _ => {
                out.push('(');
                rest = &rest[open + 1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// Splits Japanese text into clauses at its punctuation, skipping kanji. espeak's own clause
/// pointer arithmetic assumes one-byte characters after the mark, so clauses are cut here.
fn japanese_clauses(text: &str) -> Vec<(String, Option<char>)> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut skipped = 0usize;
    for c in text.chars() {
        let term = match c {
            '、' | '，' | ',' => Some(','),
            '。' | '．' | '.' => Some('.'),
            '？' | '?' => Some('?'),
            '！' | '!' => Some('!'),
            '；' | ';' => Some(';'),
            '：' | ':' => Some(':'),
            _ => None,
        };
        match term {
            Some(t) => out.push((std::mem::take(&mut cur), Some(t))),
            None if is_kanji(c) => skipped += 1,
            None if matches!(c, '「' | '」' | '『' | '』') => cur.push(' '),
            None => cur.push(c),
        }
    }
    out.push((cur, None));
    if skipped > 0 {
        tracing::warn!(
            skipped,
            "espeak-ng cannot read kanji; they were skipped (write kana instead)"
        );
    }
    out.retain(|(t, term)| !t.trim().is_empty() || term.is_some());
    out
}

/// One clause's phonemes in Kokoro's set, followed by its punctuation.
pub fn clause_to_kokoro(clause: &PhonemeClause, lang: Language) -> String {
    let raw = strip_language_switches(&clause.phonemes.replace('\n', " "));
    let mut ps = match lang {
        Language::EnglishUs => english_to_kokoro(&raw, false),
        Language::EnglishGb => english_to_kokoro(&raw, true),
        Language::Japanese => japanese_to_kokoro(&raw),
    };
    let trimmed = ps.trim().to_string();
    ps = trimmed;
    if let Some(t) = clause.terminator {
        ps.push(t);
    }
    ps
}

/// Groups clause phoneme strings into chunks of at most `max_len` phonemes, breaking between
/// clauses, then between words, and as a last resort inside a word.
pub fn chunk_clauses(clauses: &[String], max_len: usize) -> Vec<String> {
    let max_len = max_len.max(1);
    let mut chunks = Vec::new();
    let mut cur = String::new();
    let mut cur_len = 0usize;
    let push_piece =
        |piece: &str, chunks: &mut Vec<String>, cur: &mut String, cur_len: &mut usize| {
            let n = piece.chars().count();
            let sep = usize::from(*cur_len > 0);
            if *cur_len + sep + n > max_len && *cur_len > 0 {
                chunks.push(std::mem::take(cur));
                *cur_len = 0;
            }
            if *cur_len > 0 {
                cur.push(' ');
                *cur_len += 1;
            }
            cur.push_str(piece);
            *cur_len += n;
        };
    for clause in clauses.iter().map(|c| c.trim()).filter(|c| !c.is_empty()) {
        if clause.chars().count() <= max_len {
            push_piece(clause, &mut chunks, &mut cur, &mut cur_len);
            continue;
        }
        for word in clause.split(' ').filter(|w| !w.is_empty()) {
            let chars: Vec<char> = word.chars().collect();
            for part in chars.chunks(max_len) {
                let part: String = part.iter().collect();
                push_piece(&part, &mut chunks, &mut cur, &mut cur_len);
            }
        }
    }
    if !cur.is_empty() {
        chunks.push(cur);
    }
    chunks
}

/// Text → chunks of Kokoro phonemes (≤ `max_len` each), in the language detected from the text.
pub fn phonemize(text: &str, max_len: usize) -> Result<Vec<String>, TextError> {
    phonemize_as(text, detect_language(text), max_len)
}

/// Like [`phonemize`] with an explicit language.
pub fn phonemize_as(text: &str, lang: Language, max_len: usize) -> Result<Vec<String>, TextError> {
    if text.trim().is_empty() {
        return Ok(Vec::new());
    }
    if lang == Language::Japanese {
        match crate::japanese::JapaneseG2p::global() {
            Ok(g2p) => return Ok(chunk_clauses(&g2p.phonemize_clauses(text)?, max_len)),
            Err(e) if text.chars().any(is_kanji) => return Err(e),
            Err(e) => tracing::warn!("{e}; reading the kana with espeak-ng instead"),
        }
    }
    let espeak = Espeak::global()?;
    let mut mapped = Vec::new();
    if lang == Language::Japanese {
        for (piece, term) in japanese_clauses(text) {
            let mut ps = String::new();
            if !piece.trim().is_empty() {
                for c in espeak.phonemize(&piece, lang.espeak_voice())? {
                    let p = clause_to_kokoro(
                        &PhonemeClause {
                            terminator: None,
                            ..c
                        },
                        lang,
                    );
                    if !p.is_empty() {
                        if !ps.is_empty() {
                            ps.push(' ');
                        }
                        ps.push_str(&p);
                    }
                }
            }
            if let Some(t) = term {
                ps.push(t);
            }
            mapped.push(ps);
        }
    } else {
        let clauses = espeak.phonemize(text, lang.espeak_voice())?;
        mapped = clauses.iter().map(|c| clause_to_kokoro(c, lang)).collect();
    }
    Ok(chunk_clauses(&mapped, max_len))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn english_diphthongs_and_affricates_become_misaki_letters() {
        assert_eq!(english_to_kokoro("həlˈoʊ", false), "həlˈO");
        assert_eq!(english_to_kokoro("wˈɜːld", false), "wˈɜɹld");
        assert_eq!(
            english_to_kokoro("bɹˈaʊn dʒˈʌmps ˌoʊvɚ lˈeɪzi", false),
            "bɹˈWn ʤˈʌmps ˌOvəɹ lˈAzi"
        );
        assert_eq!(english_to_kokoro("tˈɔɪ tʃˈɜːtʃ aɪ", false), "tˈY ʧˈɜɹʧ I");
        assert_eq!(english_to_kokoro("bˈʌʔn̩", false), "bˈʌtᵊn");
        assert_eq!(english_to_kokoro("fˈɑːks", false), "fˈɑks");
    }

    #[test]
    fn japanese_ipa_loses_diacritics_and_uses_ligatures() {
        assert_eq!(japanese_to_kokoro("kˌo̞nnitɕˈihä"), "konniʨiha");
        assert_eq!(japanese_to_kokoro("sˈɯᵝ"), "sɯᵝ");
        assert_eq!(
            strip_language_switches("(en)tʃˈaɪniːz(ja)lˈe̞tə"),
            "tʃˈaɪniːzlˈe̞tə"
        );
    }

    #[test]
    fn language_is_detected_from_the_script() {
        assert_eq!(detect_language("Hello there."), Language::EnglishUs);
        assert_eq!(detect_language("こんにちは"), Language::Japanese);
        assert_eq!(detect_language("東京"), Language::Japanese);
    }

    #[test]
    fn chunks_respect_the_limit_and_break_at_clauses_then_words() {
        let clauses = vec![
            "aaa bbb,".to_string(),
            "ccc.".to_string(),
            "dddd eeee ffff.".to_string(),
        ];
        let chunks = chunk_clauses(&clauses, 10);
        assert!(chunks.iter().all(|c| c.chars().count() <= 10), "{chunks:?}");
        assert_eq!(chunks[0], "aaa bbb,");
        assert_eq!(
            chunks.concat().replace(' ', ""),
            clauses.concat().replace(' ', "")
        );
        let long = vec!["x".repeat(25)];
        let chunks = chunk_clauses(&long, 10);
        assert_eq!(chunks.len(), 3);
    }

    #[test]
    fn english_text_phonemizes_through_espeak() -> Result<(), TextError> {
        let chunks = phonemize("Hello, world! The lazy dog.", 510)?;
        assert_eq!(chunks.len(), 1);
        assert!(chunks[0].starts_with("həlˈO, wˈɜɹld!"), "{chunks:?}");
        assert!(chunks[0].contains("lˈAzi"), "{chunks:?}");
        Ok(())
    }

    #[test]
    fn japanese_is_read_with_the_dictionary_in_misaki_conventions() -> Result<(), TextError> {
        // The dictionary gives は its pronunciation (βa) and ん its assimilated place (ɲ before ɲ).
        let chunks = phonemize("こんにちは、ありがとう。", 510)?;
        assert_eq!(chunks, ["koɲɲiʨiβa, aɾʲiɡatoː."]);
        let chunks = phonemize("今日はいい天気ですね。東京へ行きます。", 510)?;
        assert_eq!(chunks, ["kʲoː βa iː teŋkʲi desɨ ne. toːkʲoː e ikʲimasɨ."]);
        Ok(())
    }

    #[test]
    fn long_japanese_text_is_split_under_the_phoneme_limit() -> Result<(), TextError> {
        let text = "今日はいい天気ですね。".repeat(40);
        let chunks = phonemize(&text, 510)?;
        assert!(chunks.len() >= 2, "{} chunks", chunks.len());
        assert!(chunks.iter().all(|c| c.chars().count() <= 510));
        assert!(chunks.iter().all(|c| c.ends_with('.')), "{chunks:?}");
        Ok(())
    }

    #[test]
    fn long_text_is_split_under_the_phoneme_limit() -> Result<(), TextError> {
        let text = "This sentence is repeated to make a long paragraph. ".repeat(30);
        let chunks = phonemize(&text, 510)?;
        assert!(chunks.len() >= 2, "{} chunks", chunks.len());
        assert!(chunks.iter().all(|c| c.chars().count() <= 510));
        Ok(())
    }
}
