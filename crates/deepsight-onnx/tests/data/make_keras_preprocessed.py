"""A tf2onnx-shaped Keras model whose preprocessing (Rescaling 1/255, Normalization by mean and
variance, as Keras EfficientNet and ConvNeXt carry them) runs on the NHWC input before the
NHWC-to-NCHW Transpose, with onnxruntime's logits, for `tests/modern_zoo.rs`.

    python3 make_keras_preprocessed.py     # writes keras_preprocessed.onnx and .json beside itself
"""

import json
import os

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

HERE = os.path.dirname(os.path.abspath(__file__))
rng = np.random.default_rng(0)


def init(name, a):
    return numpy_helper.from_array(np.asarray(a, dtype=np.float32), name)


nodes = [
    helper.make_node("Mul", ["input", "rescale"], ["rescaled"], name="rescaling"),
    helper.make_node("Sub", ["rescaled", "mean"], ["centred"], name="normalization_sub"),
    helper.make_node("Div", ["centred", "std"], ["normalized"], name="normalization_div"),
    helper.make_node("Transpose", ["normalized"], ["nchw"], perm=[0, 3, 1, 2], name="to_nchw"),
    helper.make_node("Conv", ["nchw", "w", "b"], ["conv"], pads=[1, 1, 1, 1], name="stem_conv"),
    helper.make_node("Sigmoid", ["conv"], ["sig"], name="stem_sigmoid"),
    helper.make_node("Mul", ["conv", "sig"], ["swish"], name="stem_swish"),
    helper.make_node("GlobalAveragePool", ["swish"], ["gap"], name="gap"),
    helper.make_node("Flatten", ["gap"], ["flat"], name="flatten"),
    helper.make_node("Gemm", ["flat", "fc", "fcb"], ["logits"], transB=1, name="predictions"),
]
inits = [
    init("rescale", [1 / 255.0]),
    init("mean", [0.485, 0.456, 0.406]),
    init("std", np.sqrt([0.229, 0.224, 0.225])),
    init("w", rng.normal(0, 0.3, (8, 3, 3, 3))),
    init("b", rng.normal(0, 0.1, 8)),
    init("fc", rng.normal(0, 0.5, (5, 8))),
    init("fcb", rng.normal(0, 0.1, 5)),
]
graph = helper.make_graph(
    nodes, "keras_preprocessed",
    [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 16, 16, 3])],
    [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 5])], inits)
model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], producer_name="tf2onnx-like")
path = os.path.join(HERE, "keras_preprocessed.onnx")
onnx.save(model, path)
x = rng.uniform(0, 255, (1, 16, 16, 3)).astype(np.float32)
logits = ort.InferenceSession(path, providers=["CPUExecutionProvider"]).run(None, {"input": x})[0]
with open(os.path.join(HERE, "keras_preprocessed.json"), "w") as f:
    json.dump({"input_nchw": x.transpose(0, 3, 1, 2).flatten().tolist(), "logits": logits[0].tolist()}, f)
print(path, logits)
