//! espeak-ng phonemization through a small hand-written FFI to the system `libespeak-ng`.
//!
//! espeak-ng keeps global state and is not thread-safe, so one process-wide [`Espeak`] owns it
//! behind a `Mutex` and initialises it once. Debian's 1.51 lacks the
//! `espeak_TextToPhonemesWithTerminator` of the rhasspy fork, so each clause's punctuation is
//! recovered from the span of text that `espeak_TextToPhonemes` advanced over, the way
//! `rhasspy/piper-phonemize` does with stock espeak-ng.

use std::ffi::{c_char, c_void, CStr, CString};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use crate::TextError;

mod ffi {
    use std::ffi::{c_char, c_int, c_void};

    /// `espeak_AUDIO_OUTPUT::AUDIO_OUTPUT_SYNCHRONOUS`: no audio device is opened.
    pub const AUDIO_OUTPUT_SYNCHRONOUS: c_int = 2;
    pub const ESPEAK_INITIALIZE_PHONEME_IPA: c_int = 0x0002;
    /// Without this flag espeak calls `exit()` when its data is missing.
    pub const ESPEAK_INITIALIZE_DONT_EXIT: c_int = 0x8000;
    pub const ESPEAK_CHARS_UTF8: c_int = 1;
    /// `phonememode` bit 1: IPA output as UTF-8.
    pub const PHONEMES_IPA: c_int = 0x02;
    pub const EE_OK: c_int = 0;

    #[link(name = "espeak-ng")]
    extern "C" {
        pub fn espeak_Initialize(
            output: c_int,
            buflength: c_int,
            path: *const c_char,
            options: c_int,
        ) -> c_int;
        pub fn espeak_SetVoiceByName(name: *const c_char) -> c_int;
        pub fn espeak_TextToPhonemes(
            textptr: *mut *const c_void,
            textmode: c_int,
            phonememode: c_int,
        ) -> *const c_char;
        pub fn espeak_Info(path_data: *mut *const c_char) -> *const c_char;
    }
}

/// The phonemes of one clause and the punctuation that ended it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PhonemeClause {
    /// IPA phonemes as espeak-ng prints them (not yet NFD-normalised).
    pub phonemes: String,
    /// The clause punctuation: one of `. , ? ! ; :`, or `None` (end of text, other marks).
    pub terminator: Option<char>,
}

impl PhonemeClause {
    /// Whether the clause ends a sentence (`.`, `?`, `!`), where Piper starts a new utterance.
    pub fn ends_sentence(&self) -> bool {
        matches!(self.terminator, Some('.' | '?' | '!'))
    }
}

struct State {
    /// espeak keeps the data-path pointer after `espeak_Initialize`, so it must outlive the library use.
    _data_path: Option<CString>,
    current_voice: Option<String>,
}

/// The process-wide owner of the espeak-ng library.
pub struct Espeak {
    state: Mutex<State>,
    data_dir: PathBuf,
    version: String,
}

static GLOBAL: OnceLock<Result<Espeak, String>> = OnceLock::new();

impl std::fmt::Debug for Espeak {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Espeak")
            .field("data_dir", &self.data_dir)
            .field("version", &self.version)
            .finish()
    }
}

