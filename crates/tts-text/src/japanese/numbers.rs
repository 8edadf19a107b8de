//! Arabic numerals → hiragana readings (123 → ひゃくにじゅうさん), with the sound changes of the
//! hundreds and thousands (さんびゃく, ろっぴゃく, はっせん) and the 万/億/兆/京 groups, in the
//! spirit of misaki's `num2kana`. Decimals are read digit by digit after てん.

const DIGITS: [&str; 10] = [
    "ぜろ",
    "いち",
    "に",
    "さん",
    "よん",
    "ご",
    "ろく",
    "なな",
    "はち",
    "きゅう",
];

/// Groups of four digits, from the lowest: (none), 万, 億, 兆, 京.
const MYRIADS: [&str; 5] = ["", "まん", "おく", "ちょう", "けい"];

/// 0..=9999 (non-zero) → kana. `inside` is true when a higher group precedes it, where misaki
/// reads a leading 1000 as いっせん.
fn below_10000(n: u32, inside: bool) -> String {
    let (th, h, t, o) = (n / 1000, n / 100 % 10, n / 10 % 10, n % 10);
    let mut s = String::new();
    match th {
        0 => {}
        1 if inside => s.push_str("いっせん"),
        1 => s.push_str("せん"),
        3 => s.push_str("さんぜん"),
        8 => s.push_str("はっせん"),
        d => {
            s.push_str(DIGITS[d as usize]);
            s.push_str("せん");
        }
    }
    match h {
        0 => {}
        1 => s.push_str("ひゃく"),
        3 => s.push_str("さんびゃく"),
        6 => s.push_str("ろっぴゃく"),
        8 => s.push_str("はっぴゃく"),
        d => {
            s.push_str(DIGITS[d as usize]);
            s.push_str("ひゃく");
        }
    }
    match t {
        0 => {}
        1 => s.push_str("じゅう"),
        d => {
            s.push_str(DIGITS[d as usize]);
            s.push_str("じゅう");
        }
    }
    if o > 0 {
        s.push_str(DIGITS[o as usize]);
    }
    s
}

/// Reads each digit on its own (for decimals and numbers too long for the myriad groups).
fn digit_by_digit(digits: &str) -> String {
    digits
        .chars()
        .filter_map(|c| c.to_digit(10))
        .map(|d| DIGITS[d as usize])
        .collect()
}

/// An integer written in ASCII digits → kana.
pub fn integer_to_kana(digits: &str) -> String {
    let trimmed = digits.trim_start_matches('0');
    if trimmed.is_empty() {
        return DIGITS[0].to_string();
    }
    if trimmed.len() > 4 * MYRIADS.len() || !trimmed.bytes().all(|b| b.is_ascii_digit()) {
        return digit_by_digit(trimmed);
    }
    let bytes = trimmed.as_bytes();
    // Split into groups of four from the right.
    let mut groups = Vec::new();
    let mut end = bytes.len();
    while end > 0 {
        let start = end.saturating_sub(4);
        let value = bytes[start..end]
            .iter()
            .fold(0u32, |acc, b| acc * 10 + u32::from(b - b'0'));
        groups.push(value);
        end = start;
    }
    let mut s = String::new();
    for (i, &g) in groups.iter().enumerate().rev() {
        if g == 0 {
            continue;
        }
        let inside = i + 1 < groups.len();
        let mut part = below_10000(g, inside);
        if i == 3 && g % 10 == 1 && g / 10 % 10 == 0 {
            // 一兆 is いっちょう (geminate before ちょう).
            part.truncate(part.len() - "いち".len());
            part.push_str("いっ");
        }
        s.push_str(&part);
        s.push_str(MYRIADS[i]);
    }
    s
}

/// A number with an optional decimal part ("3.14") → kana.
pub fn number_to_kana(int_part: &str, frac_part: Option<&str>) -> String {
    let mut s = integer_to_kana(int_part);
    if let Some(frac) = frac_part.filter(|f| !f.is_empty()) {
        // じゅう becomes じゅっ before てん (じゅってん), as in misaki.
        if let Some(stem) = s.strip_suffix("じゅう") {
            s = format!("{stem}じゅっ");
        }
        s.push_str("てん");
        s.push_str(&digit_by_digit(frac));
    }
    s
}

