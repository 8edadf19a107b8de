//! A small ONNX reader: the initializers (weights) and the graph nodes of a `ModelProto`.
//!
//! The protobuf messages are declared by hand with `prost` derives for just the fields we need
//! (field numbers from <https://github.com/onnx/onnx/blob/main/onnx/onnx.proto>), so the build
//! needs no `protoc`. Unknown fields are skipped by prost. External-data tensors are not supported.
//!
//! Exports name some weights anonymously (`onnx::Conv_1234`); [`OnnxModel::consumers`] finds the
//! nodes that read a tensor, whose names (`/flow/flows.6/enc/in_layers.0/Conv`) locate the module.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{Device, Tensor};
use prost::Message;

use crate::ModelError;

/// Hand-declared subset of `onnx.ModelProto`.
#[derive(Clone, PartialEq, Message)]
pub struct ModelProto {
    #[prost(message, optional, tag = "7")]
    pub graph: Option<GraphProto>,
}

/// Hand-declared subset of `onnx.GraphProto`.
#[derive(Clone, PartialEq, Message)]
pub struct GraphProto {
    #[prost(message, repeated, tag = "1")]
    pub node: Vec<NodeProto>,
    #[prost(message, repeated, tag = "5")]
    pub initializer: Vec<TensorProto>,
    #[prost(message, repeated, tag = "11")]
    pub input: Vec<ValueInfoProto>,
    #[prost(message, repeated, tag = "12")]
    pub output: Vec<ValueInfoProto>,
}

/// Only the name of a graph input/output is kept.
#[derive(Clone, PartialEq, Message)]
pub struct ValueInfoProto {
    #[prost(string, tag = "1")]
    pub name: String,
}

/// Hand-declared subset of `onnx.NodeProto`.
#[derive(Clone, PartialEq, Message)]
pub struct NodeProto {
    #[prost(string, repeated, tag = "1")]
    pub input: Vec<String>,
    #[prost(string, repeated, tag = "2")]
    pub output: Vec<String>,
    #[prost(string, tag = "3")]
    pub name: String,
    #[prost(string, tag = "4")]
    pub op_type: String,
    #[prost(message, repeated, tag = "5")]
    pub attribute: Vec<AttributeProto>,
}

/// Hand-declared subset of `onnx.AttributeProto`.
#[derive(Clone, PartialEq, Message)]
pub struct AttributeProto {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(float, tag = "2")]
    pub f: f32,
    #[prost(int64, tag = "3")]
    pub i: i64,
    #[prost(bytes = "vec", tag = "4")]
    pub s: Vec<u8>,
    #[prost(message, optional, tag = "5")]
    pub t: Option<TensorProto>,
    #[prost(float, repeated, tag = "7")]
    pub floats: Vec<f32>,
    #[prost(int64, repeated, tag = "8")]
    pub ints: Vec<i64>,
    #[prost(int32, tag = "20")]
    pub r#type: i32,
}

/// Hand-declared subset of `onnx.TensorProto`.
#[derive(Clone, PartialEq, Message)]
pub struct TensorProto {
    #[prost(int64, repeated, tag = "1")]
    pub dims: Vec<i64>,
    #[prost(int32, tag = "2")]
    pub data_type: i32,
    #[prost(float, repeated, tag = "4")]
    pub float_data: Vec<f32>,
    #[prost(int32, repeated, tag = "5")]
    pub int32_data: Vec<i32>,
    #[prost(int64, repeated, tag = "7")]
    pub int64_data: Vec<i64>,
    #[prost(string, tag = "8")]
    pub name: String,
    #[prost(bytes = "vec", tag = "9")]
    pub raw_data: Vec<u8>,
}

/// ONNX `TensorProto.DataType` values this reader converts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataType {
    F32,
    U8,
    I8,
    I32,
    I64,
    /// Any other code, kept so callers can report it.
    Other(i32),
}

impl DataType {
    pub fn from_code(code: i32) -> Self {
        match code {
            1 => Self::F32,
            2 => Self::U8,
            3 => Self::I8,
            6 => Self::I32,
            7 => Self::I64,
            c => Self::Other(c),
        }
    }
}

/// A weight tensor stored in the graph.
#[derive(Debug, Clone)]
pub struct Initializer {
    pub name: String,
    pub dims: Vec<usize>,
    pub data_type: DataType,
    proto: TensorProto,
}

/// Typed values of an initializer.
#[derive(Debug, Clone, PartialEq)]
pub enum TensorData {
    F32(Vec<f32>),
    U8(Vec<u8>),
    I8(Vec<i8>),
    I32(Vec<i32>),
    I64(Vec<i64>),
}

