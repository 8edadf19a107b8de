//! The voice library: what happens to an uploaded voice sample before and after cloning.
//!
//! [`sample`] checks an upload (size, decodability, sample rate, silence, duration, clipping) and
//! turns it into the clip that cloning uses (mono, silence trimmed, -20 LUFS, at the model's rate).
//! [`store`] keeps finished voices on disk under `<storage_dir>/voices/<id>/` — the original file,
//! `processed.wav`, the fitted Kokoro pack `style.npy` and `voice.json` — written into a temp
//! directory and renamed into place, so a crash never leaves half a voice. [`id`] makes and checks
//! voice ids, which are also directory names. The speaker embedding and the style fitting live in
//! `tts-speaker`; the HTTP side in `tts-server`.

mod error;
pub mod id;
pub mod sample;
pub mod store;

pub use error::VoiceError;
pub use id::{new_voice_id, validate_voice_id};
pub use sample::{prepare_sample, PreparedSample, UploadLimits};
pub use store::{
    BlendWeight, LoadedVoice, OriginalInfo, PendingVoice, VoiceDraft, VoiceLibrary, VoiceMeta,
};
