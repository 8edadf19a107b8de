//! Kokoro weights under the official parameter names (`KModel.state_dict()` without the
//! `module.` prefix), from either checkpoint the project can meet:
//!
//! * the int8 ONNX export (kokoro-onnx's `kokoro-v1.0.int8.onnx`): every weight is dequantised
//!   to f32 and named through the graph node that consumes it, because quantised and
//!   weight-norm-folded tensors lose their names (`onnx::LSTM_6930`, `/encoder/F0.0/Mul_1…`);
//! * the official `kokoro-v1_0.pth` state dict: `module.` stripped, weight norm fused.
//!
//! Weight-normed modules come out as one folded `<module>.weight`, which is what inference
//! uses. Dequantisation, per kind (see `shared/notes/kokoro-onnx-map.md`):
//! embeddings `(q − zp)·s` per tensor; linear int8 `[in, out]` per output channel, transposed;
//! conv uint8 per tensor; LSTM int8 `[2, in, 4H]` per direction, transposed, gates reordered
//! from ONNX (i, o, f, c) to PyTorch (i, f, g, o), bias `[2, 8H]` split into `b_ih ‖ b_hh`.

use std::collections::HashMap;

use candle_core::{DType, Device, Tensor};

use super::KokoroConfig;
use crate::onnx::{Node, OnnxModel};
use crate::ModelError;

/// How an official tensor is stored and recovered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParamKind {
    /// `nn.Embedding.weight`.
    Embedding,
    /// `nn.Linear.weight` `[out, in]`.
    Linear,
    /// The `weight_v` of a weight-normed `Conv1d` (`weight_g` is [`ParamKind::WeightNormG`]).
    WeightNormConv,
    /// The `weight_v` of a weight-normed `ConvTranspose1d`.
    WeightNormConvTranspose,
    /// The `weight_g` of a weight-normed module.
    WeightNormG,
    /// A plain `Conv1d.weight`.
    Conv,
    /// One of the eight tensors of a bidirectional `nn.LSTM`.
    Lstm,
    /// Stored as is (biases, norms, Snake alphas).
    Float,
}

/// One tensor of the official checkpoint.
#[derive(Debug, Clone, PartialEq)]
pub struct ParamSpec {
    pub name: String,
    pub shape: Vec<usize>,
    pub kind: ParamKind,
    /// The owning module path (`decoder.generator.ups.0`), for weights named through nodes.
    pub module: String,
}

