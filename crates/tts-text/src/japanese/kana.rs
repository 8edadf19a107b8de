//! Kana → Kokoro phonemes with misaki's Japanese conventions (its `cutlet` path, which the
//! Kokoro `jf_*`/`jm_*` voices were trained on): a Hepburn-like IPA per mora, palatalised
//! consonants written with `ʲ`, `ɯ`/`ɨ` for the two /u/ colours, `ː` for the long-vowel mark,
//! `ʔ` for the geminate っ and ん assimilated to the following consonant. No pitch accent marks.

/// One mora written with a single kana.
fn single(c: char) -> Option<&'static str> {
    Some(match c {
        'ぁ' | 'あ' => "a",
        'ぃ' | 'い' | 'ゐ' => "i",
        'ぅ' | 'う' => "ɯ",
        'ぇ' | 'え' | 'ゑ' => "e",
        'ぉ' | 'お' | 'を' => "o",
        'か' | 'ゕ' => "ka",
        'が' => "ɡa",
        'き' => "kʲi",
        'ぎ' => "ɡʲi",
        'く' => "kɯ",
        'ぐ' => "ɡɯ",
        'け' | 'ゖ' => "ke",
        'げ' => "ɡe",
        'こ' => "ko",
        'ご' => "ɡo",
        'さ' => "sa",
        'ざ' => "ʣa",
        'し' => "ɕi",
        'じ' | 'ぢ' => "ʥi",
        'す' => "sɨ",
        'ず' | 'づ' => "zɨ",
        'せ' => "se",
        'ぜ' => "ʣe",
        'そ' => "so",
        'ぞ' => "ʣo",
        'た' => "ta",
        'だ' => "da",
        'ち' => "ʨi",
        'つ' => "ʦɨ",
        'て' => "te",
        'で' => "de",
        'と' => "to",
        'ど' => "do",
        'な' => "na",
        'に' => "ɲi",
        'ぬ' => "nɯ",
        'ね' => "ne",
        'の' => "no",
        'は' => "ha",
        'ば' => "ba",
        'ぱ' => "pa",
        'ひ' => "çi",
        'び' => "bʲi",
        'ぴ' => "pʲi",
        'ふ' => "ɸɯ",
        'ぶ' => "bɯ",
        'ぷ' => "pɯ",
        'へ' => "he",
        'べ' => "be",
        'ぺ' => "pe",
        'ほ' => "ho",
        'ぼ' => "bo",
        'ぽ' => "po",
        'ま' => "ma",
        'み' => "mʲi",
        'む' => "mɯ",
        'め' => "me",
        'も' => "mo",
        'ゃ' | 'や' => "ja",
        'ゅ' | 'ゆ' => "jɯ",
        'ょ' | 'よ' => "jo",
        'ら' => "ɾa",
        'り' => "ɾʲi",
        'る' => "ɾɯ",
        'れ' => "ɾe",
        'ろ' => "ɾo",
        'ゎ' | 'わ' => "βa",
        'ゔ' => "vɯ",
        // Katakana-only letters with no hiragana twin.
        'ヷ' => "va",
        'ヸ' => "vʲi",
        'ヹ' => "ve",
        'ヺ' => "vo",
        _ => return None,
    })
}

