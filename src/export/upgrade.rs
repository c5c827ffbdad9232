//! A user's model brought to the opset the rewrite writes in ([`OPSET`]), so that BF16 casts
//! (opset 13), per-channel Q/DQ (13), FP8 (19) and INT4 (21) can be said in any model. Most
//! operators mean the same from their model's opset to [`OPSET`]; the ones that changed are a
//! table here, each with the edit that keeps its meaning (PaddleOCR's exports are opset 11 and 12;
//! many exporters still write 11). An operator that changed in a way no edit here covers is an
//! error naming the node.

use crate::onnx_proto::{AttributeProto, DataType, GraphProto, ModelProto, NodeProto, OPSET};

use super::emit::{int, node, tensor};
use super::ExportError;

/// How an operator's meaning changed at an opset, and what keeps it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Change {
    /// Its `axes` attribute became its second input.
    AxesToInput,
    /// `Split`'s `split` attribute became its second input (13); without it, the number of
    /// outputs became the `num_outputs` attribute (18).
    SplitToInput,
    /// Softmax, LogSoftmax and Hardmax: before 13 they flattened the input into 2-D at `axis`
    /// (default 1); from 13 they work along `axis` (default -1).
    CoercedAxis,
    /// A change with no edit here.
    Unsupported(&'static str),
}

/// Operators whose meaning changed, with the opset that changed it.
const CHANGES: &[(&str, i64, Change)] = &[
    ("Squeeze", 13, Change::AxesToInput),
    ("Unsqueeze", 13, Change::AxesToInput),
    ("ReduceSum", 13, Change::AxesToInput),
    ("ReduceMean", 18, Change::AxesToInput),
    ("ReduceMax", 18, Change::AxesToInput),
    ("ReduceMin", 18, Change::AxesToInput),
    ("ReduceProd", 18, Change::AxesToInput),
    ("ReduceL1", 18, Change::AxesToInput),
    ("ReduceL2", 18, Change::AxesToInput),
    ("ReduceLogSum", 18, Change::AxesToInput),
    ("ReduceLogSumExp", 18, Change::AxesToInput),
    ("ReduceSumSquare", 18, Change::AxesToInput),
    ("Split", 13, Change::SplitToInput),
    ("Softmax", 13, Change::CoercedAxis),
    ("LogSoftmax", 13, Change::CoercedAxis),
    ("Hardmax", 13, Change::CoercedAxis),
    (
        "Dropout",
        12,
        Change::Unsupported("its ratio became an input; export the model for inference"),
    ),
    (
        "Upsample",
        10,
        Change::Unsupported("it was removed; export the model with Resize"),
    ),
    (
        "Scatter",
        11,
        Change::Unsupported("it was removed; export the model with ScatterElements"),
    ),
];

/// `model` at [`OPSET`]: unchanged when it is there already (or later), else with every operator
/// whose meaning changed since its opset edited to keep it. Either way its `Constant` nodes that
/// hold a tensor become initializers of the same name ([`constants_to_initializers`]).
pub fn to_current_opset(model: &ModelProto) -> Result<ModelProto, ExportError> {
    let mut upgraded = upgrade(model)?;
    if let Some(graph) = upgraded.graph.as_mut() {
        constants_to_initializers(graph);
    }
    Ok(upgraded)
}

/// Moves each `Constant` node that holds a tensor (`value`) into the graph's initializers under
/// its output's name: the same value, where the rewrite finds weights. Exporters such as
/// Paddle2ONNX write every weight as a `Constant` node; a matmul whose weight is one would
/// otherwise look like a product of two activations.
fn constants_to_initializers(graph: &mut GraphProto) {
    let mut kept = Vec::with_capacity(graph.node.len());
    for node in std::mem::take(&mut graph.node) {
        let tensor = (node.op_type == "Constant"
            && node.domain.as_deref().unwrap_or_default().is_empty()
            && node.output.len() == 1)
            .then(|| node.attribute.iter().find(|a| a.name == "value"))
            .flatten()
            .and_then(|a| a.t.clone());
        match tensor {
            Some(mut tensor) => {
                tensor.name = node.output[0].clone();
                graph.initializer.push(tensor);
            }
            None => kept.push(node),
        }
    }
    graph.node = kept;
}

