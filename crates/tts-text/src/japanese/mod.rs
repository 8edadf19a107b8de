//! Japanese text → Kokoro phonemes, following misaki's `ja` front end (the `cutlet` path that
//! Kokoro's Japanese voices were trained on): MeCab-style morphological analysis (vibrato with
//! IPADIC) gives each word's pronunciation in katakana, which is written in misaki's IPA
//! conventions; words are separated by spaces, multi-morpheme words from misaki's word list
//! are kept together, punctuation becomes Kokoro's.
//!
//! `今日はいい天気ですね。` → `kʲoː βa iː teŋkʲi desɨ ne.` (the topic particle は is read βa
//! and へ is read e because the dictionary gives their pronunciation, not their spelling).
//!
//! Beyond misaki: numbers are read by [`numbers`] without going through the analyser (so
//! はち is never mistaken for the particle は), Latin words are read with espeak-ng's English
//! voice in Kokoro's English phonemes, and an unknown kanji compound is read character by
//! character from the dictionary.

pub mod dictionary;
pub mod kana;
pub mod numbers;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use unicode_normalization::UnicodeNormalization;
use vibrato::dictionary::LexType;
use vibrato::Tokenizer;

use crate::kokoro::english_to_kokoro;
use crate::{Espeak, TextError};

/// What a morpheme is made of, deciding how it is read (misaki's character types).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// A dictionary word or kana: read from its pronunciation.
    Reading,
    /// An unknown run of kanji (no pronunciation in the dictionary).
    Kanji,
    /// Punctuation and symbols.
    Symbol,
    /// ASCII letters and digits.
    Latin,
    /// Anything else (Greek, Cyrillic, emoji): not spoken.
    Other,
}

#[derive(Debug, Clone)]
struct Word {
    surface: String,
    /// The pronunciation in hiragana (for [`Kind::Reading`]).
    hira: String,
    kind: Kind,
}

/// Directory chosen with [`set_dictionary_dir`], if any.
static DICT_DIR: Mutex<Option<PathBuf>> = Mutex::new(None);
/// The reader loaded once per process (~60 MB of tables and the word list; ~0.1-0.4 s to read).
static GLOBAL: Mutex<Option<Arc<JapaneseG2p>>> = Mutex::new(None);

/// Points the process-wide reader at `dir` (the `models/ja` directory). The models' own
/// directory flag should call this; without it the reader looks in `$TTS_MODELS_DIR/ja`,
/// then `./models/ja`, then the repository's `models/ja`.
pub fn set_dictionary_dir(dir: impl Into<PathBuf>) {
    let dir = dir.into();
    let mut current = DICT_DIR.lock().unwrap_or_else(|e| e.into_inner());
    if current.as_ref() != Some(&dir) {
        *current = Some(dir);
        // A reader loaded from another directory is dropped; the next use loads the new one.
        *GLOBAL.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }
}

/// Where the Japanese dictionary is looked for.
pub fn dictionary_dir() -> PathBuf {
    if let Some(dir) = DICT_DIR.lock().unwrap_or_else(|e| e.into_inner()).clone() {
        return dir;
    }
    if let Some(models) = std::env::var_os("TTS_MODELS_DIR") {
        return PathBuf::from(models).join("ja");
    }
    let cwd = PathBuf::from("models/ja");
    if cwd.exists() {
        return cwd;
    }
    // Development builds inside the repository find its models/ directory.
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../models/ja")
}

/// The Japanese reader: tokenizer + misaki's word list.
pub struct JapaneseG2p {
    tokenizer: Tokenizer,
    words: HashSet<String>,
}

impl std::fmt::Debug for JapaneseG2p {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JapaneseG2p")
            .field("words", &self.words.len())
            .finish_non_exhaustive()
    }
}