/// A mora written as a kana plus a small kana (きゃ, ふぁ, てぃ, ...).
fn digraph(a: char, b: char) -> Option<&'static str> {
    Some(match (a, b) {
        ('い', 'ぇ') => "je",
        ('う', 'ぃ') => "βi",
        ('う', 'ぇ') => "βe",
        ('う', 'ぉ') => "βo",
        ('き', 'ぇ') => "kʲe",
        ('き', 'ゃ') => "kʲa",
        ('き', 'ゅ') => "kʲɨ",
        ('き', 'ょ') => "kʲo",
        ('ぎ', 'ゃ') => "ɡʲa",
        ('ぎ', 'ゅ') => "ɡʲɨ",
        ('ぎ', 'ょ') => "ɡʲo",
        ('く', 'ぁ') => "kᵝa",
        ('く', 'ぃ') => "kᵝi",
        ('く', 'ぇ') => "kᵝe",
        ('く', 'ぉ') => "kᵝo",
        ('ぐ', 'ぁ') => "ɡᵝa",
        ('ぐ', 'ぃ') => "ɡᵝi",
        ('ぐ', 'ぇ') => "ɡᵝe",
        ('ぐ', 'ぉ') => "ɡᵝo",
        ('し', 'ぇ') => "ɕe",
        ('し', 'ゃ') => "ɕa",
        ('し', 'ゅ') => "ɕɨ",
        ('し', 'ょ') => "ɕo",
        ('じ' | 'ぢ', 'ゃ') => "ʥa",
        ('じ' | 'ぢ', 'ゅ') => "ʥɨ",
        ('じ' | 'ぢ', 'ょ') => "ʥo",
        ('じ', 'ぇ') => "ʥe",
        ('ち', 'ぇ') => "ʨe",
        ('ち', 'ゃ') => "ʨa",
        ('ち', 'ゅ') => "ʨɨ",
        ('ち', 'ょ') => "ʨo",
        ('つ', 'ぁ') => "ʦa",
        ('つ', 'ぃ') => "ʦʲi",
        ('つ', 'ぇ') => "ʦe",
        ('つ', 'ぉ') => "ʦo",
        ('て', 'ぃ') => "tʲi",
        ('て', 'ゅ') => "tʲɨ",
        ('で', 'ぃ') => "dʲi",
        ('で', 'ゅ') => "dʲɨ",
        ('と', 'ぅ') => "tɯ",
        ('ど', 'ぅ') => "dɯ",
        ('に', 'ぇ') => "ɲe",
        ('に', 'ゃ') => "ɲa",
        ('に', 'ゅ') => "ɲɨ",
        ('に', 'ょ') => "ɲo",
        ('ひ', 'ぇ') => "çe",
        ('ひ', 'ゃ') => "ça",
        ('ひ', 'ゅ') => "çɨ",
        ('ひ', 'ょ') => "ço",
        ('び', 'ゃ') => "bʲa",
        ('び', 'ゅ') => "bʲɨ",
        ('び', 'ょ') => "bʲo",
        ('ぴ', 'ゃ') => "pʲa",
        ('ぴ', 'ゅ') => "pʲɨ",
        ('ぴ', 'ょ') => "pʲo",
        ('ふ', 'ぁ') => "ɸa",
        ('ふ', 'ぃ') => "ɸʲi",
        ('ふ', 'ぇ') => "ɸe",
        ('ふ', 'ぉ') => "ɸo",
        ('ふ', 'ゅ') => "ɸʲɨ",
        ('ふ', 'ょ') => "ɸʲo",
        ('み', 'ゃ') => "mʲa",
        ('み', 'ゅ') => "mʲɨ",
        ('み', 'ょ') => "mʲo",
        ('り', 'ゃ') => "ɾʲa",
        ('り', 'ゅ') => "ɾʲɨ",
        ('り', 'ょ') => "ɾʲo",
        ('ゔ', 'ぁ') => "va",
        ('ゔ', 'ぃ') => "vʲi",
        ('ゔ', 'ぇ') => "ve",
        ('ゔ', 'ぉ') => "vo",
        ('ゔ', 'ゅ') => "bʲɨ",
        ('ゔ', 'ょ') => "bʲo",
        _ => return None,
    })
}

fn is_small(c: char) -> bool {
    matches!(c, 'ゃ' | 'ゅ' | 'ょ' | 'ぁ' | 'ぃ' | 'ぅ' | 'ぇ' | 'ぉ')
}

/// The voiced twin of a kana, for the voiced repetition mark ゞ.
fn voiced(c: char) -> Option<char> {
    const PLAIN: &str = "かきくけこさしすせそたちつてとはひふへほ";
    const VOICED: &str = "がぎぐげござじずぜぞだぢづでどばびぶべぼ";
    let i = PLAIN.chars().position(|p| p == c)?;
    VOICED.chars().nth(i)
}

/// Katakana → hiragana (ァ..ヶ shift by 0x60; the long-vowel mark and ヷ..ヺ stay).
pub fn to_hiragana(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            '\u{30A1}'..='\u{30F6}' => char::from_u32(c as u32 - 0x60).unwrap_or(c),
            '\u{30FD}' => 'ゝ',
            '\u{30FE}' => 'ゞ',
            _ => c,
        })
        .collect()
}

/// The vowel a katakana mora ends in, for the long-vowel rewrite below.
fn katakana_vowel(c: char) -> Option<char> {
    const COLUMNS: [(char, &str); 2] = [
        ('i', "イキギシジチヂニヒビピミリヰィ"),
        ('e', "エケゲセゼテデネヘベペメレヱェ"),
    ];
    COLUMNS
        .iter()
        .find(|(_, kana)| kana.contains(c))
        .map(|(v, _)| *v)
}

/// Writes a dictionary pronunciation's long /iː/ and /eː/ with the long-vowel mark, as UniDic
/// (misaki's dictionary) does and IPADIC does only sometimes: イイ → イー, ネエ → ネー,
/// オンセイ → オンセー.
pub fn mark_long_vowels(pron: &str) -> String {
    let mut out = String::with_capacity(pron.len());
    let mut prev: Option<char> = None;
    for c in pron.chars() {
        let long = matches!(
            (prev.and_then(katakana_vowel), c),
            (Some('i'), 'イ') | (Some('e'), 'イ' | 'エ')
        );
        out.push(if long { 'ー' } else { c });
        prev = Some(c);
    }
    out
}