/// A scalar or list attribute value of a node.
#[derive(Debug, Clone, PartialEq)]
pub enum Attribute {
    Float(f32),
    Int(i64),
    String(String),
    Floats(Vec<f32>),
    Ints(Vec<i64>),
    Tensor(TensorProto),
    /// A kind this reader does not convert (graphs, sparse tensors, ...).
    Unsupported(i32),
}

/// One graph node with its attributes decoded.
#[derive(Debug, Clone)]
pub struct Node {
    pub name: String,
    pub op_type: String,
    pub inputs: Vec<String>,
    pub outputs: Vec<String>,
    pub attributes: HashMap<String, Attribute>,
}

impl Node {
    pub fn attr(&self, name: &str) -> Option<&Attribute> {
        self.attributes.get(name)
    }

    pub fn attr_ints(&self, name: &str) -> Option<&[i64]> {
        match self.attributes.get(name) {
            Some(Attribute::Ints(v)) => Some(v),
            _ => None,
        }
    }

    pub fn attr_int(&self, name: &str) -> Option<i64> {
        match self.attributes.get(name) {
            Some(Attribute::Int(v)) => Some(*v),
            _ => None,
        }
    }

    pub fn attr_float(&self, name: &str) -> Option<f32> {
        match self.attributes.get(name) {
            Some(Attribute::Float(v)) => Some(*v),
            _ => None,
        }
    }

    pub fn attr_floats(&self, name: &str) -> Option<&[f32]> {
        match self.attributes.get(name) {
            Some(Attribute::Floats(v)) => Some(v),
            _ => None,
        }
    }

    pub fn attr_string(&self, name: &str) -> Option<&str> {
        match self.attributes.get(name) {
            Some(Attribute::String(v)) => Some(v),
            _ => None,
        }
    }
}

/// A parsed ONNX model: initializers by name and nodes in graph order.
#[derive(Debug, Clone)]
pub struct OnnxModel {
    path: String,
    initializers: Vec<Initializer>,
    by_name: HashMap<String, usize>,
    nodes: Vec<Node>,
    consumers: HashMap<String, Vec<usize>>,
    pub inputs: Vec<String>,
    pub outputs: Vec<String>,
}

impl OnnxModel {
    /// Reads and parses an `.onnx` file.
    pub fn read(path: &Path) -> Result<Self, ModelError> {
        let bytes = std::fs::read(path).map_err(|e| ModelError::Weights {
            path: path.display().to_string(),
            message: format!("cannot read: {e}"),
        })?;
        Self::from_bytes(&bytes, &path.display().to_string())
    }

    /// Parses an in-memory `ModelProto`; `path` only labels errors.
    pub fn from_bytes(bytes: &[u8], path: &str) -> Result<Self, ModelError> {
        let model = ModelProto::decode(bytes).map_err(|e| ModelError::Weights {
            path: path.to_string(),
            message: format!("not an ONNX protobuf: {e}"),
        })?;
        let graph = model.graph.ok_or_else(|| ModelError::Weights {
            path: path.to_string(),
            message: "ONNX model has no graph".into(),
        })?;
        let mut initializers = Vec::with_capacity(graph.initializer.len());
        let mut by_name = HashMap::new();
        for t in graph.initializer {
            let dims = t
                .dims
                .iter()
                .map(|&d| usize::try_from(d))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|_| ModelError::Weights {
                    path: path.to_string(),
                    message: format!("initializer {} has a negative dimension", t.name),
                })?;
            by_name.insert(t.name.clone(), initializers.len());
            initializers.push(Initializer {
                name: t.name.clone(),
                dims,
                data_type: DataType::from_code(t.data_type),
                proto: t,
            });
        }
        let mut nodes = Vec::with_capacity(graph.node.len());
        let mut consumers: HashMap<String, Vec<usize>> = HashMap::new();
        for (idx, n) in graph.node.into_iter().enumerate() {
            for input in &n.input {
                consumers.entry(input.clone()).or_default().push(idx);
            }
            let attributes = n
                .attribute
                .into_iter()
                .map(|a| (a.name.clone(), decode_attribute(a)))
                .collect();
            nodes.push(Node {
                name: n.name,
                op_type: n.op_type,
                inputs: n.input,
                outputs: n.output,
                attributes,
            });
        }
        Ok(Self {
            path: path.to_string(),
            initializers,
            by_name,
            nodes,
            consumers,
            inputs: graph.input.into_iter().map(|v| v.name).collect(),
            outputs: graph.output.into_iter().map(|v| v.name).collect(),
        })
    }

    pub fn path(&self) -> &str {
        &self.path
    }

    pub fn initializers(&self) -> &[Initializer] {
        &self.initializers
    }

    pub fn initializer(&self, name: &str) -> Option<&Initializer> {
        self.by_name.get(name).map(|&i| &self.initializers[i])
    }

    pub fn nodes(&self) -> &[Node] {
        &self.nodes
    }

    pub fn node(&self, name: &str) -> Option<&Node> {
        self.nodes.iter().find(|n| n.name == name)
    }

    /// The nodes that take the tensor `name` as an input, in graph order.
    pub fn consumers(&self, name: &str) -> Vec<&Node> {
        self.consumers
            .get(name)
            .map(|idx| idx.iter().map(|&i| &self.nodes[i]).collect())
            .unwrap_or_default()
    }

    /// The node that outputs tensor `name`, if any.
    pub fn producer(&self, name: &str) -> Option<&Node> {
        self.nodes
            .iter()
            .find(|n| n.outputs.iter().any(|o| o == name))
    }

    /// An initializer's values as an f32 tensor (any numeric type is converted).
    pub fn tensor(&self, name: &str, device: &Device) -> Result<Tensor, ModelError> {
        let init = self.initializer(name).ok_or_else(|| ModelError::Weights {
            path: self.path.clone(),
            message: format!("missing initializer {name}"),
        })?;
        init.to_tensor(device).map_err(|e| self.err(name, e))
    }

    fn err(&self, name: &str, e: ModelError) -> ModelError {
        match e {
            ModelError::Weights { message, .. } => ModelError::Weights {
                path: self.path.clone(),
                message: format!("{name}: {message}"),
            },
            other => other,
        }
    }
}