/// Native readings of 1-10 with the counter つ (ひとつ, ふたつ, ...), long vowels as pronounced.
const TSU: [&str; 10] = [
    "ひとつ",
    "ふたつ",
    "みっつ",
    "よっつ",
    "いつつ",
    "むっつ",
    "ななつ",
    "やっつ",
    "ここのつ",
    "とー",
];

/// Days of the month (and counts of days) with their own readings.
fn day_reading(n: u64, after_month: bool) -> Option<&'static str> {
    Some(match n {
        1 if after_month => "ついたち",
        2 => "ふつか",
        3 => "みっか",
        4 => "よっか",
        5 => "いつか",
        6 => "むいか",
        7 => "なのか",
        8 => "よーか",
        9 => "ここのか",
        10 => "とーか",
        14 => "じゅーよっか",
        20 => "はつか",
        24 => "にじゅーよっか",
        _ => return None,
    })
}

/// The consonant row of a counter's first kana, for the sound changes at the join.
fn row(counter: &str) -> Option<char> {
    let c = counter.chars().next()?;
    [
        ('k', "かきくけこ"),
        ('s', "さしすせそ"),
        ('t', "たちつてと"),
        ('h', "はひふへほ"),
        ('p', "ぱぴぷぺぽ"),
    ]
    .iter()
    .find(|(_, kana)| kana.contains(c))
    .map(|(r, _)| *r)
}

/// Replaces the first kana of `s` by the same vowel in another consonant row (ほ → ぽ, か → が).
fn shift_row(s: &str, to: &str) -> String {
    const H: &str = "はひふへほ";
    const K: &str = "かきくけこ";
    let mut chars = s.chars();
    let Some(first) = chars.next() else {
        return String::new();
    };
    let col = H
        .chars()
        .position(|c| c == first)
        .or_else(|| K.chars().position(|c| c == first));
    match col.and_then(|i| to.chars().nth(i)) {
        Some(c) => std::iter::once(c).chain(chars).collect(),
        None => s.to_string(),
    }
}

