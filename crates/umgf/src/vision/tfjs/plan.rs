//! Compiling a TF.js graph into a [`Plan`]: [`GraphModel::plan`] takes the nodes the requested
//! outputs need, in dependency order, with constants and convolution filters already in torch's
//! layout, and for every intermediate value the step after which it is dropped. Unsupported ops and
//! malformed attributes are errors at plan time, never at run time. [`Plan::run`] executes the steps
//! with the ops of [`super::ops`].
use std::collections::HashMap;

use tch::{Kind, Tensor};

use super::model::{Attr, GraphModel, Node};
use super::ops::{Activation, Binary, Op, Padding, Unary, channels_last, run_op};
use crate::torch::TorchResult;
use crate::{Error, Result};

/// The op of fused hard-swish nodes (not a TensorFlow op: the leading underscore marks it ours).
const HARD_SWISH: &str = "_HardSwish";

#[derive(Debug)]
struct Step {
    name: String,
    op: Op,
    /// (step index, output index) of each data input.
    inputs: Vec<(usize, usize)>,
    /// Values no later step reads: dropped once this step has run.
    release: Vec<usize>,
}

/// A compiled, runnable slice of a graph: from its inputs to the requested outputs.
#[derive(Debug)]
pub struct Plan {
    steps: Vec<Step>,
    outputs: Vec<(usize, usize)>,
    inputs: usize,
}

fn unsupported(node: &Node, what: impl std::fmt::Display) -> Error {
    Error::Graph(format!("graph node {} ({}): {what}", node.name, node.op))
}

fn attr_str<'a>(node: &'a Node, key: &str) -> Option<&'a str> {
    match node.attrs.get(key) {
        Some(Attr::Str(s)) => Some(s),
        _ => None,
    }
}

fn attr_bool(node: &Node, key: &str) -> bool {
    matches!(node.attrs.get(key), Some(Attr::Bool(true)))
}

fn attr_int(node: &Node, key: &str) -> i64 {
    match node.attrs.get(key) {
        Some(Attr::Int(i)) => *i,
        _ => 0,
    }
}

/// The spatial pair of an NHWC 4-list attribute (`strides`, `ksize`, `dilations`).
fn attr_hw(node: &Node, key: &str, default: i64) -> Result<[i64; 2]> {
    match node.attrs.get(key) {
        None => Ok([default, default]),
        Some(Attr::Ints(v)) if v.len() == 4 && v[0] == 1 && v[3] == 1 => Ok([v[1], v[2]]),
        Some(other) => Err(unsupported(node, format!("attribute {key} = {other:?}"))),
    }
}

fn padding_of(node: &Node) -> Result<Padding> {
    match attr_str(node, "padding") {
        Some("SAME") => Ok(Padding::Same),
        Some("VALID") => Ok(Padding::Valid),
        other => Err(unsupported(node, format!("padding {other:?}"))),
    }
}

fn check_nhwc(node: &Node) -> Result<()> {
    match attr_str(node, "data_format") {
        None | Some("NHWC") => Ok(()),
        Some(other) => Err(unsupported(node, format!("data format {other}"))),
    }
}

fn kind_of(node: &Node, key: &str) -> Result<Kind> {
    match node.attrs.get(key) {
        Some(Attr::Type(t)) => match t.as_str() {
            "DT_FLOAT" => Ok(Kind::Float),
            "DT_INT32" => Ok(Kind::Int),
            "DT_BOOL" => Ok(Kind::Bool),
            other => Err(unsupported(node, format!("type {other}"))),
        },
        other => Err(unsupported(node, format!("attribute {key} = {other:?}"))),
    }
}