/// The official parameter list of `KModel` (checkpoint layout: `weight_g`/`weight_v` separate),
/// 548 tensors for Kokoro-82M v1.0.
pub fn official_parameters(cfg: &KokoroConfig) -> Vec<ParamSpec> {
    let mut p = Vec::new();
    let mut add = |name: String, shape: Vec<usize>, kind: ParamKind, module: &str| {
        p.push(ParamSpec {
            name,
            shape,
            kind,
            module: module.to_string(),
        })
    };
    let sd = cfg.style_dim;
    let hd = cfg.hidden_dim;
    let nt = cfg.n_token;
    macro_rules! linear {
        ($m:expr, $i:expr, $o:expr) => {{
            let m: String = $m;
            add(format!("{m}.weight"), vec![$o, $i], ParamKind::Linear, &m);
            add(format!("{m}.bias"), vec![$o], ParamKind::Float, &m);
        }};
    }
    macro_rules! wn_conv {
        ($m:expr, $i:expr, $o:expr, $k:expr, $bias:expr) => {{
            let m: String = $m;
            add(
                format!("{m}.weight_g"),
                vec![$o, 1, 1],
                ParamKind::WeightNormG,
                &m,
            );
            add(
                format!("{m}.weight_v"),
                vec![$o, $i, $k],
                ParamKind::WeightNormConv,
                &m,
            );
            if $bias {
                add(format!("{m}.bias"), vec![$o], ParamKind::Float, &m);
            }
        }};
    }
    macro_rules! wn_convt {
        ($m:expr, $i:expr, $o:expr, $k:expr, $groups:expr) => {{
            let m: String = $m;
            add(
                format!("{m}.weight_g"),
                vec![$i, 1, 1],
                ParamKind::WeightNormG,
                &m,
            );
            add(
                format!("{m}.weight_v"),
                vec![$i, $o / $groups, $k],
                ParamKind::WeightNormConvTranspose,
                &m,
            );
            add(format!("{m}.bias"), vec![$o], ParamKind::Float, &m);
        }};
    }
    macro_rules! lstm {
        ($m:expr, $i:expr, $h:expr) => {{
            let m: String = $m;
            for sfx in ["", "_reverse"] {
                add(
                    format!("{m}.weight_ih_l0{sfx}"),
                    vec![4 * $h, $i],
                    ParamKind::Lstm,
                    &m,
                );
                add(
                    format!("{m}.weight_hh_l0{sfx}"),
                    vec![4 * $h, $h],
                    ParamKind::Lstm,
                    &m,
                );
                add(
                    format!("{m}.bias_ih_l0{sfx}"),
                    vec![4 * $h],
                    ParamKind::Lstm,
                    &m,
                );
                add(
                    format!("{m}.bias_hh_l0{sfx}"),
                    vec![4 * $h],
                    ParamKind::Lstm,
                    &m,
                );
            }
        }};
    }
    macro_rules! adain_resblk {
        ($m:expr, $di:expr, $do:expr, $up:expr) => {{
            let m: String = $m;
            wn_conv!(format!("{m}.conv1"), $di, $do, 3, true);
            wn_conv!(format!("{m}.conv2"), $do, $do, 3, true);
            linear!(format!("{m}.norm1.fc"), sd, 2 * $di);
            linear!(format!("{m}.norm2.fc"), sd, 2 * $do);
            if $di != $do {
                wn_conv!(format!("{m}.conv1x1"), $di, $do, 1, false);
            }
            if $up {
                wn_convt!(format!("{m}.pool"), $di, $di, 3, $di);
            }
        }};
    }
    macro_rules! adain_resblock1 {
        ($m:expr, $ch:expr, $k:expr) => {{
            let m: String = $m;
            for j in 0..3 {
                wn_conv!(format!("{m}.convs1.{j}"), $ch, $ch, $k, true);
            }
            for j in 0..3 {
                wn_conv!(format!("{m}.convs2.{j}"), $ch, $ch, $k, true);
            }
            for j in 0..3 {
                linear!(format!("{m}.adain1.{j}.fc"), sd, 2 * $ch);
            }
            for j in 0..3 {
                linear!(format!("{m}.adain2.{j}.fc"), sd, 2 * $ch);
            }
            for j in 0..3 {
                add(
                    format!("{m}.alpha1.{j}"),
                    vec![1, $ch, 1],
                    ParamKind::Float,
                    &m,
                );
            }
            for j in 0..3 {
                add(
                    format!("{m}.alpha2.{j}"),
                    vec![1, $ch, 1],
                    ParamKind::Float,
                    &m,
                );
            }
        }};
    }
    let pb = &cfg.plbert;
    let (e, h, inter) = (pb.embedding_size, pb.hidden_size, pb.intermediate_size);
    for (n, rows) in [
        ("word_embeddings", nt),
        ("position_embeddings", pb.max_position_embeddings),
        ("token_type_embeddings", pb.type_vocab_size),
    ] {
        let m = format!("bert.embeddings.{n}");
        add(
            format!("{m}.weight"),
            vec![rows, e],
            ParamKind::Embedding,
            &m,
        );
    }
    add(
        "bert.embeddings.LayerNorm.weight".into(),
        vec![e],
        ParamKind::Float,
        "",
    );
    add(
        "bert.embeddings.LayerNorm.bias".into(),
        vec![e],
        ParamKind::Float,
        "",
    );
    linear!("bert.encoder.embedding_hidden_mapping_in".to_string(), e, h);
    let l = "bert.encoder.albert_layer_groups.0.albert_layers.0";
    add(
        format!("{l}.full_layer_layer_norm.weight"),
        vec![h],
        ParamKind::Float,
        "",
    );
    add(
        format!("{l}.full_layer_layer_norm.bias"),
        vec![h],
        ParamKind::Float,
        "",
    );
    for q in ["query", "key", "value", "dense"] {
        linear!(format!("{l}.attention.{q}"), h, h);
    }
    add(
        format!("{l}.attention.LayerNorm.weight"),
        vec![h],
        ParamKind::Float,
        "",
    );
    add(
        format!("{l}.attention.LayerNorm.bias"),
        vec![h],
        ParamKind::Float,
        "",
    );
    linear!(format!("{l}.ffn"), h, inter);
    linear!(format!("{l}.ffn_output"), inter, h);
    linear!("bert.pooler".to_string(), h, h);
    linear!("bert_encoder".to_string(), h, hd);
    for k in 0..cfg.n_layer {
        lstm!(
            format!("predictor.text_encoder.lstms.{}", 2 * k),
            hd + sd,
            hd / 2
        );
        linear!(
            format!("predictor.text_encoder.lstms.{}.fc", 2 * k + 1),
            sd,
            2 * hd
        );
    }
    lstm!("predictor.lstm".to_string(), hd + sd, hd / 2);
    linear!(
        "predictor.duration_proj.linear_layer".to_string(),
        hd,
        cfg.max_dur
    );
    lstm!("predictor.shared".to_string(), hd + sd, hd / 2);
    for br in ["F0", "N"] {
        adain_resblk!(format!("predictor.{br}.0"), hd, hd, false);
        adain_resblk!(format!("predictor.{br}.1"), hd, hd / 2, true);
        adain_resblk!(format!("predictor.{br}.2"), hd / 2, hd / 2, false);
    }
    for br in ["F0_proj", "N_proj"] {
        let m = format!("predictor.{br}");
        add(
            format!("{m}.weight"),
            vec![1, hd / 2, 1],
            ParamKind::Conv,
            &m,
        );
        add(format!("{m}.bias"), vec![1], ParamKind::Float, &m);
    }
    add(
        "text_encoder.embedding.weight".into(),
        vec![nt, hd],
        ParamKind::Embedding,
        "text_encoder.embedding",
    );
    for k in 0..cfg.n_layer {
        wn_conv!(
            format!("text_encoder.cnn.{k}.0"),
            hd,
            hd,
            cfg.text_encoder_kernel_size,
            true
        );
        add(
            format!("text_encoder.cnn.{k}.1.gamma"),
            vec![hd],
            ParamKind::Float,
            "",
        );
        add(
            format!("text_encoder.cnn.{k}.1.beta"),
            vec![hd],
            ParamKind::Float,
            "",
        );
    }
    lstm!("text_encoder.lstm".to_string(), hd, hd / 2);
    let ist = &cfg.istftnet;
    adain_resblk!("decoder.encode".to_string(), hd + 2, 1024, false);
    for k in 0..3 {
        adain_resblk!(format!("decoder.decode.{k}"), 1024 + 2 + 64, 1024, false);
    }
    adain_resblk!("decoder.decode.3".to_string(), 1024 + 2 + 64, 512, true);
    wn_conv!("decoder.F0_conv".to_string(), 1, 1, 3, true);
    wn_conv!("decoder.N_conv".to_string(), 1, 1, 3, true);
    wn_conv!("decoder.asr_res.0".to_string(), 512, 64, 1, true);
    let g = "decoder.generator";
    linear!(format!("{g}.m_source.l_linear"), 9, 1);
    let c0 = ist.upsample_initial_channel;
    let nfft = ist.gen_istft_n_fft;
    let n_up = ist.upsample_rates.len();
    for i in 0..n_up {
        let c = c0 >> (i + 1);
        let k = if i + 1 < n_up {
            2 * ist.upsample_rates[i + 1..].iter().product::<usize>()
        } else {
            1
        };
        let m = format!("{g}.noise_convs.{i}");
        add(
            format!("{m}.weight"),
            vec![c, nfft + 2, k],
            ParamKind::Conv,
            &m,
        );
        add(format!("{m}.bias"), vec![c], ParamKind::Float, &m);
    }
    for i in 0..n_up {
        wn_convt!(
            format!("{g}.ups.{i}"),
            c0 >> i,
            c0 >> (i + 1),
            ist.upsample_kernel_sizes[i],
            1
        );
    }
    for i in 0..n_up {
        let c = c0 >> (i + 1);
        for (j, &k) in ist.resblock_kernel_sizes.iter().enumerate() {
            adain_resblock1!(
                format!("{g}.resblocks.{}", i * ist.resblock_kernel_sizes.len() + j),
                c,
                k
            );
        }
    }
    adain_resblock1!(format!("{g}.noise_res.0"), c0 / 2, 7);
    adain_resblock1!(format!("{g}.noise_res.1"), c0 / 4, 11);
    wn_conv!(format!("{g}.conv_post"), c0 / 4, nfft + 2, 7, true);
    p
}