impl JapaneseG2p {
    /// Loads the dictionary and word list from `dir` (compiling the dictionary on first use if
    /// only its sources are there).
    pub fn load(dir: &Path) -> Result<Self, TextError> {
        let words_path = dir.join(dictionary::WORD_LIST);
        let words = std::fs::read_to_string(&words_path).map_err(|e| {
            TextError::JapaneseDictionary(format!(
                "{}: {e}; run `python3 scripts/fetch_models.py --only ja`",
                words_path.display()
            ))
        })?;
        let words = words
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(str::to_string)
            .collect();
        let dict = dictionary::load(dir)?;
        // Spaces separate morphemes but are not morphemes themselves (MeCab's behaviour).
        let tokenizer = Tokenizer::new(dict)
            .ignore_space(true)
            .map_err(|e| TextError::JapaneseDictionary(format!("tokenizer: {e}")))?;
        Ok(Self { tokenizer, words })
    }

    /// The process-wide reader, loaded on first use from [`dictionary_dir`]. A failure is not
    /// remembered: once the dictionary is fetched the next call loads it.
    pub fn global() -> Result<Arc<Self>, TextError> {
        let mut slot = GLOBAL.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(g2p) = slot.as_ref() {
            return Ok(Arc::clone(g2p));
        }
        let dir = dictionary_dir();
        let started = std::time::Instant::now();
        let g2p = Arc::new(Self::load(&dir)?);
        tracing::info!(
            dir = %dir.display(),
            secs = started.elapsed().as_secs_f32(),
            "loaded the Japanese dictionary"
        );
        *slot = Some(Arc::clone(&g2p));
        Ok(g2p)
    }

    /// Text → Kokoro phonemes, one string with misaki's spacing and punctuation.
    pub fn phonemize(&self, text: &str) -> Result<String, TextError> {
        let words = self.words_of(&normalize(text))?;
        let tokens = self.tokens(&words)?;
        Ok(tidy(&tokens))
    }

    /// Text → Kokoro phonemes split after each punctuation mark (clauses for chunking).
    pub fn phonemize_clauses(&self, text: &str) -> Result<Vec<String>, TextError> {
        Ok(split_clauses(&self.phonemize(text)?))
    }

    /// Morphemes of the text. Numbers stay in the text while it is analysed so that counters
    /// after them get their counter readings (2026年 → ねん, not とし), then are read by
    /// [`numbers`] (never by the analyser, which could take はち for the particle は).
    fn words_of(&self, text: &str) -> Result<Vec<Word>, TextError> {
        let mut worker = self.tokenizer.new_worker();
        worker.reset_sentence(text);
        worker.tokenize();
        let toks: Vec<(String, String, bool)> = (0..worker.num_tokens())
            .map(|i| {
                let t = worker.token(i);
                let known = t.lex_type() != LexType::Unknown;
                (t.surface().to_string(), t.feature().to_string(), known)
            })
            .collect();
        let is_digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        let mut words = Vec::with_capacity(toks.len());
        let mut i = 0;
        while i < toks.len() {
            let surface = toks[i].0.as_str();
            if !is_digits(surface) {
                let mut word = self.word(surface, &toks[i].1, toks[i].2);
                // The volitional う after an o/u mora lengthens it (ましょう → ましょー), which
                // UniDic writes inside one morpheme and IPADIC splits off.
                if word.hira == "う"
                    && toks[i].1.starts_with("助動詞")
                    && words
                        .last()
                        .is_some_and(|w: &Word| kana::ends_in_o_or_u(&w.hira))
                {
                    word.hira = "ー".into();
                }
                words.push(word);
                i += 1;
                continue;
            }
            // "12" "." "5" → one decimal number.
            let frac = match (toks.get(i + 1), toks.get(i + 2)) {
                (Some(dot), Some(f)) if dot.0 == "." && is_digits(&f.0) => Some(f.0.as_str()),
                _ => None,
            };
            let mut surface_all = surface.to_string();
            let mut kana = numbers::number_to_kana(surface, frac);
            let mut counter_kana = None;
            i += 1;
            if let Some(f) = frac {
                surface_all = format!("{surface}.{f}");
                i += 2;
            } else if let Some((cs, cf, _)) = toks.get(i).filter(|t| {
                // Counters are suffixes; 月/日/つ/人 also get other tags after a number.
                t.1.starts_with("名詞,接尾") || matches!(t.0.as_str(), "つ" | "月" | "日" | "人")
            }) {
                let after_month = words
                    .last()
                    .is_some_and(|w: &Word| w.surface.ends_with('月'));
                let reading = kana::to_hiragana(pronunciation(cs, cf));
                if let Some((n, c)) = numbers::with_counter(surface, cs, &reading, after_month) {
                    kana = n;
                    counter_kana = Some((cs.clone(), c));
                    i += 1;
                }
            }
            words.push(Word {
                surface: surface_all,
                // Pronunciation, not spelling: じゅう is said じゅー (as the dictionary writes it).
                hira: long_u(&kana),
                kind: Kind::Reading,
            });
            if let Some((cs, c)) = counter_kana {
                if c.is_empty() {
                    // The counter is part of the number's reading (みっつ, はつか).
                    if let Some(w) = words.last_mut() {
                        w.surface.push_str(&cs);
                    }
                } else {
                    words.push(Word {
                        surface: cs,
                        hira: long_u(&c),
                        kind: Kind::Reading,
                    });
                }
            }
        }
        Ok(words)
    }

