//! Output container/codec names as used in requests, file extensions and HTTP content types.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::AudioError;

/// An audio output format the encoders can produce.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AudioFormat {
    /// RIFF WAVE, 16-bit PCM, mono.
    Wav,
    /// MPEG-1/2 Layer III (LAME), mono CBR.
    Mp3,
    /// Opus in Ogg (RFC 7845).
    Opus,
    /// FLAC, 16-bit, mono.
    Flac,
    /// Raw headerless PCM, signed 16-bit little-endian, mono.
    Pcm,
    /// Raw headerless G.711 mu-law at 8 kHz (telephony).
    Mulaw,
}

impl AudioFormat {
    /// Every format, in a stable order.
    pub const ALL: [AudioFormat; 6] = [
        AudioFormat::Wav,
        AudioFormat::Mp3,
        AudioFormat::Opus,
        AudioFormat::Flac,
        AudioFormat::Pcm,
        AudioFormat::Mulaw,
    ];

    /// The lowercase name used in requests (`"wav"`, `"mp3"`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            AudioFormat::Wav => "wav",
            AudioFormat::Mp3 => "mp3",
            AudioFormat::Opus => "opus",
            AudioFormat::Flac => "flac",
            AudioFormat::Pcm => "pcm",
            AudioFormat::Mulaw => "mulaw",
        }
    }

    /// The HTTP `Content-Type` for a response body in this format.
    pub fn content_type(self) -> &'static str {
        match self {
            AudioFormat::Wav => "audio/wav",
            AudioFormat::Mp3 => "audio/mpeg",
            AudioFormat::Opus => "audio/ogg; codecs=opus",
            AudioFormat::Flac => "audio/flac",
            AudioFormat::Pcm => "audio/pcm",
            // RFC 2046 `audio/basic` is exactly 8 kHz mono mu-law.
            AudioFormat::Mulaw => "audio/basic",
        }
    }

    /// The usual file extension, without the dot.
    pub fn extension(self) -> &'static str {
        match self {
            AudioFormat::Wav => "wav",
            AudioFormat::Mp3 => "mp3",
            AudioFormat::Opus => "opus",
            AudioFormat::Flac => "flac",
            AudioFormat::Pcm => "pcm",
            AudioFormat::Mulaw => "ulaw",
        }
    }
}

impl fmt::Display for AudioFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for AudioFormat {
    type Err = AudioError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "wav" | "wave" => Ok(AudioFormat::Wav),
            "mp3" | "mpeg" => Ok(AudioFormat::Mp3),
            "opus" | "ogg" => Ok(AudioFormat::Opus),
            "flac" => Ok(AudioFormat::Flac),
            "pcm" | "raw" | "s16le" => Ok(AudioFormat::Pcm),
            "mulaw" | "ulaw" | "mu-law" | "g711" => Ok(AudioFormat::Mulaw),
            _ => Err(AudioError::UnknownFormat(s.to_string())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_through_from_str_and_display() {
        for f in AudioFormat::ALL {
            assert_eq!(f.to_string().parse::<AudioFormat>().unwrap(), f);
        }
        assert_eq!("MP3".parse::<AudioFormat>().unwrap(), AudioFormat::Mp3);
        assert!("aiff".parse::<AudioFormat>().is_err());
    }

    #[test]
    fn serde_uses_lowercase_names() {
        let json = serde_json::to_string(&AudioFormat::Mulaw).unwrap();
        assert_eq!(json, "\"mulaw\"");
        let back: AudioFormat = serde_json::from_str("\"flac\"").unwrap();
        assert_eq!(back, AudioFormat::Flac);
    }
}