impl GraphModel {
    /// Compiles the part of the graph that computes `outputs` from the placeholders `inputs`.
    pub fn plan(&self, inputs: &[&str], outputs: &[&str]) -> Result<Plan> {
        let fused = self.fuse_hard_swish();
        let by_name: HashMap<&str, &Node> = self
            .nodes
            .iter()
            .map(|n| (n.name.as_str(), fused.get(&n.name).unwrap_or(n)))
            .collect();
        // Depth-first post-order from the outputs: every node after the nodes it reads.
        let mut order: Vec<&Node> = Vec::new();
        let mut index: HashMap<&str, usize> = HashMap::new();
        let mut visiting: Vec<(&Node, bool)> = Vec::new();
        for name in outputs {
            let node = by_name
                .get(name)
                .ok_or_else(|| Error::Graph(format!("graph has no node named {name}")))?;
            visiting.push((node, false));
        }
        let mut on_path = std::collections::HashSet::new();
        while let Some((node, expanded)) = visiting.pop() {
            if index.contains_key(node.name.as_str()) {
                continue;
            }
            if expanded {
                on_path.remove(node.name.as_str());
                index.insert(&node.name, order.len());
                order.push(node);
                continue;
            }
            if !on_path.insert(node.name.as_str()) {
                crate::bail!(Graph, "graph has a cycle through {}", node.name);
            }
            visiting.push((node, true));
            for input in node.inputs.iter().filter(|i| !i.control) {
                let source = by_name.get(input.node.as_str()).ok_or_else(|| {
                    unsupported(
                        node,
                        format!("reads {}, which is not in the graph", input.node),
                    )
                })?;
                if !index.contains_key(source.name.as_str()) {
                    visiting.push((source, false));
                }
            }
        }

        let mut steps: Vec<Step> = Vec::with_capacity(order.len());
        for node in &order {
            let data: Vec<(usize, usize)> = node
                .inputs
                .iter()
                .filter(|i| !i.control)
                .map(|i| (index[i.node.as_str()], i.index))
                .collect();
            let op = self.compile(node, &data, &steps, inputs)?;
            // A conv's filter and bias live in the op now; the step keeps only the data input.
            let data = match op {
                Op::Conv { .. } | Op::HardSwish { .. } => data[..1].to_vec(),
                _ => data,
            };
            steps.push(Step {
                name: node.name.clone(),
                op,
                inputs: data,
                release: Vec::new(),
            });
        }
        let outputs: Vec<(usize, usize)> = outputs.iter().map(|name| (index[*name], 0)).collect();

        // Drop each computed value after its last reader; constants and outputs stay.
        let mut last_use: HashMap<usize, usize> = HashMap::new();
        for (i, step) in steps.iter().enumerate() {
            for &(source, _) in &step.inputs {
                last_use.insert(source, i);
            }
        }
        for (source, reader) in last_use {
            let keep = matches!(steps[source].op, Op::Const(_))
                || outputs.iter().any(|&(o, _)| o == source);
            if !keep {
                steps[reader].release.push(source);
            }
        }
        Ok(Plan {
            steps,
            outputs,
            inputs: inputs.len(),
        })
    }

    /// Replacements for `Mul(Mul(c, x), Relu6(Add(x, 3)))` nodes: one `_HardSwish(x, c)` node each.
    /// The three nodes it reads become unreachable and are left out of plans (unless read elsewhere).
    fn fuse_hard_swish(&self) -> HashMap<String, Node> {
        let by_name: HashMap<&str, &Node> =
            self.nodes.iter().map(|n| (n.name.as_str(), n)).collect();
        let node = |input: &super::model::Input| by_name.get(input.node.as_str()).copied();
        let scalar = |input: &super::model::Input| {
            self.weights
                .get(&input.node)
                .filter(|w| w.numel() == 1)
                .and_then(|w| w.f_double_value(&[]).ok())
        };
        let mut fused = HashMap::new();
        for mul in self
            .nodes
            .iter()
            .filter(|n| n.op == "Mul" && n.inputs.len() == 2)
        {
            for (scaled, relu) in [(0, 1), (1, 0)] {
                let (Some(scaled), Some(relu)) =
                    (node(&mul.inputs[scaled]), node(&mul.inputs[relu]))
                else {
                    continue;
                };
                if scaled.op != "Mul" || relu.op != "Relu6" || scaled.inputs.len() != 2 {
                    continue;
                }
                let Some(add) = relu.inputs.first().and_then(&node) else {
                    continue;
                };
                if add.op != "Add" && add.op != "AddV2" || add.inputs.len() != 2 {
                    continue;
                }
                // scaled = c * x (either order), add = x + 3 (either order), the same x.
                let split = |n: &Node| match (scalar(&n.inputs[0]), scalar(&n.inputs[1])) {
                    (Some(c), None) => Some((c, n.inputs[0].clone(), n.inputs[1].clone())),
                    (None, Some(c)) => Some((c, n.inputs[1].clone(), n.inputs[0].clone())),
                    _ => None,
                };
                let (Some((_, c, x)), Some((three, _, x2))) = (split(scaled), split(add)) else {
                    continue;
                };
                if three == 3.0 && x == x2 {
                    fused.insert(
                        mul.name.clone(),
                        Node {
                            name: mul.name.clone(),
                            op: HARD_SWISH.to_owned(),
                            inputs: vec![x, c],
                            attrs: Default::default(),
                        },
                    );
                    break;
                }
            }
        }
        fused
    }

