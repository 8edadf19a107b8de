//! Piper's phoneme conventions (`rhasspy/piper-phonemize`): NFD-decomposed espeak IPA, clause
//! punctuation kept as phonemes, one utterance per sentence, and ids `^ _ p _ p _ … $`.

use std::collections::HashMap;

use unicode_normalization::UnicodeNormalization;

use crate::{PhonemeClause, TextError};

/// Padding, interspersed after every phoneme.
pub const PAD: char = '_';
/// Beginning of utterance.
pub const BOS: char = '^';
/// End of utterance.
pub const EOS: char = '$';

/// A voice's `phoneme_id_map`: one phoneme (a Unicode scalar) to one or more ids.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PhonemeIdMap {
    map: HashMap<char, Vec<i64>>,
}

impl PhonemeIdMap {
    /// Builds the map from the `phoneme_id_map` object of a voice's `.onnx.json`.
    pub fn from_json(value: &serde_json::Value) -> Result<Self, TextError> {
        let obj = value
            .as_object()
            .ok_or_else(|| TextError::PhonemeMap("phoneme_id_map is not an object".into()))?;
        let mut map = HashMap::with_capacity(obj.len());
        for (key, ids) in obj {
            let mut chars = key.chars();
            let (Some(c), None) = (chars.next(), chars.next()) else {
                return Err(TextError::PhonemeMap(format!(
                    "key {key:?} is not a single character"
                )));
            };
            let ids = ids
                .as_array()
                .ok_or_else(|| TextError::PhonemeMap(format!("ids of {key:?} are not a list")))?
                .iter()
                .map(|v| {
                    v.as_i64().ok_or_else(|| {
                        TextError::PhonemeMap(format!("id of {key:?} is not an integer"))
                    })
                })
                .collect::<Result<Vec<_>, _>>()?;
            map.insert(c, ids);
        }
        for required in [PAD, BOS, EOS] {
            if !map.contains_key(&required) {
                return Err(TextError::PhonemeMap(format!(
                    "phoneme_id_map lacks {required:?}"
                )));
            }
        }
        Ok(Self { map })
    }