    fn word(&self, surface: &str, feature: &str, known: bool) -> Word {
        let first = surface.chars().next().unwrap_or(' ');
        let kind = if known || is_kana(first) {
            Kind::Reading
        } else if is_kanji(first) {
            Kind::Kanji
        } else if first.is_ascii_alphanumeric() {
            Kind::Latin
        } else if !first.is_alphanumeric() {
            Kind::Symbol
        } else {
            Kind::Other
        };
        let hira = if kind == Kind::Reading {
            kana::to_hiragana(&kana::mark_long_vowels(pronunciation(surface, feature)))
        } else {
            String::new()
        };
        Word {
            surface: surface.to_string(),
            hira,
            kind,
        }
    }

    /// Reads an unknown kanji run character by character from the dictionary.
    fn kanji_fallback(&self, surface: &str) -> String {
        let mut worker = self.tokenizer.new_worker();
        let mut hira = String::new();
        let mut dropped = 0usize;
        for c in surface.chars() {
            worker.reset_sentence(c.to_string());
            worker.tokenize();
            let read = (worker.num_tokens() == 1 && worker.token(0).lex_type() != LexType::Unknown)
                .then(|| pronunciation(worker.token(0).surface(), worker.token(0).feature()))
                .filter(|p| !p.is_empty() && !p.chars().any(is_kanji));
            match read {
                Some(p) => hira.push_str(&kana::to_hiragana(p)),
                None => dropped += 1,
            }
        }
        if dropped > 0 {
            tracing::warn!(surface, dropped, "kanji without a reading were skipped");
        }
        kana::hiragana_to_phonemes(&hira)
    }

    /// Groups morphemes into words (misaki's word list) and writes each one, with its spacing.
    fn tokens(&self, words: &[Word]) -> Result<Vec<(String, bool)>, TextError> {
        let mut out: Vec<(String, bool)> = Vec::new();
        let mut i = 0;
        while i < words.len() {
            // The longest run of same-kind morphemes that misaki's list knows as one word.
            let run_end = (i + 1..words.len())
                .find(|&z| words[z].kind != words[i].kind)
                .unwrap_or(words.len());
            let j = (i + 1..=run_end)
                .rev()
                .find(|&j| {
                    j > i + 1 && {
                        let joined: String =
                            words[i..j].iter().map(|w| w.surface.as_str()).collect();
                        self.words.contains(&joined)
                    }
                })
                .unwrap_or(i + 1);
            let group = &words[i..j];
            let surface: String = group.iter().map(|w| w.surface.as_str()).collect();
            let word = Word {
                hira: group.iter().map(|w| w.hira.as_str()).collect(),
                kind: group[0].kind,
                surface,
            };
            let ps = self.word_phonemes(&word)?;
            push_token(&mut out, &word.surface, ps);
            i = j;
        }
        Ok(out)
    }