    fn constant<'a>(
        &self,
        steps: &'a [Step],
        node: &Node,
        (step, _): (usize, usize),
    ) -> Result<&'a Tensor> {
        match &steps[step].op {
            Op::Const(t) => Ok(t),
            _ => Err(unsupported(
                node,
                format!("input {} must be a constant", steps[step].name),
            )),
        }
    }

    fn compile(
        &self,
        node: &Node,
        data: &[(usize, usize)],
        steps: &[Step],
        inputs: &[&str],
    ) -> Result<Op> {
        let arity = |n: usize| -> Result<()> {
            if data.len() == n {
                Ok(())
            } else {
                Err(unsupported(
                    node,
                    format!("expected {n} inputs, found {}", data.len()),
                ))
            }
        };
        let op = match node.op.as_str() {
            "Placeholder" => {
                let position = inputs
                    .iter()
                    .position(|i| *i == node.name)
                    .ok_or_else(|| unsupported(node, "an input the plan was not given"))?;
                Op::Input(position)
            }
            "Const" => {
                let value = self
                    .weights
                    .get(&node.name)
                    .ok_or_else(|| unsupported(node, "constant without weights"))?;
                Op::Const(value.shallow_clone())
            }
            "Conv2D" | "_FusedConv2D" | "DepthwiseConv2dNative" | "FusedDepthwiseConv2dNative" => {
                return self.compile_conv(node, data, steps);
            }
            "Add" | "AddV2" | "BiasAdd" => Op::Binary(Binary::Add),
            "Sub" => Op::Binary(Binary::Sub),
            "Mul" => Op::Binary(Binary::Mul),
            "RealDiv" | "Div" => Op::Binary(Binary::Div),
            "FloorDiv" => Op::Binary(Binary::FloorDiv),
            "FloorMod" => Op::Binary(Binary::FloorMod),
            "Equal" => Op::Binary(Binary::Equal),
            "Maximum" => Op::Binary(Binary::Maximum),
            "Minimum" => Op::Binary(Binary::Minimum),
            "Identity" => Op::Unary(Unary::Identity),
            HARD_SWISH => {
                let scale = self.constant(steps, node, data[1])?;
                Op::HardSwish {
                    scale: scale.f_double_value(&[]).torch()?,
                }
            }
            "Relu" => Op::Unary(Unary::Relu),
            "Relu6" => Op::Unary(Unary::Relu6),
            "Sigmoid" => Op::Unary(Unary::Sigmoid),
            "Tanh" => Op::Unary(Unary::Tanh),
            "Mean" => Op::Mean {
                keep_dims: attr_bool(node, "keep_dims"),
            },
            "ResizeBilinear" => {
                if attr_bool(node, "align_corners") || attr_bool(node, "half_pixel_centers") {
                    return Err(unsupported(
                        node,
                        "only the legacy resize (no corner alignment, no half-pixel centres)",
                    ));
                }
                Op::ResizeBilinear
            }
            "ConcatV2" => Op::Concat,
            "MaxPool" => {
                check_nhwc(node)?;
                Op::MaxPool {
                    kernel: attr_hw(node, "ksize", 1)?,
                    stride: attr_hw(node, "strides", 1)?,
                    padding: padding_of(node)?,
                }
            }
            "Reshape" => Op::Reshape,
            "ExpandDims" => Op::ExpandDims,
            "Cast" => Op::Cast(kind_of(node, "DstT")?),
            "TopKV2" => Op::TopK {
                sorted: attr_bool(node, "sorted"),
            },
            "GatherV2" => {
                if attr_int(node, "batch_dims") != 0 {
                    return Err(unsupported(node, "batch_dims other than 0"));
                }
                Op::Gather
            }
            "StridedSlice" => {
                if attr_int(node, "ellipsis_mask") != 0 || attr_int(node, "new_axis_mask") != 0 {
                    return Err(unsupported(node, "ellipsis and new-axis masks"));
                }
                Op::StridedSlice {
                    begin_mask: attr_int(node, "begin_mask"),
                    end_mask: attr_int(node, "end_mask"),
                    shrink_axis_mask: attr_int(node, "shrink_axis_mask"),
                }
            }
            other => return Err(unsupported(node, format!("op {other} is not supported"))),
        };
        match &op {
            Op::Binary(_)
            | Op::Mean { .. }
            | Op::ResizeBilinear
            | Op::Reshape
            | Op::ExpandDims
            | Op::TopK { .. } => arity(2)?,
            Op::Unary(_) | Op::Cast(_) | Op::MaxPool { .. } => arity(1)?,
            Op::HardSwish { .. } => arity(2)?,
            Op::Gather => arity(3)?,
            Op::StridedSlice { .. } => arity(4)?,
            _ => {}
        }
        Ok(op)
    }

    fn compile_conv(&self, node: &Node, data: &[(usize, usize)], steps: &[Step]) -> Result<Op> {
        check_nhwc(node)?;
        let depthwise = node.op.contains("Depthwise");
        let fused: Vec<&str> = match node.attrs.get("fused_ops") {
            Some(Attr::Strs(ops)) => ops.iter().map(String::as_str).collect(),
            _ => Vec::new(),
        };
        let (bias, activation) = match fused.as_slice() {
            [] => (false, Activation::None),
            ["BiasAdd"] => (true, Activation::None),
            ["BiasAdd", "Relu"] => (true, Activation::Relu),
            ["BiasAdd", "Relu6"] => (true, Activation::Relu6),
            other => return Err(unsupported(node, format!("fused ops {other:?}"))),
        };
        if data.len() != 2 + usize::from(bias) {
            return Err(unsupported(node, format!("{} inputs", data.len())));
        }
        let filter = self.constant(steps, node, data[1])?;
        let shape = filter.size();
        let [kh, kw, cin, cout] = shape[..] else {
            return Err(unsupported(node, format!("filter shape {shape:?}")));
        };
        // TensorFlow filters are HWIO ([kh, kw, in, multiplier] for depthwise, whose output channel
        // c * multiplier + m is what the reshape below produces); torch wants OIHW.
        let (weight, groups) = if depthwise {
            let w = filter
                .f_permute([2, 3, 0, 1])
                .torch()?
                .f_reshape([cin * cout, 1, kh, kw])
                .torch()?;
            (w, cin)
        } else {
            (filter.f_permute([3, 2, 0, 1]).torch()?, 1)
        };
        let bias = if bias {
            Some(self.constant(steps, node, data[2])?.shallow_clone())
        } else {
            None
        };
        Ok(Op::Conv {
            weight: channels_last(&weight)?,
            bias,
            stride: attr_hw(node, "strides", 1)?,
            dilation: attr_hw(node, "dilations", 1)?,
            padding: padding_of(node)?,
            groups,
            activation,
        })
    }
}

