//! Reader for PyTorch's legacy (pre-1.6, non-zip) `torch.save` files, the format of
//! Resemblyzer's `pretrained.pt`.
//!
//! The file is five pickles in a row: magic number, protocol version, system info, the saved
//! object (tensors appear as `_rebuild_tensor_v2` calls on persistent storage ids), and the list
//! of storage keys; then, per key in that order, an 8-byte little-endian element count and the
//! raw little-endian data. candle's pickle `Stack` parses each pickle; candle's `PthTensors`
//! only reads the zip layout, hence this small reader.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;

use candle_core::pickle::{Object, Stack};
use candle_core::{DType, Device, Tensor};

use crate::SpeakerError;

/// `torch.serialization.MAGIC_NUMBER`.
const MAGIC: u128 = 0x1950a86a20f9469cfc6c;

fn werr(path: &Path, message: impl Into<String>) -> SpeakerError {
    SpeakerError::Weights {
        path: path.display().to_string(),
        message: message.into(),
    }
}

fn read_pickle<R: BufRead>(r: &mut R, path: &Path, what: &str) -> Result<Object, SpeakerError> {
    let mut stack = Stack::empty();
    stack
        .read_loop(r)
        .and_then(|()| stack.finalize())
        .map_err(|e| werr(path, format!("cannot parse the {what} pickle: {e}")))
}

/// Reads the tensors of the dict stored under `key` of the saved object (e.g. `model_state`),
/// as f32 on `device`.
pub fn read_legacy_state_dict(
    path: &Path,
    key: &str,
    device: &Device,
) -> Result<HashMap<String, Tensor>, SpeakerError> {
    let file = std::fs::File::open(path).map_err(|e| werr(path, e.to_string()))?;
    let mut r = BufReader::new(file);
    // The magic number is a 10-byte LONG1 (it exceeds i64), which candle's parser cannot
    // hold, so compare its pickle bytes directly: PROTO 2, LONG1 10 bytes, STOP.
    let mut magic = [0u8; 15];
    r.read_exact(&mut magic)
        .map_err(|e| werr(path, format!("cannot read the header: {e}")))?;
    let expected: Vec<u8> = [0x80, 0x02, 0x8a, 0x0a]
        .into_iter()
        .chain(MAGIC.to_le_bytes()[..10].iter().copied())
        .chain([b'.'])
        .collect();
    if magic[..] != expected[..] {
        return Err(werr(
            path,
            "not a legacy torch.save file (zip checkpoints are read by candle's VarBuilder::from_pth)",
        ));
    }
    read_pickle(&mut r, path, "protocol")?;
    read_pickle(&mut r, path, "sys_info")?;
    let object = read_pickle(&mut r, path, "object")?;
    let keys = match read_pickle(&mut r, path, "storage keys")? {
        Object::List(keys) => keys
            .into_iter()
            .map(|k| {
                k.unicode()
                    .map_err(|o| werr(path, format!("bad storage key {o:?}")))
            })
            .collect::<Result<Vec<String>, _>>()?,
        other => return Err(werr(path, format!("bad storage key list {other:?}"))),
    };
    let mut storages: HashMap<String, Vec<u8>> = HashMap::new();
    for k in keys {
        let mut count = [0u8; 8];
        r.read_exact(&mut count)
            .map_err(|e| werr(path, format!("storage {k}: {e}")))?;
        let count = u64::from_le_bytes(count) as usize;
        // Every tensor in this checkpoint is float32; other storages are skipped by size below.
        let mut data = vec![0u8; count * 4];
        r.read_exact(&mut data)
            .map_err(|e| werr(path, format!("storage {k} ({count} elements): {e}")))?;
        storages.insert(k, data);
    }

    let Object::Dict(entries) = object else {
        return Err(werr(path, "the saved object is not a dict"));
    };
    let state = entries
        .into_iter()
        .find(|(k, _)| *k == Object::Unicode(key.to_string()))
        .map(|(_, v)| v)
        .ok_or_else(|| werr(path, format!("no {key:?} in the checkpoint")))?;
    let Object::Dict(state) = state else {
        return Err(werr(path, format!("{key:?} is not a dict")));
    };
    let mut tensors = HashMap::new();
    for (name, value) in state {
        let info = value
            .into_tensor_info(name, Path::new(""))
            .map_err(|e| werr(path, e.to_string()))?;
        let Some(info) = info else { continue };
        if info.dtype != DType::F32 {
            return Err(werr(
                path,
                format!("{}: dtype {:?}, expected f32", info.name, info.dtype),
            ));
        }
        let storage_key = info.path.trim_start_matches('/');
        let data = storages.get(storage_key).ok_or_else(|| {
            werr(
                path,
                format!("{}: missing storage {storage_key}", info.name),
            )
        })?;
        let layout = &info.layout;
        if !layout.is_contiguous() {
            return Err(werr(path, format!("{}: non-contiguous tensor", info.name)));
        }
        let start = layout.start_offset();
        let end = start + layout.shape().elem_count() * 4;
        let bytes = data
            .get(start..end)
            .ok_or_else(|| werr(path, format!("{}: storage too short", info.name)))?;
        let t = Tensor::from_raw_buffer(bytes, DType::F32, layout.shape().dims(), device)?;
        tensors.insert(info.name, t);
    }
    Ok(tensors)
}