impl Espeak {
    /// The shared instance, initialised on first use. The data directory is taken from
    /// `ESPEAK_DATA_PATH` when set, otherwise the library's compiled-in default.
    pub fn global() -> Result<&'static Espeak, TextError> {
        GLOBAL
            .get_or_init(|| {
                let dir = std::env::var_os("ESPEAK_DATA_PATH").map(PathBuf::from);
                Self::init(dir.as_deref()).map_err(|e| e.to_string())
            })
            .as_ref()
            .map_err(|e| TextError::EspeakInit(e.clone()))
    }

    fn init(data_dir: Option<&Path>) -> Result<Espeak, TextError> {
        let data_path =
            match data_dir {
                Some(dir) => {
                    // espeak expects the directory that *contains* `espeak-ng-data`, or the data dir itself.
                    let s = dir.to_str().ok_or_else(|| {
                        TextError::EspeakInit(format!("data path {} is not UTF-8", dir.display()))
                    })?;
                    Some(CString::new(s).map_err(|_| {
                        TextError::EspeakInit("data path contains a NUL byte".into())
                    })?)
                }
                None => None,
            };
        let path_ptr = data_path.as_ref().map_or(std::ptr::null(), |c| c.as_ptr());
        // SAFETY: called once (guarded by the OnceLock); the path CString lives in `State`.
        let rate = unsafe {
            ffi::espeak_Initialize(
                ffi::AUDIO_OUTPUT_SYNCHRONOUS,
                0,
                path_ptr,
                ffi::ESPEAK_INITIALIZE_DONT_EXIT | ffi::ESPEAK_INITIALIZE_PHONEME_IPA,
            )
        };
        let mut info_path: *const c_char = std::ptr::null();
        // SAFETY: espeak_Info writes a pointer to its static path buffer and returns a static string.
        let version_ptr = unsafe { ffi::espeak_Info(&mut info_path) };
        let version = cstr_to_string(version_ptr);
        let resolved = if info_path.is_null() {
            String::new()
        } else {
            cstr_to_string(info_path)
        };
        let data_dir = PathBuf::from(resolved);
        if rate <= 0 {
            return Err(TextError::EspeakInit(format!(
                "espeak_Initialize failed (code {rate}) with data directory {:?}",
                data_dir
            )));
        }
        // espeak "succeeds" without data and then returns empty phonemes: check for the phoneme table.
        if !data_dir.join("phontab").is_file() {
            return Err(TextError::EspeakInit(format!(
                "espeak-ng data directory {} has no phontab (install espeak-ng-data or set ESPEAK_DATA_PATH)",
                data_dir.display()
            )));
        }
        Ok(Espeak {
            state: Mutex::new(State {
                _data_path: data_path,
                current_voice: None,
            }),
            data_dir,
            version,
        })
    }

    /// The espeak-ng data directory in use.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// The library version string, e.g. `1.51`.
    pub fn version(&self) -> &str {
        &self.version
    }

    /// Phonemizes `text` with espeak voice `voice` (e.g. `en-us`), clause by clause.
    pub fn phonemize(&self, text: &str, voice: &str) -> Result<Vec<PhonemeClause>, TextError> {
        let voice_c =
            CString::new(voice).map_err(|_| TextError::UnknownVoice(voice.to_string()))?;
        // A NUL would end the C string early; it carries no speech anyway.
        let text_c = CString::new(text.replace('\0', " "))
            .map_err(|_| TextError::InvalidText("text contains a NUL byte".into()))?;
        let bytes = text_c.as_bytes();

        let mut state = self
            .state
            .lock()
            .map_err(|_| TextError::Espeak("espeak state poisoned by an earlier panic".into()))?;
        if state.current_voice.as_deref() != Some(voice) {
            // SAFETY: the library is initialised and the mutex serialises all calls.
            let rc = unsafe { ffi::espeak_SetVoiceByName(voice_c.as_ptr()) };
            if rc != ffi::EE_OK {
                state.current_voice = None;
                return Err(TextError::UnknownVoice(voice.to_string()));
            }
            state.current_voice = Some(voice.to_string());
        }

        let start = text_c.as_ptr();
        let end_offset = bytes.len();
        let mut ptr: *const c_void = start.cast();
        let mut clauses = Vec::new();
        while !ptr.is_null() {
            let before = ptr;
            // SAFETY: `ptr` points into `text_c`, NUL-terminated and alive for the loop; espeak
            // advances it within the string or sets it to NULL at the end.
            let out = unsafe {
                ffi::espeak_TextToPhonemes(&mut ptr, ffi::ESPEAK_CHARS_UTF8, ffi::PHONEMES_IPA)
            };
            let phonemes = cstr_to_string(out);
            // Offset just past the advanced span; NULL means the whole text was consumed
            // (Piper then looks at the end of the string).
            let after = if ptr.is_null() {
                end_offset + 1
            } else {
                (ptr as usize).saturating_sub(start as usize)
            };
            if !ptr.is_null() && (ptr as usize) <= (before as usize) {
                // No progress would loop forever; treat it as the end.
                tracing::debug!("espeak made no progress; stopping");
                ptr = std::ptr::null();
            }
            clauses.push(PhonemeClause {
                phonemes,
                terminator: clause_terminator(bytes, after),
            });
        }
        drop(state);

        // A missing dictionary gives empty phonemes for real words: report it instead of silence.
        if text.chars().any(char::is_alphabetic) && clauses.iter().all(|c| c.phonemes.is_empty()) {
            return Err(TextError::Espeak(format!(
                "espeak-ng produced no phonemes for voice {voice:?} (is its dictionary installed in {}?)",
                self.data_dir.display()
            )));
        }
        Ok(clauses)
    }
}