fn decode_attribute(a: AttributeProto) -> Attribute {
    // AttributeProto.AttributeType: FLOAT=1 INT=2 STRING=3 TENSOR=4 FLOATS=6 INTS=7.
    match a.r#type {
        1 => Attribute::Float(a.f),
        2 => Attribute::Int(a.i),
        3 => Attribute::String(String::from_utf8_lossy(&a.s).into_owned()),
        4 => match a.t {
            Some(t) => Attribute::Tensor(t),
            None => Attribute::Unsupported(4),
        },
        6 => Attribute::Floats(a.floats),
        7 => Attribute::Ints(a.ints),
        other => Attribute::Unsupported(other),
    }
}

fn weights_err(message: String) -> ModelError {
    ModelError::Weights {
        path: String::new(),
        message,
    }
}

/// Reads little-endian fixed-size values out of `raw_data`.
fn from_le<const N: usize, T>(raw: &[u8], conv: fn([u8; N]) -> T) -> Result<Vec<T>, ModelError> {
    if raw.len() % N != 0 {
        return Err(weights_err(format!(
            "raw_data length {} is not a multiple of {N}",
            raw.len()
        )));
    }
    Ok(raw
        .chunks_exact(N)
        .map(|c| {
            let mut b = [0u8; N];
            b.copy_from_slice(c);
            conv(b)
        })
        .collect())
}

impl Initializer {
    pub fn numel(&self) -> usize {
        self.dims.iter().product()
    }

    /// The raw little-endian bytes, empty when the values are in the typed fields.
    pub fn raw_bytes(&self) -> &[u8] {
        &self.proto.raw_data
    }

    /// The values, typed by the tensor's data type, checked against the dims.
    pub fn data(&self) -> Result<TensorData, ModelError> {
        let raw = &self.proto.raw_data;
        let p = &self.proto;
        let data = match self.data_type {
            DataType::F32 if raw.is_empty() => TensorData::F32(p.float_data.clone()),
            DataType::F32 => TensorData::F32(from_le(raw, f32::from_le_bytes)?),
            // ONNX stores u8/i8/i32 in int32_data when raw_data is absent.
            DataType::U8 if raw.is_empty() => {
                TensorData::U8(p.int32_data.iter().map(|&v| v as u8).collect())
            }
            DataType::U8 => TensorData::U8(raw.clone()),
            DataType::I8 if raw.is_empty() => {
                TensorData::I8(p.int32_data.iter().map(|&v| v as i8).collect())
            }
            DataType::I8 => TensorData::I8(raw.iter().map(|&b| b as i8).collect()),
            DataType::I32 if raw.is_empty() => TensorData::I32(p.int32_data.clone()),
            DataType::I32 => TensorData::I32(from_le(raw, i32::from_le_bytes)?),
            DataType::I64 if raw.is_empty() => TensorData::I64(p.int64_data.clone()),
            DataType::I64 => TensorData::I64(from_le(raw, i64::from_le_bytes)?),
            DataType::Other(c) => {
                return Err(weights_err(format!("unsupported ONNX data type {c}")));
            }
        };
        let len = match &data {
            TensorData::F32(v) => v.len(),
            TensorData::U8(v) => v.len(),
            TensorData::I8(v) => v.len(),
            TensorData::I32(v) => v.len(),
            TensorData::I64(v) => v.len(),
        };
        if len != self.numel() {
            return Err(weights_err(format!(
                "{} values for dims {:?}",
                len, self.dims
            )));
        }
        Ok(data)
    }