/// The names the model code reads: weight-norm pairs become one `<module>.weight`, and the
/// unused `bert.pooler` is dropped.
pub fn inference_names(cfg: &KokoroConfig) -> Vec<(String, Vec<usize>)> {
    let mut out = Vec::new();
    for spec in official_parameters(cfg) {
        if spec.name.starts_with("bert.pooler.") {
            continue;
        }
        match spec.kind {
            ParamKind::WeightNormG => {}
            ParamKind::WeightNormConv | ParamKind::WeightNormConvTranspose => {
                out.push((format!("{}.weight", spec.module), spec.shape))
            }
            _ => out.push((spec.name, spec.shape)),
        }
    }
    out
}

fn werr(path: &str, message: impl Into<String>) -> ModelError {
    ModelError::Weights {
        path: path.to_string(),
        message: message.into(),
    }
}

/// Node-name scopes an official module may sit under in the export's graph.
fn onnx_scopes(module: &str) -> Vec<String> {
    let (comp, rest) = module.split_once('.').unwrap_or((module, ""));
    // "resblocks.4.convs1.0" → ["resblocks.4", "convs1.0"]: numeric segments join their parent.
    let mut segs: Vec<String> = Vec::new();
    for s in rest.split('.').filter(|s| !s.is_empty()) {
        match segs.last_mut() {
            Some(last) if s.bytes().all(|b| b.is_ascii_digit()) => {
                last.push('.');
                last.push_str(s);
            }
            _ => segs.push(s.to_string()),
        }
    }
    let mut fixed = Vec::new();
    for s in segs {
        // Sequential-inside-ModuleList scopes nest one level deeper in the export.
        let parts: Vec<&str> = s.split('.').collect();
        if parts.len() == 3 && parts[0] == "cnn" {
            fixed.push(format!("cnn.{}", parts[1]));
            fixed.push(s);
        } else if s == "asr_res.0" {
            fixed.push("asr_res".to_string());
            fixed.push(s);
        } else {
            fixed.push(s);
        }
    }
    let tail = fixed.join("/");
    match comp {
        "bert" => vec![format!("/encoder/bert/{tail}")],
        "bert_encoder" => vec!["/encoder/bert_encoder".to_string()],
        "text_encoder" => vec![format!("/encoder/text_encoder/{tail}")],
        // The predictor's F0/N/shared nodes sit directly under /encoder.
        "predictor" => vec![
            format!("/encoder/predictor/{tail}"),
            format!("/encoder/{tail}"),
        ],
        "decoder" => vec![format!("/decoder/decoder/{tail}")],
        _ => Vec::new(),
    }
}