/// A number followed by a counter: the readings of both after the sound changes at the join
/// (いっぽん, さんぼん, ろっぷん, みっつ, よっか, しがつ, ふたり). `counter_kana` is the counter's
/// dictionary reading in hiragana; `after_month` says a 月 came just before (1日 = ついたち).
/// `None` when nothing changes.
pub fn with_counter(
    digits: &str,
    counter: &str,
    counter_kana: &str,
    after_month: bool,
) -> Option<(String, String)> {
    let n: u64 = digits.parse().ok()?;
    match counter {
        "つ" if (1..=10).contains(&n) => return Some((TSU[n as usize - 1].into(), String::new())),
        "人" if n == 1 => return Some(("ひとり".into(), String::new())),
        "人" if n == 2 => return Some(("ふたり".into(), String::new())),
        "日" => {
            if let Some(day) = day_reading(n, after_month) {
                return Some((day.into(), String::new()));
            }
            return Some((integer_to_kana(digits), "にち".into()));
        }
        "月" if (1..=12).contains(&n) => {
            let num = match n {
                4 => "し".to_string(),
                7 => "しち".to_string(),
                9 => "く".to_string(),
                _ => integer_to_kana(digits),
            };
            return Some((num, "がつ".into()));
        }
        _ => {}
    }
    let row = row(counter_kana)?;
    let num = integer_to_kana(digits);
    // Gemination of the number's last mora before voiceless counters.
    let geminated = [
        ("いち", "いっ", "ksthp"),
        ("はち", "はっ", "ksthp"),
        ("じゅう", "じゅっ", "ksthp"),
        ("ろく", "ろっ", "khp"),
        ("ひゃく", "ひゃっ", "khp"),
    ]
    .iter()
    .find(|(end, _, rows)| num.ends_with(end) && rows.contains(row))
    .map(|(end, short, _)| format!("{}{short}", &num[..num.len() - end.len()]));
    if let Some(num) = geminated {
        // h becomes p after the geminate (いっぽん, はっぴき).
        let counter = if row == 'h' {
            shift_row(counter_kana, "ぱぴぷぺぽ")
        } else {
            counter_kana.to_string()
        };
        return Some((num, counter));
    }
    if num.ends_with('ん') && row == 'h' {
        // After ん: 本/杯/匹 voice (さんぼん), 分/泊/発 harden (さんぷん).
        let to = match counter {
            "本" | "杯" | "匹" => "ばびぶべぼ",
            _ if (num.ends_with("さん") || num.ends_with("なん")) && counter != "分" => {
                return None
            }
            _ => "ぱぴぷぺぽ",
        };
        return Some((num, shift_row(counter_kana, to)));
    }
    if (num.ends_with("さん") || num.ends_with("なん")) && matches!(counter, "階" | "軒") {
        return Some((num, shift_row(counter_kana, "がぎぐげご")));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_numbers_read_with_sound_changes() {
        assert_eq!(integer_to_kana("0"), "ぜろ");
        assert_eq!(integer_to_kana("7"), "なな");
        assert_eq!(integer_to_kana("10"), "じゅう");
        assert_eq!(integer_to_kana("23"), "にじゅうさん");
        assert_eq!(integer_to_kana("300"), "さんびゃく");
        assert_eq!(integer_to_kana("618"), "ろっぴゃくじゅうはち");
        assert_eq!(integer_to_kana("800"), "はっぴゃく");
        assert_eq!(integer_to_kana("1000"), "せん");
        assert_eq!(integer_to_kana("3000"), "さんぜん");
        assert_eq!(integer_to_kana("8000"), "はっせん");
        assert_eq!(integer_to_kana("2026"), "にせんにじゅうろく");
        assert_eq!(integer_to_kana("007"), "なな");
    }

    #[test]
    fn large_numbers_use_myriad_groups() {
        assert_eq!(integer_to_kana("10000"), "いちまん");
        assert_eq!(integer_to_kana("11000"), "いちまんいっせん");
        assert_eq!(integer_to_kana("100000000"), "いちおく");
        assert_eq!(integer_to_kana("120000005"), "いちおくにせんまんご");
        assert_eq!(integer_to_kana("1000000000000"), "いっちょう");
        assert_eq!(
            integer_to_kana("123456789012345678901"),
            "いちにさんよんごろくななはちきゅうぜろいちにさんよんごろくななはちきゅうぜろいち"
        );
    }

    fn counted(d: &str, counter: &str, kana: &str) -> String {
        let (n, c) = with_counter(d, counter, kana, false)
            .unwrap_or_else(|| (integer_to_kana(d), kana.to_string()));
        n + &c
    }

    #[test]
    fn counters_change_sound_at_the_join() {
        assert_eq!(counted("1", "本", "ほん"), "いっぽん");
        assert_eq!(counted("3", "本", "ほん"), "さんぼん");
        assert_eq!(counted("6", "分", "ふん"), "ろっぷん");
        assert_eq!(counted("4", "分", "ふん"), "よんぷん");
        assert_eq!(counted("10", "回", "かい"), "じゅっかい");
        assert_eq!(counted("8", "歳", "さい"), "はっさい");
        assert_eq!(counted("3", "階", "かい"), "さんがい");
        assert_eq!(counted("2", "本", "ほん"), "にほん");
        assert_eq!(counted("5", "個", "こ"), "ごこ");
        assert_eq!(counted("3", "つ", "つ"), "みっつ");
        assert_eq!(
            with_counter("1", "人", "にん", false),
            Some(("ひとり".into(), String::new()))
        );
        assert_eq!(counted("5", "人", "にん"), "ごにん");
        assert_eq!(counted("20", "日", "ひ"), "はつか");
        assert_eq!(counted("21", "日", "ひ"), "にじゅういちにち");
        assert_eq!(counted("4", "月", "つき"), "しがつ");
        assert_eq!(counted("11", "月", "つき"), "じゅういちがつ");
        assert_eq!(
            with_counter("1", "日", "ひ", true).map(|p| p.0),
            Some("ついたち".into())
        );
    }

    #[test]
    fn decimals_read_digit_by_digit() {
        assert_eq!(number_to_kana("3", Some("14")), "さんてんいちよん");
        assert_eq!(number_to_kana("10", Some("5")), "じゅってんご");
        assert_eq!(number_to_kana("0", Some("05")), "ぜろてんぜろご");
    }
}