    fn word_phonemes(&self, word: &Word) -> Result<String, TextError> {
        Ok(match word.kind {
            Kind::Reading => {
                if word.hira.chars().all(|c| punctuation(c).is_some()) {
                    word.hira.chars().filter_map(punctuation).collect()
                } else {
                    kana::hiragana_to_phonemes(&word.hira)
                }
            }
            Kind::Kanji => self.kanji_fallback(&word.surface),
            Kind::Symbol => word.surface.chars().filter_map(punctuation).collect(),
            Kind::Latin => latin_phonemes(&word.surface)?,
            Kind::Other => String::new(),
        })
    }
}

/// Number readings as pronounced: じゅう is said じゅー, ちょう ちょー.
fn long_u(kana: &str) -> String {
    kana.replace("ゅう", "ゅー").replace("ょう", "ょー")
}

/// The katakana pronunciation of a morpheme: IPADIC's 発音 (9th field), else its reading
/// (8th), else the surface (unknown words have neither).
fn pronunciation<'a>(surface: &'a str, feature: &'a str) -> &'a str {
    let fields: Vec<&str> = feature.split(',').collect();
    [8, 7]
        .iter()
        .filter_map(|&i| fields.get(i).copied())
        .find(|f| !f.is_empty() && *f != "*")
        .unwrap_or(surface)
}

/// Latin words are read as English (Kokoro's English phonemes), not spelled letter by letter.
fn latin_phonemes(word: &str) -> Result<String, TextError> {
    if word.chars().all(|c| c.is_ascii_digit()) {
        return Ok(kana::hiragana_to_phonemes(&numbers::integer_to_kana(word)));
    }
    let clauses = Espeak::global()?.phonemize(word, "en-us")?;
    let ipa: Vec<String> = clauses
        .iter()
        .map(|c| english_to_kokoro(c.phonemes.trim(), false))
        .filter(|p| !p.is_empty())
        .collect();
    Ok(ipa.join(" "))
}

/// Kokoro's symbol for a punctuation mark (misaki's table, restricted to Kokoro's vocabulary).
fn punctuation(c: char) -> Option<char> {
    Some(match c {
        '。' | '.' | '．' => '.',
        '、' | ',' | '，' | '､' => ',',
        '？' | '?' => '?',
        '！' | '!' => '!',
        '：' | ':' => ':',
        '；' | ';' => ';',
        '「' | '『' | '“' | '«' | '"' => '“',
        '」' | '』' | '”' | '»' => '”',
        '（' | '(' | '《' | '【' | '[' => '(',
        '）' | ')' | '》' | '】' | ']' => ')',
        '～' | '〜' | '~' | '—' | '―' => '—',
        '…' | '‥' => '…',
        '・' => ' ',
        _ => return None,
    })
}

/// Appends one word with misaki's spacing: opening marks (and silent words) attach to what
/// follows, closing and stop marks to what precedes.
fn push_token(out: &mut Vec<(String, bool)>, surface: &str, ps: String) {
    let opening = ps.is_empty() || ps == "“" || ps == "(" || surface.starts_with(['「', '『']);
    let closing = surface.starts_with(['」', '』']) || "”).,?!:".contains(ps.as_str());
    let mut space = true;
    if opening {
        if let Some(prev) = out.last_mut() {
            prev.1 = true;
        }
        space = false;
    } else if closing {
        if let Some(prev) = out.last_mut() {
            prev.1 = false;
        }
    } else if ps == " " {
        space = false;
    }
    out.push((ps, space));
}

/// Joins the words, collapses whitespace and attaches the geminate ʔ to its neighbours.
fn tidy(tokens: &[(String, bool)]) -> String {
    let mut joined = String::new();
    for (ps, space) in tokens {
        joined.push_str(ps);
        if *space {
            joined.push(' ');
        }
    }
    let collapsed: Vec<char> = joined
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .chars()
        .collect();
    let mut out = String::with_capacity(joined.len());
    for (i, &c) in collapsed.iter().enumerate() {
        if c == ' ' {
            let prev = i.checked_sub(1).map(|j| collapsed[j]);
            let next = collapsed.get(i + 1).copied();
            // A word-final っ joins the next word unless punctuation separates them (misaki).
            let before_glottal =
                next == Some('ʔ') && !prev.is_some_and(|p| "!\",.:;?»—…”".contains(p));
            let after_glottal = prev == Some('ʔ') && !next.is_some_and(|n| "\"«“".contains(n));
            if before_glottal || after_glottal {
                continue;
            }
        }
        out.push(c);
    }
    out
}