/// The ONNX initializer prefix of an official top-level component.
fn onnx_prefix(comp: &str) -> Option<&'static str> {
    Some(match comp {
        "bert" => "encoder.bert",
        "bert_encoder" => "encoder.bert_encoder",
        "text_encoder" => "encoder.text_encoder",
        "predictor" => "encoder.predictor",
        "decoder" => "decoder.decoder",
        _ => return None,
    })
}

/// Tensors by official name suffix (`weight_ih_l0`, …) with their values.
type NamedValues = Vec<(String, Vec<f32>)>;

/// Reads the int8 ONNX export and returns f32 tensors under the names of [`inference_names`].
pub struct OnnxWeights<'a> {
    model: &'a OnnxModel,
    nodes: HashMap<&'a str, &'a Node>,
}

impl<'a> OnnxWeights<'a> {
    pub fn new(model: &'a OnnxModel) -> Self {
        let nodes = model.nodes().iter().map(|n| (n.name.as_str(), n)).collect();
        Self { model, nodes }
    }

    fn err(&self, message: impl Into<String>) -> ModelError {
        werr(self.model.path(), message)
    }

    fn find_node(&self, module: &str, suffixes: &[&str]) -> Option<&'a Node> {
        for scope in onnx_scopes(module) {
            for sfx in suffixes {
                if let Some(n) = self.nodes.get(format!("{scope}/{sfx}").as_str()) {
                    return Some(n);
                }
            }
        }
        None
    }

    fn values(&self, name: &str) -> Result<(Vec<f32>, Vec<usize>), ModelError> {
        let init = self
            .model
            .initializer(name)
            .ok_or_else(|| self.err(format!("missing initializer {name}")))?;
        Ok((init.to_f32_vec()?, init.dims.clone()))
    }

    fn has(&self, name: &str) -> bool {
        self.model.initializer(name).is_some()
    }

    fn input<'n>(&self, node: &'n Node, i: usize) -> Result<&'n str, ModelError> {
        node.inputs
            .get(i)
            .map(|s| s.as_str())
            .ok_or_else(|| self.err(format!("node {} has no input {i}", node.name)))
    }

    /// `<W>_quantized` → `<W>_scale`, else the scale input of the `…_scales_mul` node.
    fn scale_of(&self, qname: &str, node: &Node) -> Result<Vec<f32>, ModelError> {
        let sname = format!(
            "{}_scale",
            qname.strip_suffix("_quantized").unwrap_or(qname)
        );
        if self.has(&sname) {
            return Ok(self.values(&sname)?.0);
        }
        let mul = self
            .nodes
            .get(format!("{}_scales_mul", node.name).as_str())
            .ok_or_else(|| self.err(format!("no scale for {qname}")))?;
        Ok(self.values(self.input(mul, 1)?)?.0)
    }

    fn embedding(&self, module: &str) -> Result<Option<Vec<f32>>, ModelError> {
        let (Some(g), Some(d)) = (
            self.find_node(module, &["Gather_quant"]),
            self.find_node(module, &["Gather_quant_DequantizeLinear"]),
        ) else {
            return Ok(None);
        };
        let (q, _) = self.values(self.input(g, 0)?)?;
        let s = self.values(self.input(d, 1)?)?.0;
        let zp = self.values(self.input(d, 2)?)?.0;
        let (s, zp) = (s[0], zp[0]);
        Ok(Some(q.into_iter().map(|v| (v - zp) * s).collect()))
    }

    fn linear(&self, module: &str, out: usize, inp: usize) -> Result<Option<Vec<f32>>, ModelError> {
        if let Some(n) = self.find_node(module, &["MatMul_quant", "Gemm_MatMul_quant"]) {
            let qname = self.input(n, 1)?;
            let (q, dims) = self.values(qname)?;
            if dims != [inp, out] {
                return Err(self.err(format!(
                    "{module}: quantised weight dims {dims:?}, want [{inp}, {out}]"
                )));
            }
            let zp = self.values(self.input(n, 3)?)?.0;
            let s = self.scale_of(qname, n)?;
            let per = |v: &[f32], o: usize| if v.len() == 1 { v[0] } else { v[o] };
            // [in, out] per-output-channel → PyTorch [out, in].
            let mut w = vec![0f32; out * inp];
            for i in 0..inp {
                for o in 0..out {
                    w[o * inp + i] = (q[i * out + o] - per(&zp, o)) * per(&s, o);
                }
            }
            return Ok(Some(w));
        }
        if let Some(n) = self.find_node(module, &["MatMul"]) {
            let wname = self.input(n, 1)?;
            if self.has(wname) {
                let (q, _) = self.values(wname)?;
                let mut w = vec![0f32; out * inp];
                for i in 0..inp {
                    for o in 0..out {
                        w[o * inp + i] = q[i * out + o];
                    }
                }
                return Ok(Some(w));
            }
        }
        Ok(None)
    }

    /// Conv / ConvTranspose weights (folded if weight-normed), same layout as PyTorch.
    fn conv(&self, module: &str) -> Result<Option<Vec<f32>>, ModelError> {
        if let Some(n) = self.find_node(module, &["Conv_quant"]) {
            let qname = self.input(n, 1)?;
            let (q, _) = self.values(qname)?;
            let zp = self.values(self.input(n, 3)?)?.0;
            let s = self.scale_of(qname, n)?;
            if zp.len() != 1 || s.len() != 1 {
                return Err(self.err(format!("{module}: expected per-tensor conv quantisation")));
            }
            return Ok(Some(q.into_iter().map(|v| (v - zp[0]) * s[0]).collect()));
        }
        if let Some(n) = self.find_node(module, &["Conv", "ConvTranspose"]) {
            let wname = self.input(n, 1)?;
            if self.has(wname) {
                return Ok(Some(self.values(wname)?.0));
            }
        }
        Ok(None)
    }

    /// The eight PyTorch tensors of one bidirectional LSTM, keyed by their official suffix.
    fn lstm(&self, module: &str) -> Result<Option<NamedValues>, ModelError> {
        let Some(n) = self.find_node(module, &["LSTM_quant"]) else {
            return Ok(None);
        };
        let h = n
            .attr_int("hidden_size")
            .ok_or_else(|| self.err(format!("{}: no hidden_size", n.name)))?
            as usize;
        let (wq, wd) = self.values(self.input(n, 1)?)?;
        let (rq, _) = self.values(self.input(n, 2)?)?;
        let (b, _) = self.values(self.input(n, 3)?)?;
        let ws = self.values(self.input(n, 8)?)?.0;
        let wz = self.values(self.input(n, 9)?)?.0;
        let rs = self.values(self.input(n, 10)?)?.0;
        let rz = self.values(self.input(n, 11)?)?.0;
        let inp = wd[1];
        // ONNX gate blocks (i, o, f, c) → PyTorch (i, f, g, o).
        const ORDER: [usize; 4] = [0, 2, 3, 1];
        // q: [2, rows, 4H] for direction d → [4H, rows] reordered.
        let deq = |q: &[f32], s: &[f32], z: &[f32], rows: usize, d: usize| -> Vec<f32> {
            let g4 = 4 * h;
            let per = |v: &[f32], c: usize| {
                if v.len() == 2 {
                    v[d]
                } else {
                    v[d * g4 + c]
                }
            };
            let mut out = vec![0f32; g4 * rows];
            for (blk, &src_blk) in ORDER.iter().enumerate() {
                for j in 0..h {
                    let c = src_blk * h + j;
                    let o = blk * h + j;
                    for r in 0..rows {
                        out[o * rows + r] = (q[d * rows * g4 + r * g4 + c] - per(z, c)) * per(s, c);
                    }
                }
            }
            out
        };
        let reorder = |v: &[f32]| -> Vec<f32> {
            ORDER
                .iter()
                .flat_map(|&blk| v[blk * h..(blk + 1) * h].to_vec())
                .collect()
        };
        let mut out = Vec::with_capacity(8);
        for (d, sfx) in ["", "_reverse"].iter().enumerate() {
            out.push((format!("weight_ih_l0{sfx}"), deq(&wq, &ws, &wz, inp, d)));
            out.push((format!("weight_hh_l0{sfx}"), deq(&rq, &rs, &rz, h, d)));
            let bd = &b[d * 8 * h..(d + 1) * 8 * h];
            out.push((format!("bias_ih_l0{sfx}"), reorder(&bd[..4 * h])));
            out.push((format!("bias_hh_l0{sfx}"), reorder(&bd[4 * h..])));
        }
        Ok(Some(out))
    }

    fn float(&self, name: &str) -> Result<Option<Vec<f32>>, ModelError> {
        let (comp, rest) = name.split_once('.').unwrap_or((name, ""));
        let Some(prefix) = onnx_prefix(comp) else {
            return Ok(None);
        };
        let oname = format!("{prefix}.{rest}");
        if self.has(&oname) {
            return Ok(Some(self.values(&oname)?.0));
        }
        Ok(None)
    }

    /// Every inference tensor, dequantised to f32 under its official name. Fails naming the
    /// first tensor that cannot be found or has the wrong size.
    pub fn extract(
        &self,
        cfg: &KokoroConfig,
        device: &Device,
    ) -> Result<HashMap<String, Tensor>, ModelError> {
        let mut out = HashMap::new();
        let mut lstm_cache: HashMap<String, NamedValues> = HashMap::new();
        for spec in official_parameters(cfg) {
            if spec.name.starts_with("bert.pooler.") || spec.kind == ParamKind::WeightNormG {
                continue;
            }
            let (name, values) = match spec.kind {
                ParamKind::Embedding => (spec.name.clone(), self.embedding(&spec.module)?),
                ParamKind::Linear => (
                    spec.name.clone(),
                    self.linear(&spec.module, spec.shape[0], spec.shape[1])?,
                ),
                ParamKind::WeightNormConv | ParamKind::WeightNormConvTranspose => {
                    (format!("{}.weight", spec.module), self.conv(&spec.module)?)
                }
                ParamKind::Conv => (spec.name.clone(), self.conv(&spec.module)?),
                ParamKind::Lstm => {
                    if !lstm_cache.contains_key(&spec.module) {
                        let l = self
                            .lstm(&spec.module)?
                            .ok_or_else(|| self.err(format!("no LSTM node for {}", spec.module)))?;
                        lstm_cache.insert(spec.module.clone(), l);
                    }
                    let suffix = spec.name.rsplit('.').next().unwrap_or_default();
                    let v = lstm_cache[&spec.module]
                        .iter()
                        .find(|(s, _)| s == suffix)
                        .map(|(_, v)| v.clone());
                    (spec.name.clone(), v)
                }
                ParamKind::Float | ParamKind::WeightNormG => {
                    (spec.name.clone(), self.float(&spec.name)?)
                }
            };
            let values =
                values.ok_or_else(|| self.err(format!("cannot find {name} in the graph")))?;
            let numel: usize = spec.shape.iter().product();
            if values.len() != numel {
                return Err(self.err(format!(
                    "{name}: {} values, expected shape {:?}",
                    values.len(),
                    spec.shape
                )));
            }
            out.insert(name, Tensor::from_vec(values, spec.shape.clone(), device)?);
        }
        Ok(out)
    }
}