    pub fn to_f32_vec(&self) -> Result<Vec<f32>, ModelError> {
        Ok(match self.data()? {
            TensorData::F32(v) => v,
            TensorData::U8(v) => v.into_iter().map(f32::from).collect(),
            TensorData::I8(v) => v.into_iter().map(f32::from).collect(),
            TensorData::I32(v) => v.into_iter().map(|x| x as f32).collect(),
            TensorData::I64(v) => v.into_iter().map(|x| x as f32).collect(),
        })
    }

    pub fn to_i64_vec(&self) -> Result<Vec<i64>, ModelError> {
        Ok(match self.data()? {
            TensorData::F32(v) => v.into_iter().map(|x| x as i64).collect(),
            TensorData::U8(v) => v.into_iter().map(i64::from).collect(),
            TensorData::I8(v) => v.into_iter().map(i64::from).collect(),
            TensorData::I32(v) => v.into_iter().map(i64::from).collect(),
            TensorData::I64(v) => v,
        })
    }

    /// The values as an f32 candle tensor with the initializer's shape (integers are converted).
    pub fn to_tensor(&self, device: &Device) -> Result<Tensor, ModelError> {
        let values = self.to_f32_vec()?;
        Ok(Tensor::from_vec(values, self.dims.clone(), device)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn models_dir() -> PathBuf {
        std::env::var_os("TTS_MODELS_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../models"))
    }

    fn load(rel: &str) -> OnnxModel {
        let path = models_dir().join(rel);
        assert!(
            path.exists(),
            "{} is missing: run scripts/fetch_models.py",
            path.display()
        );
        match OnnxModel::read(&path) {
            Ok(m) => m,
            Err(e) => panic!("cannot parse {}: {e}", path.display()),
        }
    }

    #[test]
    fn piper_joe_initializers_and_shapes_are_read() -> Result<(), ModelError> {
        let m = load("piper/en_US-joe-medium.onnx");
        assert_eq!(m.initializers().len(), 401);
        let sid = m.initializer("sid").expect("sid (phoneme embedding)");
        assert_eq!(sid.dims, vec![256, 192]);
        assert_eq!(sid.data_type, DataType::F32);
        let t = m.tensor("enc_p.encoder.attn_layers.0.emb_rel_k", &Device::Cpu)?;
        assert_eq!(t.dims(), &[1, 9, 96]);
        assert_eq!(m.inputs, vec!["input", "input_lengths", "scales"]);
        assert_eq!(m.outputs, vec!["output"]);
        Ok(())
    }

    #[test]
    fn anonymous_piper_conv_weights_are_named_by_their_consumer() {
        let m = load("piper/en_US-joe-medium.onnx");
        let anon: Vec<_> = m
            .initializers()
            .iter()
            .filter(|i| i.name.starts_with("onnx::"))
            .collect();
        assert!(!anon.is_empty());
        for init in anon {
            let consumers = m.consumers(&init.name);
            assert!(!consumers.is_empty(), "{} has no consumer", init.name);
        }
        let conv = m
            .node("/flow/flows.0/enc/in_layers.0/Conv")
            .expect("flow conv node");
        assert_eq!(conv.op_type, "Conv");
        assert!(conv.attr_ints("kernel_shape").is_some());
    }

    #[test]
    fn kokoro_int8_initializers_are_typed() -> Result<(), ModelError> {
        let m = load("kokoro/kokoro-v1.0.int8.onnx");
        assert_eq!(m.initializers().len(), 775);
        let emb = m
            .initializer("encoder.bert.embeddings.word_embeddings.weight_quantized")
            .expect("quantised ALBERT embedding");
        assert_eq!(emb.dims, vec![178, 128]);
        assert_eq!(emb.data_type, DataType::I8);
        // Scalars stored in the typed fields (no raw_data) still decode.
        let scale = m
            .initializer("encoder.bert.embeddings.word_embeddings.weight_scale")
            .expect("embedding scale");
        assert_eq!(scale.to_f32_vec()?.len(), 1);
        let mut seen_u8_or_i8 = false;
        for init in m.initializers() {
            if matches!(init.data_type, DataType::U8 | DataType::I8) {
                let data = init.data()?;
                assert!(matches!(data, TensorData::U8(_) | TensorData::I8(_)));
                seen_u8_or_i8 = true;
                break;
            }
        }
        assert!(seen_u8_or_i8, "the int8 model has quantised initializers");
        Ok(())
    }
}
