//! Piper ONNX initializers → PyTorch module names → a candle `VarBuilder`, plus the graph
//! attributes (dilations, paddings, strides) that the `.onnx.json` does not carry.
//!
//! The export keeps most PyTorch names but renames the phoneme embedding (`sid` in single-speaker
//! voices) and leaves weight-normed convs anonymous (`onnx::Conv_8168`). Every weight is named
//! through the node that consumes it instead: `/flow/flows.6/enc/in_layers.0/Conv` input 1 is
//! `flow.flows.6.enc.in_layers.0.weight`.

use std::collections::HashMap;

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;

use crate::onnx::{DataType, Node, OnnxModel};
use crate::ModelError;

/// The folded `exp(-logs)` of the SDP's first elementwise-affine flow.
const FOLDED_DP_EXP: &str = "/dp/flows.0/Exp_output_0";

/// Module-named weights of a Piper voice and its graph, kept for attribute look-ups.
pub struct PiperWeights {
    pub tensors: HashMap<String, Tensor>,
    pub onnx: OnnxModel,
}

/// The PyTorch parameter name for input `index` of `node`, if the node is a parametrised layer
/// (`table` says the tensor is a float matrix, as an embedding table is).
fn param_name(node: &Node, index: usize, table: bool) -> Option<String> {
    let (path, op) = node.name.rsplit_once('/')?;
    let param = match (node.op_type.as_str(), index) {
        ("Conv" | "ConvTranspose", 1) => "weight",
        ("Conv" | "ConvTranspose", 2) => "bias",
        ("Gather", 0) if table => "weight",
        _ => return None,
    };
    if !op.starts_with(node.op_type.as_str()) {
        return None;
    }
    let module = path.trim_start_matches('/').replace('/', ".");
    if module.is_empty() {
        return None;
    }
    Some(format!("{module}.{param}"))
}

impl PiperWeights {
    pub fn load(onnx: OnnxModel, device: &Device) -> Result<Self, ModelError> {
        let mut tensors = HashMap::new();
        for init in onnx.initializers() {
            // Graph constants (shapes, indices) are not weights.
            let consumer_name = onnx.consumers(&init.name).into_iter().find_map(|node| {
                let index = node.inputs.iter().position(|i| i == &init.name)?;
                let table = init.dims.len() == 2 && init.data_type == DataType::F32;
                param_name(node, index, table)
            });
            let name = match consumer_name {
                Some(n) => n,
                None if init.name.starts_with('/') || init.name.starts_with("onnx::") => continue,
                None if init.name.contains('.') => init.name.clone(),
                None => continue,
            };
            tensors.insert(name, init.to_tensor(device)?);
        }
        if !tensors.contains_key("dp.flows.0.logs") {
            if let Some(init) = onnx.initializer(FOLDED_DP_EXP) {
                // exp(-logs) was constant-folded: logs = -ln(value).
                let logs = init.to_tensor(device)?.log()?.neg()?;
                tensors.insert("dp.flows.0.logs".to_string(), logs);
            }
        }
        Ok(Self { tensors, onnx })
    }