/// Splits a phoneme string into clauses after each punctuation mark.
fn split_clauses(ps: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut prev = ' ';
    for c in ps.chars() {
        if c == ' ' && ".,!?;:—…”".contains(prev) {
            out.push(std::mem::take(&mut cur));
        } else {
            cur.push(c);
        }
        prev = c;
    }
    if !cur.trim().is_empty() {
        out.push(cur);
    }
    out
}

/// Hiragana or katakana (full width, including the long-vowel mark).
pub fn is_kana(c: char) -> bool {
    matches!(c, '\u{3041}'..='\u{309F}' | '\u{30A0}'..='\u{30FF}' | '\u{31F0}'..='\u{31FF}')
}

/// CJK ideographs and the iteration mark 々.
pub fn is_kanji(c: char) -> bool {
    matches!(c, '\u{4E00}'..='\u{9FFF}' | '\u{3400}'..='\u{4DBF}' | '\u{F900}'..='\u{FAFF}' | '々' | '〆')
}

/// misaki's normalisation: a wave dash before a number means "to" (から); NFKC folds full-width
/// Latin and digits to ASCII and half-width katakana to full width; small katakana of the
/// Ainu extension become their ordinary kana. Thousands separators are removed.
fn normalize(text: &str) -> String {
    let mut s = String::with_capacity(text.len());
    let chars: Vec<char> = text.chars().collect();
    for (i, &c) in chars.iter().enumerate() {
        let next_is_digit = chars
            .get(i + 1)
            .is_some_and(|n| n.is_ascii_digit() || ('０'..='９').contains(n));
        match c {
            '〜' | '～' if next_is_digit => s.push_str("から"),
            '\u{31F0}'..='\u{31FF}' => s.push(small_katakana_extension(c)),
            _ => s.push(c),
        }
    }
    let folded: Vec<char> = s.nfkc().collect();
    // Thousands separators go (1,000 → 1000) so that the number is read as one.
    let mut out = String::with_capacity(folded.len());
    for (i, &c) in folded.iter().enumerate() {
        let digits_after = folded[i + 1..]
            .iter()
            .take_while(|d| d.is_ascii_digit())
            .count();
        let separator = c == ',' && i > 0 && folded[i - 1].is_ascii_digit() && digits_after == 3;
        if !separator {
            out.push(c);
        }
    }
    out
}

/// ㇰ..ㇿ (Katakana Phonetic Extensions) → the kana they are small versions of.
fn small_katakana_extension(c: char) -> char {
    const FULL: [char; 16] = [
        'ク', 'シ', 'ス', 'ト', 'ヌ', 'ハ', 'ヒ', 'フ', 'ヘ', 'ホ', 'ム', 'ラ', 'リ', 'ル', 'レ',
        'ロ',
    ];
    FULL.get((c as u32 - 0x31F0) as usize).copied().unwrap_or(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalisation_folds_widths_and_reads_wave_dash_ranges() {
        assert_eq!(normalize("ＡＢＣ１２３ｶﾀｶﾅ"), "ABC123カタカナ");
        assert_eq!(normalize("3〜5"), "3から5");
        assert_eq!(normalize("ㇰ"), "ク");
        assert_eq!(normalize("1,000,000円、1,5"), "1000000円、1,5");
    }

    #[test]
    fn spacing_attaches_punctuation_and_geminates() {
        let mut t = Vec::new();
        for (s, p) in [
            ("「", "“"),
            ("あ", "a"),
            ("」", "”"),
            ("って", "ʔte"),
            ("。", "."),
        ] {
            push_token(&mut t, s, p.to_string());
        }
        assert_eq!(tidy(&t), "“a” ʔte.");
        assert_eq!(split_clauses("a b, c d. e"), ["a b,", "c d.", "e"]);
    }
}
