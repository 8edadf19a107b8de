//! Where audio goes: format from a flag or a file extension, atomic file writes
//! (temp file + fsync + rename), and measuring how many seconds of audio a body holds.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use tokio::io::AsyncWriteExt;
use tts_audio::AudioFormat;

use crate::UsageError;

/// The format to request: `--format`, else the output file's extension, else mp3.
pub fn resolve_format(flag: Option<&str>, path: Option<&Path>) -> anyhow::Result<AudioFormat> {
    if let Some(name) = flag {
        return name.parse().map_err(|_| {
            UsageError(format!(
                "--format {name:?} is not one of wav, mp3, opus, flac, pcm, mulaw"
            ))
            .into()
        });
    }
    let from_extension = path
        .and_then(|p| p.extension())
        .and_then(|e| e.to_str())
        .and_then(|e| e.parse().ok());
    Ok(from_extension.unwrap_or(AudioFormat::Mp3))
}

/// Writes `bytes` to `path` so that readers never see a half-written file.
pub async fn write_atomic(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let tmp = temp_path(path);
    let result = async {
        let mut file = tokio::fs::File::create(&tmp).await?;
        file.write_all(bytes).await?;
        file.sync_all().await?;
        drop(file);
        tokio::fs::rename(&tmp, path).await
    }
    .await;
    if result.is_err() {
        let _ = tokio::fs::remove_file(&tmp).await;
    }
    result.with_context(|| format!("writing {}", path.display()))
}

/// `dir/.name.tmp-<pid>`: hidden, beside the target (same file system, so rename is atomic).
fn temp_path(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "audio".into());
    path.with_file_name(format!(".{name}.tmp-{}", std::process::id()))
}

/// Seconds of audio in a complete body. Raw formats are measured by size, others decoded.
pub fn audio_seconds(bytes: &[u8], format: AudioFormat, sample_rate: Option<u32>) -> Option<f64> {
    match format {
        AudioFormat::Pcm => Some(bytes.len() as f64 / 2.0 / f64::from(sample_rate?)),
        AudioFormat::Mulaw => Some(bytes.len() as f64 / f64::from(sample_rate.unwrap_or(8_000))),
        other => tts_audio::decode(bytes, Some(other.as_str()))
            .ok()
            .map(|pcm| pcm.duration_secs()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn format_comes_from_the_flag_then_the_extension() {
        let path = Path::new("out.flac");
        assert_eq!(
            resolve_format(Some("wav"), Some(path)).unwrap(),
            AudioFormat::Wav
        );
        assert_eq!(resolve_format(None, Some(path)).unwrap(), AudioFormat::Flac);
        assert_eq!(
            resolve_format(None, Some(Path::new("out.ulaw"))).unwrap(),
            AudioFormat::Mulaw
        );
        assert_eq!(resolve_format(None, None).unwrap(), AudioFormat::Mp3);
        assert!(resolve_format(Some("aiff"), None).is_err());
    }

    #[test]
    fn raw_pcm_duration_is_measured_by_size() {
        let seconds = audio_seconds(&[0u8; 48_000], AudioFormat::Pcm, Some(24_000)).unwrap();
        assert!((seconds - 1.0).abs() < 1e-9);
    }

    #[tokio::test]
    async fn atomic_write_leaves_no_temp_file() {
        let dir = std::env::temp_dir().join(format!("tts-cli-write-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let target = dir.join("a.wav");
        write_atomic(&target, b"abc").await.unwrap();
        assert_eq!(std::fs::read(&target).unwrap(), b"abc");
        let names: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 1, "{names:?}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