/// Loads the int8 ONNX export as f32 tensors under official names.
pub fn load_onnx(
    path: &std::path::Path,
    cfg: &KokoroConfig,
    device: &Device,
) -> Result<HashMap<String, Tensor>, ModelError> {
    let model = OnnxModel::read(path)?;
    OnnxWeights::new(&model).extract(cfg, device)
}

/// Reads the official `kokoro-v1_0.pth` (one state dict per component: `bert`, `bert_encoder`,
/// `predictor`, `text_encoder`, `decoder`) and maps it with [`map_pth_state_dict`].
pub fn load_pth(
    path: &std::path::Path,
    device: &Device,
) -> Result<HashMap<String, Tensor>, ModelError> {
    let mut all = HashMap::new();
    for comp in [
        "bert",
        "bert_encoder",
        "predictor",
        "text_encoder",
        "decoder",
    ] {
        let tensors = candle_core::pickle::read_all_with_key(path, Some(comp)).map_err(|e| {
            werr(
                &path.display().to_string(),
                format!("component {comp}: {e}"),
            )
        })?;
        for (key, t) in tensors {
            all.insert(
                format!("{comp}.{key}"),
                t.to_dtype(DType::F32)?.to_device(device)?,
            );
        }
    }
    map_pth_state_dict(all)
}

