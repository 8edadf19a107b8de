//! Sentence splitting for streaming: cut text where a listener hears a sentence end, without
//! breaking abbreviations ("Dr.", "e.g.", "U.S."), decimals ("3.5") or quoted endings.

/// Words that end with a period but rarely end a sentence (compared lowercase, without the dot).
const ABBREVIATIONS: &[&str] = &[
    "mr", "mrs", "ms", "dr", "prof", "sr", "jr", "st", "mt", "vs", "etc", "e.g", "i.e", "cf", "no",
    "fig", "approx", "inc", "ltd", "co", "corp", "dept", "est", "gen", "gov", "lt", "col", "capt",
    "sgt", "rev", "hon", "ave", "blvd", "jan", "feb", "mar", "apr", "jun", "jul", "aug", "sep",
    "sept", "oct", "nov", "dec", "a.m", "p.m", "u.s", "u.k", "u.n", "ph.d", "al",
];

/// Characters that may follow a sentence terminator and still belong to the sentence.
fn is_closer(c: char) -> bool {
    matches!(
        c,
        '"' | '\'' | ')' | ']' | '}' | '»' | '”' | '’' | '」' | '』' | '）'
    )
}

/// Full-width terminators end a sentence without needing a following space.
fn is_cjk_terminator(c: char) -> bool {
    matches!(c, '。' | '！' | '？')
}

/// Splits `text` into trimmed, non-empty sentences. Blank lines always end a sentence;
/// single newlines count as spaces, since hard-wrapped text breaks lines mid-sentence.
pub fn split_sentences(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for paragraph in split_paragraphs(text) {
        split_paragraph(&paragraph, &mut out);
    }
    out
}

fn split_paragraphs(text: &str) -> Vec<String> {
    let mut paragraphs = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        if line.trim().is_empty() {
            if !current.trim().is_empty() {
                paragraphs.push(std::mem::take(&mut current));
            }
            current.clear();
        } else {
            if !current.is_empty() {
                current.push(' ');
            }
            current.push_str(line.trim());
        }
    }
    if !current.trim().is_empty() {
        paragraphs.push(current);
    }
    paragraphs
}

fn split_paragraph(text: &str, out: &mut Vec<String>) {
    let chars: Vec<char> = text.chars().collect();
    let mut start = 0;
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if is_cjk_terminator(c) {
            let mut end = i + 1;
            while end < chars.len() && (is_cjk_terminator(chars[end]) || is_closer(chars[end])) {
                end += 1;
            }
            push_sentence(&chars[start..end], out);
            start = end;
            i = end;
            continue;
        }
        if matches!(c, '.' | '?' | '!' | '…') {
            // Take the whole run of terminators and closing quotes: "?!", "...", `."`.
            let mut end = i + 1;
            while end < chars.len()
                && (matches!(chars[end], '.' | '?' | '!' | '…') || is_closer(chars[end]))
            {
                end += 1;
            }
            let followed_by_space = end == chars.len() || chars[end].is_whitespace();
            if followed_by_space && !is_non_final_period(&chars, start, i, end) {
                push_sentence(&chars[start..end], out);
                start = end;
            }
            i = end;
            continue;
        }
        i += 1;
    }
    push_sentence(&chars[start..], out);
}

/// Whether the terminator run `chars[dot..end]` is a period that does not end the sentence:
/// an abbreviation, an initial ("J. Smith") or a run followed by a lowercase word.
fn is_non_final_period(chars: &[char], start: usize, dot: usize, end: usize) -> bool {
    if chars[dot] != '.' || chars[dot..end].iter().filter(|&&c| c == '.').count() > 1 {
        return false;
    }
    // The next word starting lowercase continues the sentence ("e.g. apples").
    let next = chars[end..].iter().find(|c| !c.is_whitespace());
    match next {
        None => return false,
        Some(c) if c.is_lowercase() => return true,
        _ => {}
    }
    let word_start = chars[start..dot]
        .iter()
        .rposition(|c| c.is_whitespace() || matches!(c, '(' | '"' | '\''))
        .map_or(start, |p| start + p + 1);
    let word: String = chars[word_start..dot]
        .iter()
        .collect::<String>()
        .to_lowercase();
    if word.is_empty() {
        return false;
    }
    // Single-letter initials ("J.") and dotted acronyms ("U.S", "e.g") stay inside the sentence.
    let is_initial = word.chars().count() == 1 && word.chars().all(char::is_alphabetic);
    let is_dotted = word.contains('.') && word.split('.').all(|p| p.chars().count() <= 2);
    is_initial || is_dotted || ABBREVIATIONS.contains(&word.as_str())
}

fn push_sentence(chars: &[char], out: &mut Vec<String>) {
    let s: String = chars.iter().collect();
    let s = s.trim();
    if !s.is_empty() {
        out.push(s.to_string());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_on_terminators_followed_by_space() {
        assert_eq!(
            split_sentences("Hello there. How are you? I'm fine!"),
            vec!["Hello there.", "How are you?", "I'm fine!"]
        );
    }

    #[test]
    fn keeps_abbreviations_decimals_and_acronyms_intact() {
        assert_eq!(
            split_sentences("Dr. Smith paid 3.5 dollars in the U.S. Army store. Then he left."),
            vec![
                "Dr. Smith paid 3.5 dollars in the U.S. Army store.",
                "Then he left."
            ]
        );
        assert_eq!(
            split_sentences("Fruit, e.g. apples, is good. Mr. J. Doe agrees."),
            vec!["Fruit, e.g. apples, is good.", "Mr. J. Doe agrees."]
        );
    }

    #[test]
    fn question_exclamation_runs_and_quotes_stay_with_their_sentence() {
        assert_eq!(
            split_sentences("Really?! \"Yes.\" Wait... Okay."),
            vec!["Really?!", "\"Yes.\"", "Wait...", "Okay."]
        );
    }

    #[test]
    fn blank_lines_split_and_single_newlines_are_spaces() {
        assert_eq!(
            split_sentences("A heading\n\nThis line\nwraps here. Next one"),
            vec!["A heading", "This line wraps here.", "Next one"]
        );
    }

    #[test]
    fn cjk_terminators_split_without_spaces() {
        assert_eq!(
            split_sentences("こんにちは。元気ですか？はい"),
            vec!["こんにちは。", "元気ですか？", "はい"]
        );
    }

    #[test]
    fn empty_and_blank_text_gives_no_sentences() {
        assert!(split_sentences("").is_empty());
        assert!(split_sentences("  \n\n ").is_empty());
    }
}