impl Plan {
    /// Number of steps (constants and inputs included).
    pub fn len(&self) -> usize {
        self.steps.len()
    }

    pub fn is_empty(&self) -> bool {
        self.steps.is_empty()
    }

    /// Runs the plan on its inputs (in the order given to [`GraphModel::plan`]).
    pub fn run(&self, inputs: &[Tensor]) -> Result<Vec<Tensor>> {
        if inputs.len() != self.inputs {
            crate::bail!(
                Config,
                "graph plan takes {} inputs, got {}",
                self.inputs,
                inputs.len()
            );
        }
        let mut values: Vec<Vec<Tensor>> = Vec::with_capacity(self.steps.len());
        for step in &self.steps {
            let args: Vec<&Tensor> = step
                .inputs
                .iter()
                .map(|&(source, index)| {
                    values[source].get(index).ok_or_else(|| {
                        Error::Graph(format!(
                            "graph node {}: reads output {index} of {}, which has none",
                            step.name, self.steps[source].name
                        ))
                    })
                })
                .collect::<Result<_>>()?;
            let out = run_op(&step.op, &args, inputs)
                .map_err(|e| Error::Graph(format!("graph node {}: {e}", step.name)))?;
            values.push(out);
            for &source in &step.release {
                values[source] = Vec::new();
            }
        }
        self.outputs
            .iter()
            .map(|&(step, index)| {
                values[step]
                    .get(index)
                    .map(Tensor::shallow_clone)
                    .ok_or_else(|| {
                        Error::Graph(format!(
                            "graph node {} has no output {index}",
                            self.steps[step].name
                        ))
                    })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(name: &str, op: &str, inputs: &[&str]) -> Node {
        Node {
            name: name.into(),
            op: op.into(),
            inputs: inputs
                .iter()
                .map(|i| super::super::model::Input::parse(i))
                .collect(),
            attrs: Default::default(),
        }
    }

    #[test]
    fn hard_swish_chains_become_one_step_with_the_same_values() {
        let graph = GraphModel {
            nodes: vec![
                node("x", "Placeholder", &[]),
                node("three", "Const", &[]),
                node("sixth", "Const", &[]),
                node("add", "Add", &["x", "three"]),
                node("relu6", "Relu6", &["add"]),
                node("scaled", "Mul", &["sixth", "x"]),
                node("out", "Mul", &["scaled", "relu6"]),
            ],
            weights: HashMap::from([
                ("three".to_owned(), Tensor::from(3.0f32)),
                ("sixth".to_owned(), Tensor::from(0.166_625_98f32)),
            ]),
        };
        let plan = graph.plan(&["x"], &["out"]).unwrap();
        // x, the scale constant and the fused op.
        assert_eq!(plan.len(), 3);
        let x = Tensor::from_slice(&[-5.0f32, -1.0, 0.0, 1.0, 2.5, 7.0]);
        let got = &plan.run(&[x.shallow_clone()]).unwrap()[0];
        let want = (&x + 3.0).clamp(0.0, 6.0) * &x * 0.166_625_98;
        assert!(got.allclose(&want, 1e-6, 1e-6, false));
    }
}