/// Maps an official `.pth` state dict (`kokoro-v1_0.pth`, possibly nested under component
/// names and prefixed `module.`) to the inference names: strips `module.`, fuses
/// `weight_g · weight_v / ‖weight_v‖` (norm over all but dim 0) into `weight`, and accepts the
/// `parametrizations.weight.original0/1` spelling of newer PyTorch.
pub fn map_pth_state_dict(
    state: HashMap<String, Tensor>,
) -> Result<HashMap<String, Tensor>, ModelError> {
    let mut plain: HashMap<String, Tensor> = HashMap::new();
    let mut g: HashMap<String, Tensor> = HashMap::new();
    let mut v: HashMap<String, Tensor> = HashMap::new();
    for (key, t) in state {
        let key = strip_module_prefix(&key);
        if let Some(m) = key
            .strip_suffix(".weight_g")
            .or_else(|| key.strip_suffix(".parametrizations.weight.original0"))
        {
            g.insert(m.to_string(), t);
        } else if let Some(m) = key
            .strip_suffix(".weight_v")
            .or_else(|| key.strip_suffix(".parametrizations.weight.original1"))
        {
            v.insert(m.to_string(), t);
        } else {
            plain.insert(key, t);
        }
    }
    for (m, gt) in g {
        let vt = v
            .remove(&m)
            .ok_or_else(|| werr("pth", format!("{m}.weight_g without weight_v")))?;
        let vt = vt.to_dtype(DType::F32)?;
        let norm = vt.sqr()?.sum_keepdim(2)?.sum_keepdim(1)?.sqrt()?;
        let w = vt.broadcast_mul(&gt.to_dtype(DType::F32)?.broadcast_div(&norm)?)?;
        plain.insert(format!("{m}.weight"), w);
    }
    if let Some(m) = v.keys().next() {
        return Err(werr("pth", format!("{m}.weight_v without weight_g")));
    }
    Ok(plain)
}