    pub fn var_builder(&self, device: &Device) -> VarBuilder<'static> {
        VarBuilder::from_tensors(self.tensors.clone(), DType::F32, device)
    }

    pub fn contains(&self, name: &str) -> bool {
        self.tensors.contains_key(name)
    }

    pub fn dims(&self, name: &str) -> Result<Vec<usize>, ModelError> {
        self.tensors
            .get(name)
            .map(|t| t.dims().to_vec())
            .ok_or_else(|| self.missing(name))
    }

    /// How many `prefix.{i}` submodules exist (a prefix followed by consecutive indices).
    pub fn count(&self, prefix: &str) -> usize {
        (0..)
            .take_while(|i| {
                let p = format!("{prefix}.{i}.");
                self.tensors.keys().any(|k| k.starts_with(&p))
            })
            .count()
    }

    /// Indices `i` for which some `prefix.{i}.*` weight exists (gaps allowed), sorted.
    pub fn indices(&self, prefix: &str) -> Vec<usize> {
        let p = format!("{prefix}.");
        let mut idx: Vec<usize> = self
            .tensors
            .keys()
            .filter_map(|k| k.strip_prefix(&p)?.split('.').next()?.parse().ok())
            .collect();
        idx.sort_unstable();
        idx.dedup();
        idx
    }

    /// The graph node that implements module `module` (`dec.ups.0`), found through its weight.
    pub fn node_for(&self, module: &str) -> Result<&Node, ModelError> {
        // ONNX names nest modules with '/', keeping list indices after '.': `/dp/convs/convs_sep.0/Conv`.
        self.onnx
            .nodes()
            .iter()
            .find(|n| {
                matches!(n.op_type.as_str(), "Conv" | "ConvTranspose")
                    && n.name.rsplit_once('/').is_some_and(|(path, _)| {
                        path.trim_start_matches('/').replace('/', ".") == module
                    })
            })
            .ok_or_else(|| ModelError::Weights {
                path: self.onnx.path().to_string(),
                message: format!("no Conv node for module {module}"),
            })
    }

    /// `(dilation, padding, stride)` of a conv module, read from its node's attributes.
    pub fn conv_attrs(&self, module: &str) -> Result<ConvAttrs, ModelError> {
        let node = self.node_for(module)?;
        let first = |name: &str, default: i64| {
            node.attr_ints(name)
                .and_then(|v| v.first().copied())
                .unwrap_or(default)
        };
        let to_usize = |v: i64, what: &str| {
            usize::try_from(v).map_err(|_| ModelError::Weights {
                path: self.onnx.path().to_string(),
                message: format!("{module}: negative {what}"),
            })
        };
        Ok(ConvAttrs {
            dilation: to_usize(first("dilations", 1), "dilation")?,
            padding: to_usize(first("pads", 0), "padding")?,
            stride: to_usize(first("strides", 1), "stride")?,
            groups: to_usize(node.attr_int("group").unwrap_or(1), "group")?,
        })
    }

    pub fn missing(&self, name: &str) -> ModelError {
        ModelError::Weights {
            path: self.onnx.path().to_string(),
            message: format!("missing weight {name}"),
        }
    }
}

/// Conv hyperparameters from an ONNX node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConvAttrs {
    pub dilation: usize,
    pub padding: usize,
    pub stride: usize,
    pub groups: usize,
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    #[test]
    fn anonymous_and_renamed_piper_weights_get_module_names() -> Result<(), ModelError> {
        let dir = std::env::var_os("TTS_MODELS_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../models"));
        let path = dir.join("piper/en_US-joe-medium.onnx");
        assert!(
            path.exists(),
            "{} missing: run scripts/fetch_models.py",
            path.display()
        );
        let w = PiperWeights::load(OnnxModel::read(&path)?, &Device::Cpu)?;
        // `onnx::Conv_*` named through `/flow/flows.6/enc/in_layers.0/Conv`.
        assert_eq!(
            w.dims("flow.flows.6.enc.in_layers.0.weight")?,
            vec![384, 192, 5]
        );
        assert_eq!(
            w.dims("flow.flows.0.enc.res_skip_layers.3.weight")?,
            vec![192, 192, 1]
        );
        // The phoneme embedding is exported as `sid`.
        assert_eq!(w.dims("enc_p.emb.weight")?, vec![256, 192]);
        // exp(-logs) was folded; logs is recovered.
        assert_eq!(w.dims("dp.flows.0.logs")?, vec![2, 1]);
        assert!(!w
            .tensors
            .keys()
            .any(|k| k.starts_with("onnx::") || k.starts_with('/')));
        let attrs = w.conv_attrs("dec.ups.2")?;
        assert_eq!((attrs.stride, attrs.padding), (4, 2));
        assert_eq!(w.conv_attrs("dp.convs.convs_sep.2")?.dilation, 9);
        Ok(())
    }
}