/// Piper's rule (`rhasspy/piper-phonemize` on stock espeak-ng): the last non-blank byte before
/// the character preceding the advanced pointer (espeak moves one character past the
/// punctuation), if it is clause punctuation. Blanks include newlines and an ellipsis is not a
/// terminator, which is what the fork's `...WithTerminator` reports for those.
fn clause_terminator(text: &[u8], after: usize) -> Option<char> {
    // Step back over the whole character espeak moved past: it may be multibyte (kana after ",").
    let mut past = after.checked_sub(1)?;
    while text.get(past).is_some_and(|b| b & 0xC0 == 0x80) {
        past -= 1;
    }
    let mut i = past.checked_sub(1)?;
    while text.get(i)?.is_ascii_whitespace() {
        i = i.checked_sub(1)?;
    }
    match text[i] {
        b'.' if i > 0 && text[i - 1] == b'.' => None,
        b @ (b'.' | b',' | b'?' | b'!' | b':' | b';') => Some(b as char),
        _ => None,
    }
}

fn cstr_to_string(p: *const c_char) -> String {
    if p.is_null() {
        return String::new();
    }
    // SAFETY: espeak returns NUL-terminated strings valid until its next call; we copy at once.
    unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn espeak() -> &'static Espeak {
        Espeak::global().expect("espeak-ng initialises (apt-get install espeak-ng-data)")
    }

    #[test]
    fn hello_world_gives_ipa_with_period_terminator() {
        let clauses = espeak().phonemize("Hello world.", "en-us").unwrap();
        assert_eq!(clauses.len(), 1);
        assert_eq!(clauses[0].phonemes, "həlˈoʊ wˈɜːld");
        assert_eq!(clauses[0].terminator, Some('.'));
    }

    #[test]
    fn clause_punctuation_is_recovered_from_the_text() {
        let clauses = espeak()
            .phonemize("Well, this works; does it? Yes: it does!", "en-us")
            .unwrap();
        let terms: Vec<_> = clauses.iter().map(|c| c.terminator).collect();
        assert_eq!(
            terms,
            vec![Some(','), Some(';'), Some('?'), Some(':'), Some('!')]
        );
        assert!(clauses.iter().all(|c| !c.phonemes.is_empty()));
    }

    #[test]
    fn newline_after_period_keeps_the_period_and_ellipsis_is_not_a_terminator() {
        let clauses = espeak().phonemize("Hello.\nWorld", "en-us").unwrap();
        assert_eq!(clauses[0].terminator, Some('.'));
        let clauses = espeak().phonemize("Wait... what?", "en-us").unwrap();
        let terms: Vec<_> = clauses.iter().map(|c| c.terminator).collect();
        assert_eq!(terms, vec![None, Some('?')]);
    }

    #[test]
    fn punctuation_before_a_multibyte_character_is_kept() {
        // espeak moves past the space and the two-byte "ü": the comma must still be found.
        let clauses = espeak().phonemize("Yes, über alles.", "en-us").unwrap();
        let terms: Vec<_> = clauses.iter().map(|c| c.terminator).collect();
        assert_eq!(terms, [Some(','), Some('.')], "{clauses:?}");
    }

    #[test]
    fn text_without_final_punctuation_has_no_terminator() {
        let clauses = espeak().phonemize("no punctuation here", "en-us").unwrap();
        assert_eq!(clauses.last().and_then(|c| c.terminator), None);
    }

    #[test]
    fn unknown_voice_is_an_error_not_empty_output() {
        let err = espeak().phonemize("Hello.", "xx-notavoice").unwrap_err();
        assert!(matches!(err, TextError::UnknownVoice(_)), "{err}");
        // The instance still works afterwards.
        assert!(!espeak().phonemize("Hello.", "en-us").unwrap()[0]
            .phonemes
            .is_empty());
    }

    #[test]
    fn concurrent_callers_are_serialised() {
        let handles: Vec<_> = (0..4)
            .map(|_| std::thread::spawn(|| espeak().phonemize("One, two, three.", "en-us")))
            .collect();
        let results: Vec<_> = handles
            .into_iter()
            .map(|h| h.join().expect("thread").expect("phonemize"))
            .collect();
        assert!(results.windows(2).all(|w| w[0] == w[1]));
    }

    #[test]
    fn empty_and_punctuation_only_text_do_not_fail() {
        assert!(espeak().phonemize("", "en-us").is_ok());
        assert!(espeak().phonemize("?!...", "en-us").is_ok());
    }
}