/// `module.decoder.x` → `decoder.x`; `decoder.module.x` (the `.pth` nests one dict per
/// component, each prefixed `module.`) → `decoder.x`.
fn strip_module_prefix(key: &str) -> String {
    if let Some(rest) = key.strip_prefix("module.") {
        return rest.to_string();
    }
    if let Some((comp, rest)) = key.split_once('.') {
        if let Some(rest) = rest.strip_prefix("module.") {
            return format!("{comp}.{rest}");
        }
    }
    key.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn official_parameter_list_has_548_tensors() {
        let p = official_parameters(&KokoroConfig::default());
        assert_eq!(p.len(), 548);
        let values: usize = p.iter().map(|s| s.shape.iter().product::<usize>()).sum();
        assert_eq!(values, 81_763_410);
    }

    #[test]
    fn onnx_scopes_follow_the_export_irregularities() {
        assert_eq!(
            onnx_scopes("text_encoder.cnn.1.0"),
            vec!["/encoder/text_encoder/cnn.1/cnn.1.0"]
        );
        assert_eq!(
            onnx_scopes("decoder.asr_res.0"),
            vec!["/decoder/decoder/asr_res/asr_res.0"]
        );
        assert_eq!(
            onnx_scopes("predictor.F0.1.pool"),
            vec!["/encoder/predictor/F0.1/pool", "/encoder/F0.1/pool"]
        );
        assert_eq!(
            onnx_scopes("decoder.generator.resblocks.4.convs1.0"),
            vec!["/decoder/decoder/generator/resblocks.4/convs1.0"]
        );
    }

    #[test]
    fn pth_mapping_strips_module_and_fuses_weight_norm() -> Result<(), ModelError> {
        let dev = Device::Cpu;
        let mut sd = HashMap::new();
        // v = [[3, 4]] per output channel → ‖v‖ = 5; g = 10 → w = [6, 8].
        let v = Tensor::new(&[[[3f32], [4.]], [[0.], [1.]]], &dev)?; // [2, 2, 1]
        let g = Tensor::new(&[[[10f32]], [[2.]]], &dev)?; // [2, 1, 1]
        sd.insert("decoder.module.generator.conv_post.weight_v".to_string(), v);
        sd.insert("decoder.module.generator.conv_post.weight_g".to_string(), g);
        sd.insert(
            "module.bert_encoder.bias".to_string(),
            Tensor::new(&[1f32, 2.], &dev)?,
        );
        sd.insert(
            "predictor.module.F0.1.pool.parametrizations.weight.original0".to_string(),
            Tensor::new(&[[[2f32]]], &dev)?,
        );
        sd.insert(
            "predictor.module.F0.1.pool.parametrizations.weight.original1".to_string(),
            Tensor::new(&[[[0f32, 5., 0.]]], &dev)?,
        );
        let m = map_pth_state_dict(sd)?;
        let mut keys: Vec<_> = m.keys().cloned().collect();
        keys.sort();
        assert_eq!(
            keys,
            vec![
                "bert_encoder.bias",
                "decoder.generator.conv_post.weight",
                "predictor.F0.1.pool.weight"
            ]
        );
        let w: Vec<f32> = m["decoder.generator.conv_post.weight"]
            .flatten_all()?
            .to_vec1()?;
        assert_eq!(w, vec![6., 8., 0., 2.]);
        let p: Vec<f32> = m["predictor.F0.1.pool.weight"].flatten_all()?.to_vec1()?;
        assert_eq!(p, vec![0., 2., 0.]);
        Ok(())
    }

    #[test]
    fn pth_mapping_rejects_a_lone_weight_v() {
        let mut sd = HashMap::new();
        sd.insert(
            "decoder.module.F0_conv.weight_v".to_string(),
            Tensor::zeros((1, 1, 3), DType::F32, &Device::Cpu).expect("tensor"),
        );
        assert!(map_pth_state_dict(sd).is_err());
    }
}