fn upgrade(model: &ModelProto) -> Result<ModelProto, ExportError> {
    let Some(import) = model
        .opset_import
        .iter()
        .position(|o| o.domain.is_empty() || o.domain == "ai.onnx")
    else {
        return Err(ExportError::Upgrade(
            "the model imports no default-domain opset".into(),
        ));
    };
    let from = model.opset_import[import].version;
    if from >= OPSET {
        return Ok(model.clone());
    }
    let mut upgraded = model.clone();
    upgraded.opset_import[import].version = OPSET;
    if upgraded.ir_version < crate::onnx_proto::IR_VERSION {
        upgraded.ir_version = crate::onnx_proto::IR_VERSION;
    }
    if let Some(graph) = upgraded.graph.as_mut() {
        upgrade_graph(graph, from)?;
    }
    Ok(upgraded)
}

fn upgrade_graph(graph: &mut GraphProto, from: i64) -> Result<(), ExportError> {
    let mut nodes = Vec::with_capacity(graph.node.len());
    let mut fresh = 0usize;
    for mut original in std::mem::take(&mut graph.node) {
        for attribute in &mut original.attribute {
            // Subgraphs (If, Loop, Scan bodies) are upgraded with their parent.
            for body in attribute.g.iter_mut().chain(attribute.graphs.iter_mut()) {
                upgrade_graph(body, from)?;
            }
        }
        let change = CHANGES
            .iter()
            .find(|(op, at, _)| {
                original.domain.as_deref().unwrap_or_default().is_empty()
                    && *op == original.op_type
                    && from < *at
            })
            .map(|&(_, at, change)| (at, change));
        let Some((at, change)) = change else {
            nodes.push(original);
            continue;
        };
        let mut name = |hint: &str| {
            fresh += 1;
            format!("precheck_upgrade_{hint}_{fresh}")
        };
        match change {
            Change::AxesToInput => {
                if let Some(axes) = take_attribute(&mut original, "axes") {
                    let input = name("axes");
                    graph.initializer.push(int64s(&input, &axes.ints));
                    // Reduce's optional `keepdims` stays; the axes go in second place.
                    original.input.truncate(1);
                    original.input.push(input);
                }
            }
            Change::SplitToInput => match take_attribute(&mut original, "split") {
                Some(split) => {
                    let input = name("split");
                    graph.initializer.push(int64s(&input, &split.ints));
                    original.input.truncate(1);
                    original.input.push(input);
                }
                None => {
                    let outputs = original.output.len() as i64;
                    original.attribute.push(int("num_outputs", outputs));
                }
            },
            Change::CoercedAxis => {
                let axis = take_attribute(&mut original, "axis")
                    .and_then(|a| a.i)
                    .unwrap_or(1);
                if axis == -1 {
                    original.attribute.push(int("axis", -1));
                    nodes.push(original);
                    continue;
                }
                // The old meaning, written out: flatten into 2-D at `axis`, normalize each row,
                // and give the result the input's shape again.
                let x = original.input[0].clone();
                let output = original.output[0].clone();
                let (flat, normalized, shape) = (name("flat"), name("rows"), name("shape"));
                nodes.push(node("Flatten", &[&x], &flat, vec![int("axis", axis)]));
                nodes.push(node("Shape", &[&x], &shape, vec![]));
                original.input[0] = flat;
                original.output[0] = normalized.clone();
                original.attribute.push(int("axis", -1));
                nodes.push(original);
                nodes.push(node("Reshape", &[&normalized, &shape], &output, vec![]));
                continue;
            }
            Change::Unsupported(why) => {
                return Err(ExportError::Upgrade(format!(
                    "node `{}` ({}) changed at opset {at}, after the model's {from}: {why} \
                     (precheck rewrites models at opset {OPSET})",
                    original.name, original.op_type
                )))
            }
        }
        nodes.push(original);
    }
    graph.node = nodes;
    Ok(())
}

fn take_attribute(node: &mut NodeProto, name: &str) -> Option<AttributeProto> {
    let index = node.attribute.iter().position(|a| a.name == name)?;
    Some(node.attribute.remove(index))
}

fn int64s(name: &str, values: &[i64]) -> crate::onnx_proto::TensorProto {
    let raw = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    tensor(name, DataType::Int64, &[values.len()], raw)
}
