//! Structure-aware ONNX inputs: the fuzz bytes pick a valid seed model and a list of edits to
//! it (attributes to extreme values, initializer dims, node inputs and outputs, operator types,
//! removed and duplicated nodes, the input's dims and the opset), and the result is
//! re-serialised. Random bytes rarely make a protobuf that parses, let alone a graph that gets
//! past the first checks; these reach the importer's every operator.

use onnx_protobuf::{
    AttributeProto, Message, ModelProto, NodeProto, attribute_proto::AttributeType,
    tensor_shape_proto::dimension, type_proto,
};

/// The seed models: small valid ONNX files of the repository (a few kilobytes each).
pub const SEEDS: &[(&str, &[u8])] = &[
    ("handmade", include_bytes!("../seeds/handmade.onnx")),
    ("tf2onnx_like", include_bytes!("../seeds/tf2onnx_like.onnx")),
    ("tiny_zoo", include_bytes!("../seeds/tiny_zoo.onnx")),
    ("tiny_shapes", include_bytes!("../seeds/tiny_shapes.onnx")),
];

/// Operators the importer does not know, beside the ones it does
/// ([`deepsight_onnx::SUPPORTED_OPS`]).
const UNKNOWN_OPS: &[&str] = &["Loop", ""];

/// Attribute names the importer reads somewhere.
const ATTRS: &[&str] = &[
    "kernel_shape",
    "strides",
    "pads",
    "dilations",
    "group",
    "auto_pad",
    "output_padding",
    "output_shape",
    "ceil_mode",
    "count_include_pad",
    "storage_order",
    "epsilon",
    "momentum",
    "alpha",
    "beta",
    "bias",
    "size",
    "axis",
    "axes",
    "perm",
    "keepdims",
    "transA",
    "transB",
    "to",
    "min",
    "max",
    "mode",
    "value",
    "allowzero",
    "starts",
    "ends",
];

const EXTREME_INTS: &[i64] = &[
    0,
    -1,
    1,
    2,
    3,
    -2,
    7,
    64,
    65_535,
    1 << 20,
    1 << 31,
    -(1 << 31),
    1 << 32,
    1 << 40,
    i64::MAX,
    i64::MIN,
    i64::MAX / 2,
];

const EXTREME_FLOATS: &[f32] = &[
    0.0,
    -1.0,
    1.0,
    0.5,
    -0.0,
    f32::NAN,
    f32::INFINITY,
    f32::NEG_INFINITY,
    f32::MAX,
    f32::MIN,
    f32::MIN_POSITIVE,
    1e-30,
    1e30,
];

/// Reads decisions off the fuzz bytes; past their end every read is 0.
struct Bytes<'a> {
    data: &'a [u8],
    pos: usize,
}

impl Bytes<'_> {
    fn byte(&mut self) -> u8 {
        let b = self.data.get(self.pos).copied().unwrap_or(0);
        self.pos += 1;
        b
    }
    /// A number in `0..n` (0 when `n` is 0).
    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            return 0;
        }
        let v = u16::from_le_bytes([self.byte(), self.byte()]) as usize;
        v % n
    }
    fn done(&self) -> bool {
        self.pos >= self.data.len()
    }
    fn int(&mut self) -> i64 {
        match self.byte() % 4 {
            0 => self.byte() as i64 - 128,
            _ => EXTREME_INTS[self.below(EXTREME_INTS.len())],
        }
    }
    fn float(&mut self) -> f32 {
        match self.byte() % 3 {
            0 => (self.byte() as f32 - 128.0) / 16.0,
            _ => EXTREME_FLOATS[self.below(EXTREME_FLOATS.len())],
        }
    }
    fn ints(&mut self) -> Vec<i64> {
        let n = self.below(7);
        (0..n).map(|_| self.int()).collect()
    }
}

/// The mutated model's bytes and the input size to import it at (`None`: the model's own).
pub fn mutated(data: &[u8]) -> (Vec<u8>, Option<[usize; 2]>) {
    let mut b = Bytes { data, pos: 0 };
    let (_, seed) = SEEDS[b.below(SEEDS.len())];
    let mut model = ModelProto::parse_from_bytes(seed).expect("the seed models are valid ONNX");
    let input_size = match b.byte() % 4 {
        0 => Some([b.below(70), b.below(70)]),
        _ => None,
    };
    let edits = 1 + b.below(12);
    for _ in 0..edits {
        if b.done() {
            break;
        }
        edit(&mut model, &mut b);
    }
    let bytes = model.write_to_bytes().unwrap_or_default();
    (bytes, input_size)
}

fn value_names(model: &ModelProto) -> Vec<String> {
    let g = &model.graph;
    let mut names: Vec<String> = g.input.iter().map(|i| i.name.clone()).collect();
    names.extend(g.initializer.iter().map(|t| t.name.clone()));
    names.extend(g.node.iter().flat_map(|n| n.output.iter().cloned()));
    names.push(String::new());
    names.push("missing".into());
    names
}