    pub fn get(&self, phoneme: char) -> Option<&[i64]> {
        self.map.get(&phoneme).map(Vec::as_slice)
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// The largest id, to check against the model's embedding size.
    pub fn max_id(&self) -> Option<i64> {
        self.map.values().flatten().copied().max()
    }
}

/// Groups clauses into Piper's sentences: NFD-normalised phonemes with `(lang)` switch flags
/// removed, and the clause punctuation appended (`, : ;` followed by a space). A sentence ends
/// at `. ? !`.
pub fn sentence_phonemes(clauses: &[PhonemeClause]) -> Vec<Vec<char>> {
    let mut sentences: Vec<Vec<char>> = Vec::new();
    let mut current: Option<Vec<char>> = None;
    for clause in clauses {
        let sentence = current.get_or_insert_with(Vec::new);
        let mut in_language_flag = false;
        for c in clause.phonemes.nfd() {
            match c {
                '(' => in_language_flag = true,
                ')' if in_language_flag => in_language_flag = false,
                _ if in_language_flag => {}
                c => sentence.push(c),
            }
        }
        match clause.terminator {
            Some(t @ ('.' | '?' | '!')) => sentence.push(t),
            Some(t @ (',' | ':' | ';')) => {
                sentence.push(t);
                sentence.push(' ');
            }
            _ => {}
        }
        if clause.ends_sentence() {
            sentences.extend(current.take());
        }
    }
    sentences.extend(current);
    sentences
}

/// The ids of one utterance: `^`, each known phoneme followed by `_`, then `$`.
/// Phonemes missing from the map are dropped (logged at debug level), as Piper does.
pub fn ids_for_phonemes(phonemes: &[char], id_map: &PhonemeIdMap) -> Vec<i64> {
    let pad = id_map.get(PAD).unwrap_or(&[]);
    let mut ids = Vec::with_capacity(phonemes.len() * 2 + 3);
    ids.extend_from_slice(id_map.get(BOS).unwrap_or(&[]));
    ids.extend_from_slice(pad);
    for &p in phonemes {
        match id_map.get(p) {
            Some(mapped) => {
                ids.extend_from_slice(mapped);
                ids.extend_from_slice(pad);
            }
            None => {
                tracing::debug!(phoneme = %p, code = p as u32, "phoneme not in the voice's id map; dropped")
            }
        }
    }
    ids.extend_from_slice(id_map.get(EOS).unwrap_or(&[]));
    ids
}

/// The ids of all clauses as one utterance (sentence boundaries are kept as punctuation only).
pub fn phoneme_ids(clauses: &[PhonemeClause], id_map: &PhonemeIdMap) -> Vec<i64> {
    let phonemes: Vec<char> = sentence_phonemes(clauses).concat();
    ids_for_phonemes(&phonemes, id_map)
}

/// One id sequence per Piper sentence, which Piper synthesises as separate utterances.
pub fn sentence_ids(clauses: &[PhonemeClause], id_map: &PhonemeIdMap) -> Vec<Vec<i64>> {
    sentence_phonemes(clauses)
        .iter()
        .map(|s| ids_for_phonemes(s, id_map))
        .collect()
}

/// Piper's `"phoneme_type": "text"` voices: the NFD-decomposed text itself is the phoneme string,
/// one utterance with no sentence detection.
pub fn text_phonemes(text: &str) -> Vec<char> {
    text.nfd().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map() -> PhonemeIdMap {
        let json = serde_json::json!({
            "_": [0], "^": [1], "$": [2], " ": [3], "!": [4], ",": [8], ".": [10], "?": [13],
            "h": [20], "l": [24], "o": [27], "ə": [59], "ˈ": [120], "ʊ": [100],
            "c": [16], "\u{327}": [140]
        });
        PhonemeIdMap::from_json(&json).unwrap()
    }

    fn clause(p: &str, t: Option<char>) -> PhonemeClause {
        PhonemeClause {
            phonemes: p.to_string(),
            terminator: t,
        }
    }

    #[test]
    fn ids_are_bos_pad_phoneme_pad_eos() {
        // The same ids piper_phonemize.phoneme_ids_espeak gives for "həlˈoʊ".
        let ids = ids_for_phonemes(&"həlˈoʊ".chars().collect::<Vec<_>>(), &map());
        assert_eq!(
            ids,
            vec![1, 0, 20, 0, 59, 0, 24, 0, 120, 0, 27, 0, 100, 0, 2]
        );
    }

    #[test]
    fn comma_adds_space_and_period_ends_the_sentence() {
        let clauses = [
            clause("hə", Some(',')),
            clause("lo", Some('.')),
            clause("ho", None),
        ];
        let sentences = sentence_phonemes(&clauses);
        assert_eq!(
            sentences,
            vec![vec!['h', 'ə', ',', ' ', 'l', 'o', '.'], vec!['h', 'o']]
        );
        assert_eq!(sentence_ids(&clauses, &map()).len(), 2);
    }

    #[test]
    fn phonemes_are_nfd_decomposed() {
        let sentences = sentence_phonemes(&[clause("ç", None)]);
        assert_eq!(sentences, vec![vec!['c', '\u{327}']]);
        assert_eq!(
            phoneme_ids(&[clause("ç", None)], &map()),
            vec![1, 0, 16, 0, 140, 0, 2]
        );
    }

    #[test]
    fn language_switch_flags_are_removed() {
        let sentences = sentence_phonemes(&[clause("ho(fr)lo(en)", None)]);
        assert_eq!(sentences, vec![vec!['h', 'o', 'l', 'o']]);
    }

    #[test]
    fn unknown_phonemes_are_dropped() {
        let ids = ids_for_phonemes(&['h', 'Ж', 'o'], &map());
        assert_eq!(ids, vec![1, 0, 20, 0, 27, 0, 2]);
    }

    #[test]
    fn id_map_requires_pad_bos_eos_and_single_characters() {
        assert!(PhonemeIdMap::from_json(&serde_json::json!({"a": [5]})).is_err());
        assert!(PhonemeIdMap::from_json(
            &serde_json::json!({"_": [0], "^": [1], "$": [2], "ab": [3]})
        )
        .is_err());
    }
}
