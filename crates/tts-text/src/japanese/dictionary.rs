//! The Japanese morphological dictionary: IPADIC's source files (fetched by
//! `scripts/fetch_models.py --only ja` into `models/ja/ipadic/`) compiled once into vibrato's
//! binary format (`models/ja/system.dic`), which later processes read in well under a second.

use std::fs::File;
use std::io::{BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};

use vibrato::{Dictionary, SystemDictionaryBuilder};

use crate::TextError;

/// The compiled dictionary inside the Japanese model directory.
pub const COMPILED: &str = "system.dic";
/// The IPADIC sources (UTF-8) inside the Japanese model directory.
pub const SOURCES: &str = "ipadic";
/// misaki's list of multi-morpheme words, used for word spacing.
pub const WORD_LIST: &str = "ja_words.txt";

const SOURCE_FILES: [&str; 4] = ["lex.csv", "matrix.def", "char.def", "unk.def"];

fn missing(what: &Path, why: impl std::fmt::Display) -> TextError {
    TextError::JapaneseDictionary(format!(
        "{}: {why}; run `python3 scripts/fetch_models.py --only ja` (and `cargo run --release -p tts-text --bin tts-ja-dict`)",
        what.display()
    ))
}

/// Compiles the IPADIC sources under `dir/ipadic/` into a vibrato dictionary.
pub fn build_from_sources(dir: &Path) -> Result<Dictionary, TextError> {
    let src = dir.join(SOURCES);
    let open = |name: &str| -> Result<BufReader<File>, TextError> {
        let path = src.join(name);
        File::open(&path)
            .map(BufReader::new)
            .map_err(|e| missing(&path, e))
    };
    let [lex, matrix, chars, unk] = SOURCE_FILES;
    SystemDictionaryBuilder::from_readers(open(lex)?, open(matrix)?, open(chars)?, open(unk)?)
        .map_err(|e| missing(&src, format!("invalid IPADIC sources: {e}")))
}

/// Writes `dict` to `target` atomically: temp file beside it, fsync, rename.
pub fn write_atomic(dict: &Dictionary, target: &Path) -> Result<(), TextError> {
    let io_err = |e: std::io::Error| {
        TextError::JapaneseDictionary(format!("cannot write {}: {e}", target.display()))
    };
    let parent = target.parent().unwrap_or(Path::new("."));
    let tmp: PathBuf = parent.join(format!(
        ".{}.{}.part",
        target
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("dict"),
        std::process::id()
    ));
    let result = (|| {
        let file = File::create(&tmp).map_err(io_err)?;
        let mut out = BufWriter::new(file);
        dict.write(&mut out).map_err(|e| {
            TextError::JapaneseDictionary(format!("cannot serialise the dictionary: {e}"))
        })?;
        out.flush().map_err(io_err)?;
        let file = out.into_inner().map_err(|e| io_err(e.into_error()))?;
        file.sync_all().map_err(io_err)?;
        std::fs::rename(&tmp, target).map_err(io_err)?;
        if let Ok(d) = File::open(parent) {
            // Make the rename itself durable; not fatal where directories cannot be synced.
            let _ = d.sync_all();
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Reads a compiled dictionary file.
pub fn read_compiled(path: &Path) -> Result<Dictionary, TextError> {
    let file = File::open(path).map_err(|e| missing(path, e))?;
    Dictionary::read(BufReader::new(file))
        .map_err(|e| TextError::JapaneseDictionary(format!("{}: {e}", path.display())))
}

/// Reads the compiled dictionary from `dir`, compiling (and caching) it from the sources when it
/// is absent or unreadable.
pub fn load(dir: &Path) -> Result<Dictionary, TextError> {
    let compiled = dir.join(COMPILED);
    if compiled.exists() {
        match read_compiled(&compiled) {
            Ok(dict) => return Ok(dict),
            Err(e) => tracing::warn!("{e}; rebuilding it from the sources"),
        }
    }
    if !dir.join(SOURCES).join(SOURCE_FILES[0]).exists() {
        return Err(missing(
            &dir.join(SOURCES),
            "the Japanese dictionary is not installed",
        ));
    }
    let started = std::time::Instant::now();
    let dict = build_from_sources(dir)?;
    tracing::info!(
        secs = started.elapsed().as_secs_f32(),
        "compiled the Japanese dictionary from the IPADIC sources"
    );
    // A read-only models directory still works, only without the cache.
    if let Err(e) = write_atomic(&dict, &compiled) {
        tracing::warn!("could not cache the compiled dictionary: {e}");
    }
    Ok(dict)
}