fn edit(model: &mut ModelProto, b: &mut Bytes) {
    let names = value_names(model);
    let op = b.byte() % 16;
    let g = model.graph.mut_or_insert_default();
    let n_nodes = g.node.len();
    match op {
        0..=3 => {
            if let Some(node) = g.node.get_mut(b.below(n_nodes)) {
                edit_attribute(node, b);
            }
        }
        4 => {
            if let Some(node) = g.node.get_mut(b.below(n_nodes)) {
                add_attribute(node, b);
            }
        }
        5 => {
            let n = g.initializer.len();
            if let Some(t) = g.initializer.get_mut(b.below(n)) {
                match b.byte() % 4 {
                    0 => t.dims.push(b.int()),
                    1 => {
                        t.dims.pop();
                    }
                    2 => t.data_type = b.int() as i32,
                    _ => {
                        let k = b.below(t.dims.len());
                        if let Some(d) = t.dims.get_mut(k) {
                            *d = b.int();
                        }
                    }
                }
            }
        }
        6 => {
            let n = g.initializer.len();
            if let Some(t) = g.initializer.get_mut(b.below(n)) {
                let keep = b.below(t.raw_data.len() + 1);
                t.raw_data.truncate(keep);
                let keep = b.below(t.float_data.len() + 1);
                t.float_data.truncate(keep);
            }
        }
        7 => {
            if let Some(node) = g.node.get_mut(b.below(n_nodes)) {
                let name = names[b.below(names.len())].clone();
                match b.byte() % 3 {
                    0 => node.input.push(name),
                    1 => {
                        node.input.pop();
                    }
                    _ => {
                        let k = b.below(node.input.len());
                        if let Some(i) = node.input.get_mut(k) {
                            *i = name;
                        }
                    }
                }
            }
        }
        8 => {
            if let Some(node) = g.node.get_mut(b.below(n_nodes)) {
                let name = names[b.below(names.len())].clone();
                match b.byte() % 2 {
                    0 => node.output.push(name),
                    _ => {
                        let k = b.below(node.output.len());
                        if let Some(o) = node.output.get_mut(k) {
                            *o = name;
                        }
                    }
                }
            }
        }
        9 => {
            if let Some(node) = g.node.get_mut(b.below(n_nodes)) {
                let ops = deepsight_onnx::SUPPORTED_OPS;
                let k = b.below(ops.len() + UNKNOWN_OPS.len());
                node.op_type = ops
                    .get(k)
                    .unwrap_or_else(|| &UNKNOWN_OPS[k - ops.len()])
                    .to_string();
            }
        }
        10 => {
            if n_nodes > 0 {
                g.node.remove(b.below(n_nodes));
            }
        }
        11 => {
            if n_nodes > 0 {
                let copy: NodeProto = g.node[b.below(n_nodes)].clone();
                let at = b.below(n_nodes + 1);
                g.node.insert(at, copy);
            }
        }
        12 => {
            if n_nodes > 1 {
                let (i, j) = (b.below(n_nodes), b.below(n_nodes));
                g.node.swap(i, j);
            }
        }
        13 => edit_input_dims(model, b),
        14 => {
            if let Some(o) = model.opset_import.first_mut() {
                o.version = [7, 10, 11, 12, 13, 17, 18, 21, 0, -1][b.below(10)];
            }
        }
        _ => {
            let n = g.output.len();
            if let Some(o) = g.output.get_mut(b.below(n)) {
                o.name = names[b.below(names.len())].clone();
            }
        }
    }
}

fn edit_attribute(node: &mut NodeProto, b: &mut Bytes) {
    let n = node.attribute.len();
    let Some(a) = node.attribute.get_mut(b.below(n)) else {
        return add_attribute(node, b);
    };
    match b.byte() % 6 {
        0 => a.i = b.int(),
        1 => a.f = b.float(),
        2 => a.ints = b.ints(),
        3 => {
            let k = b.below(a.ints.len());
            if let Some(v) = a.ints.get_mut(k) {
                *v = b.int();
            }
        }
        4 => {
            if let Some(t) = a.t.as_mut() {
                let k = b.below(t.dims.len() + 1);
                match t.dims.get_mut(k) {
                    Some(d) => *d = b.int(),
                    None => t.dims.push(b.int()),
                }
            } else {
                a.floats = (0..b.below(5)).map(|_| b.float()).collect();
            }
        }
        _ => {
            let types = [
                AttributeType::INT,
                AttributeType::INTS,
                AttributeType::FLOAT,
                AttributeType::STRING,
                AttributeType::TENSOR,
                AttributeType::UNDEFINED,
            ];
            a.type_ = types[b.below(types.len())].into();
        }
    }
}

fn add_attribute(node: &mut NodeProto, b: &mut Bytes) {
    let mut a = AttributeProto {
        name: ATTRS[b.below(ATTRS.len())].to_string(),
        ..Default::default()
    };
    match b.byte() % 4 {
        0 => {
            a.type_ = AttributeType::INT.into();
            a.i = b.int();
        }
        1 => {
            a.type_ = AttributeType::INTS.into();
            a.ints = b.ints();
        }
        2 => {
            a.type_ = AttributeType::FLOAT.into();
            a.f = b.float();
        }
        _ => {
            a.type_ = AttributeType::STRING.into();
            a.s = [
                &b"SAME_UPPER"[..],
                b"VALID",
                b"NOTSET",
                b"SAME_LOWER",
                b"constant",
                b"reflect",
                b"",
            ][b.below(7)]
            .to_vec();
        }
    }
    node.attribute.push(a);
}

fn edit_input_dims(model: &mut ModelProto, b: &mut Bytes) {
    let g = model.graph.mut_or_insert_default();
    let Some(input) = g.input.first_mut() else {
        return;
    };
    let Some(type_proto::Value::TensorType(t)) = input.type_.mut_or_insert_default().value.as_mut() else {
        return;
    };
    let shape = t.shape.mut_or_insert_default();
    match b.byte() % 3 {
        0 => {
            shape.dim.pop();
        }
        1 => shape.dim.push(Default::default()),
        _ => {
            let k = b.below(shape.dim.len());
            if let Some(d) = shape.dim.get_mut(k) {
                d.value = Some(match b.byte() % 3 {
                    0 => dimension::Value::DimParam("N".into()),
                    _ => dimension::Value::DimValue(b.int()),
                });
            }
        }
    }
}