/// Whether a hiragana reading ends in an /o/ or /u/ mora.
pub fn ends_in_o_or_u(hira: &str) -> bool {
    const O_U: &str = "おこごそぞとどのほぼぽもよょろをうくぐすずつづぬふぶぷむゆゅる";
    hira.chars().last().is_some_and(|c| O_U.contains(c))
}

/// ん before a consonant takes its place of articulation; elsewhere it is uvular ɴ.
fn moraic_nasal(next: Option<char>) -> &'static str {
    let Some(first) = next.and_then(single).and_then(|p| p.chars().next()) else {
        return "ɴ";
    };
    match first {
        'm' | 'p' | 'b' => "m",
        'k' | 'ɡ' => "ŋ",
        'ɲ' | 'ʨ' | 'ʥ' => "ɲ",
        'n' | 't' | 'd' | 'ɾ' | 'z' => "n",
        _ => "ɴ",
    }
}

/// One word's hiragana reading → phonemes. Context does not cross word boundaries (a word-final
/// ん is ɴ), as in misaki.
pub fn hiragana_to_phonemes(hira: &str) -> String {
    let chars: Vec<char> = hira.chars().collect();
    let mut out = String::with_capacity(hira.len() * 2);
    for (i, &c) in chars.iter().enumerate() {
        let prev = i.checked_sub(1).map(|j| chars[j]);
        let next = chars.get(i + 1).copied();
        match c {
            // Iteration marks repeat the previous kana (ゞ voiced); 々 and 〃 cannot be resolved
            // from kana alone.
            'ゝ' => out.push_str(prev.and_then(single).unwrap_or("")),
            'ゞ' => out.push_str(prev.and_then(voiced).and_then(single).unwrap_or("")),
            _ => {
                if let Some(p) = prev.and_then(|p| digraph(p, c)) {
                    out.push_str(p);
                } else if next.is_some_and(|n| digraph(c, n).is_some()) {
                    // Written by the next kana together with this one.
                } else if let Some(n) = next.filter(|&n| is_small(n)) {
                    // An irregular pair (ちぃ): the consonant of this kana + the small vowel.
                    if let (Some(a), Some(b)) = (single(c), single(n)) {
                        if c != 'っ' {
                            let cons: String = a.chars().take(a.chars().count() - 1).collect();
                            out.push_str(&cons);
                            out.push_str(b);
                        }
                    }
                } else if is_small(c) {
                    // Already written with the kana before it.
                } else {
                    match c {
                        'ー' => out.push('ː'),
                        'っ' => out.push('ʔ'),
                        'ん' => out.push_str(moraic_nasal(next)),
                        _ => out.push_str(single(c).unwrap_or("")),
                    }
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn morae_follow_misaki_symbols() {
        assert_eq!(hiragana_to_phonemes("きょー"), "kʲoː");
        assert_eq!(hiragana_to_phonemes("とーきょー"), "toːkʲoː");
        assert_eq!(hiragana_to_phonemes("ですね"), "desɨne");
        assert_eq!(hiragana_to_phonemes("つくえ"), "ʦɨkɯe");
        assert_eq!(hiragana_to_phonemes("ふぁいる"), "ɸaiɾɯ");
        assert_eq!(hiragana_to_phonemes("ちぃ"), "ʨi");
    }

    #[test]
    fn moraic_nasal_assimilates_to_the_next_consonant() {
        assert_eq!(hiragana_to_phonemes("てんき"), "teŋkʲi");
        assert_eq!(hiragana_to_phonemes("さんぽ"), "sampo");
        assert_eq!(hiragana_to_phonemes("こんにちわ"), "koɲɲiʨiβa");
        assert_eq!(hiragana_to_phonemes("ほんだ"), "honda");
        assert_eq!(hiragana_to_phonemes("ほん"), "hoɴ");
        assert_eq!(hiragana_to_phonemes("れんあい"), "ɾeɴai");
    }

    #[test]
    fn geminates_and_iteration_marks() {
        assert_eq!(hiragana_to_phonemes("きって"), "kʲiʔte");
        assert_eq!(hiragana_to_phonemes("いすゞ"), "isɨzɨ");
        assert_eq!(hiragana_to_phonemes("こゝろ"), "kokoɾo");
    }

    #[test]
    fn katakana_and_long_vowels() {
        assert_eq!(to_hiragana("トーキョー"), "とーきょー");
        assert_eq!(mark_long_vowels("イイ"), "イー");
        assert_eq!(mark_long_vowels("ネエ"), "ネー");
        assert_eq!(mark_long_vowels("イウ"), "イウ");
        assert_eq!(mark_long_vowels("オイシイ"), "オイシー");
        assert_eq!(mark_long_vowels("オンセイ"), "オンセー");
        assert_eq!(mark_long_vowels("アイ"), "アイ");
    }
}
