//! Voice listing and upload types. Unknown fields are kept in `extra`, so a newer server's
//! additions are not lost.

use std::collections::BTreeMap;

use bytes::Bytes;
use reqwest::multipart::{Form, Part};
use serde::Deserialize;

/// `GET /v1/voices`.
#[derive(Debug, Clone, Deserialize)]
pub struct VoiceList {
    pub voices: Vec<Voice>,
    #[serde(default)]
    pub default_voice: String,
    /// OpenAI voice names and the voice each one speaks with.
    #[serde(default)]
    pub openai_aliases: BTreeMap<String, String>,
}

/// One voice.
#[derive(Debug, Clone, Deserialize)]
pub struct Voice {
    pub id: String,
    /// The model that speaks it (`piper`, `kokoro`); empty for uploads (see `extra["models"]`).
    #[serde(default, deserialize_with = "null_as_empty")]
    pub model: String,
    /// Empty when unknown (an upload without a language tag).
    #[serde(default, deserialize_with = "null_as_empty")]
    pub language: String,
    /// `stock`, `blend` or `cloned`.
    #[serde(default, deserialize_with = "null_as_empty")]
    pub kind: String,
    #[serde(default)]
    pub sample_rate: Option<u32>,
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

/// Servers send `null` for unknown strings (an upload's language); read it as empty.
fn null_as_empty<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    Ok(Option::<String>::deserialize(deserializer)?.unwrap_or_default())
}

/// A sample to clone a voice from (`POST /v1/voices`).
#[derive(Debug, Clone)]
pub struct VoiceUpload {
    /// Display name of the new voice.
    pub name: String,
    /// The recording, in any format the server decodes (wav, mp3, flac, ogg).
    pub audio: Bytes,
    /// File name sent with the audio; its extension tells the server the format.
    pub file_name: String,
    /// The speaker agreed to be cloned.
    pub consent: bool,
    pub language: Option<String>,
}

impl VoiceUpload {
    pub(crate) fn form(&self) -> Form {
        let mime = match self
            .file_name
            .rsplit_once('.')
            .map(|(_, ext)| ext.to_ascii_lowercase())
            .as_deref()
        {
            Some("wav") => "audio/wav",
            Some("mp3") => "audio/mpeg",
            Some("flac") => "audio/flac",
            Some("ogg" | "opus") => "audio/ogg",
            _ => "application/octet-stream",
        };
        let file = Part::stream(self.audio.clone()).file_name(self.file_name.clone());
        // The MIME string is one of the constants above, so it always parses.
        let file = file
            .mime_str(mime)
            .unwrap_or_else(|_| Part::stream(self.audio.clone()).file_name(self.file_name.clone()));
        let mut form = Form::new()
            .text("name", self.name.clone())
            .text("consent", self.consent.to_string())
            .part("file", file);
        if let Some(language) = &self.language {
            form = form.text("language", language.clone());
        }
        form
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn voice_keeps_unknown_fields() {
        let voice: Voice = serde_json::from_str(
            r#"{"id":"c1","model":"kokoro","language":"en","kind":"cloned","sample_rate":24000,"models":["kokoro"]}"#,
        )
        .unwrap();
        assert_eq!(voice.kind, "cloned");
        assert_eq!(voice.extra["models"][0], "kokoro");
    }

    #[test]
    fn null_language_of_an_upload_reads_as_empty() {
        let voice: Voice =
            serde_json::from_str(r#"{"id":"c2","kind":"cloned","language":null,"name":"Joe"}"#)
                .unwrap();
        assert_eq!(voice.language, "");
        assert_eq!(voice.model, "");
        assert_eq!(voice.extra["name"], "Joe");
    }
}
