"""Exports `op_zoo.onnx`, a small classifier that uses most of the ONNX operations DeepSight
imports (normalisation by Sub/Div constants, LeakyReLU, dilated grouped conv, Sigmoid gating by
Mul, ceil-mode max-pool, ConvTranspose with output padding, HardSwish, Concat, BatchNormalization
that cannot be folded, Tanh, HardSigmoid, F.pad before a conv, ReLU6 as Clip, AveragePool
without padded zeros, flatten through Shape/Gather/Unsqueeze/Concat/Reshape, Gemm, MatMul + Add,
Dropout, trailing Softmax), and `op_zoo.json` with PyTorch's logits and input gradients.

Re-run with the peers' Python (torch, onnx):  python make_op_zoo.py   (writes beside itself)."""
import json, os
import onnx
import torch
import torch.nn as nn
import torch.nn.functional as F

here = os.path.dirname(os.path.abspath(__file__))
torch.manual_seed(7)


class Zoo(nn.Module):
    def __init__(self):
        super().__init__()
        self.register_buffer("mean", torch.tensor([0.4, 0.5, 0.6]).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor([0.2, 0.25, 0.3]).view(1, 3, 1, 1))
        self.c1 = nn.Conv2d(3, 8, 3, padding=1)
        self.lrelu = nn.LeakyReLU(0.1)
        self.c2 = nn.Conv2d(8, 8, 3, padding=2, dilation=2, groups=2)
        self.pool = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.ct = nn.ConvTranspose2d(8, 4, 3, stride=2, padding=1, output_padding=1)
        self.bn = nn.BatchNorm2d(12)
        self.c3 = nn.Conv2d(12, 16, 3, stride=2)
        self.avg = nn.AvgPool2d(3, 2, padding=1, count_include_pad=False)
        self.fc1 = nn.Linear(16 * 8 * 8, 32)
        self.w2 = nn.Parameter(torch.randn(32, 10) * 0.3)
        self.b2 = nn.Parameter(torch.randn(10) * 0.1)
        self.drop = nn.Dropout(0.5)
        with torch.no_grad():
            self.bn.running_mean.uniform_(-0.2, 0.2)
            self.bn.running_var.uniform_(0.5, 1.5)
            self.bn.weight.uniform_(0.5, 1.5)
            self.bn.bias.uniform_(-0.2, 0.2)

    def forward(self, x):
        x = (x - self.mean) / self.std
        a = self.lrelu(self.c1(x))
        b = torch.sigmoid(self.c2(a)) * a
        b = self.pool(b)
        u = F.hardswish(self.ct(b))
        c = torch.cat([a, u], 1)
        c = torch.tanh(self.bn(c))
        c = F.hardsigmoid(c) * 2.0
        d = F.relu6(self.c3(F.pad(c, (1, 1, 1, 1))))
        d = self.avg(d)
        e = d.view(d.size(0), -1)
        e = F.relu(self.fc1(e))
        e = self.drop(torch.matmul(e, self.w2) + self.b2)
        return torch.softmax(e, 1)


m = Zoo().eval()
x = torch.rand(2, 3, 32, 32)
torch.onnx.export(m, (x[:1],), os.path.join(here, "op_zoo.onnx"), input_names=["input"], output_names=["probs"],
                  dynamo=False, opset_version=17, dynamic_axes={"input": {0: "batch"}, "probs": {0: "batch"}})
xg = x.clone().requires_grad_(True)
probs = m(xg)
# Pre-softmax scores: the network up to the MatMul + Add (dropout is the identity in eval).
def scores(inp):
    z = (inp - m.mean) / m.std
    a = m.lrelu(m.c1(z)); b = m.pool(torch.sigmoid(m.c2(a)) * a); u = F.hardswish(m.ct(b))
    c = torch.cat([a, u], 1); c = F.hardsigmoid(torch.tanh(m.bn(c))) * 2.0
    d = m.avg(F.relu6(m.c3(F.pad(c, (1, 1, 1, 1))))); e = F.relu(m.fc1(d.view(d.size(0), -1)))
    return torch.matmul(e, m.w2) + m.b2
s = scores(xg)
assert torch.allclose(torch.softmax(s, 1), probs, atol=1e-6)
target = s.argmax(1)
s.gather(1, target[:, None]).sum().backward()
out = {"input": x.flatten().tolist(), "shape": list(x.shape), "logits": s.detach().flatten().tolist(),
       "target": target.tolist(), "input_grad": xg.grad.flatten().tolist()}
with open(os.path.join(here, "op_zoo.json"), "w") as f:
    json.dump(out, f)
print("logits", s.detach()[0, :5], "target", target.tolist())


# A hand-written graph for what torch does not emit: LRN (torch decomposes LocalResponseNorm),
# auto_pad SAME_UPPER / SAME_LOWER, GlobalMaxPool, Squeeze, MatMul on a squeezed vector.
# Its reference output comes from onnx's own reference evaluator.
import numpy as np
from onnx import TensorProto, helper, numpy_helper
from onnx.reference import ReferenceEvaluator
from onnx.reference.op_run import OpRun

rng = np.random.default_rng(3)
def init(name, *shape, scale=0.3):
    return numpy_helper.from_array((rng.standard_normal(shape) * scale).astype(np.float32), name)
inits = [init("w1", 6, 3, 3, 3), init("b1", 6), init("w2", 6, 6, 4, 4), init("w3", 6, 5),
         numpy_helper.from_array(np.array([2, 3], dtype=np.int64), "axes")]
nodes = [
    helper.make_node("Conv", ["input", "w1", "b1"], ["conv1"], strides=[2, 2], auto_pad="SAME_UPPER"),
    helper.make_node("LRN", ["conv1"], ["lrn"], size=3, alpha=0.05, beta=0.75, bias=1.5),
    helper.make_node("Conv", ["lrn", "w2"], ["conv2"], auto_pad="SAME_LOWER"),
    helper.make_node("Relu", ["conv2"], ["relu"]),
    helper.make_node("AveragePool", ["relu"], ["avg"], kernel_shape=[3, 3], strides=[2, 2], auto_pad="SAME_UPPER"),
    helper.make_node("GlobalMaxPool", ["avg"], ["gmax"]),
    helper.make_node("Squeeze", ["gmax", "axes"], ["flat"]),
    helper.make_node("MatMul", ["flat", "w3"], ["scores"]),
]
graph = helper.make_graph(nodes, "handmade", [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 3, 11, 11])],
                          [helper.make_tensor_value_info("scores", TensorProto.FLOAT, ["N", 5])], inits)
model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
onnx.checker.check_model(model)
onnx.save(model, os.path.join(here, "handmade.onnx"))


def lrn_spec(x, alpha, beta, bias, size):
    lo, hi = (size - 1) // 2, -(-(size - 1) // 2)
    square_sum = np.zeros_like(x)
    for c in range(x.shape[1]):
        square_sum[:, c] = (x[:, max(0, c - lo):min(x.shape[1], c + hi + 1)] ** 2).sum(axis=1)
    return (x / (bias + alpha / size * square_sum) ** beta).astype(x.dtype)


class LRN(OpRun):
    # onnx 1.23's reference LRN loops over the batch instead of the channels (`range(x.shape[0])`),
    # leaving most channels unnormalised; this is the specification's formula.
    op_domain = ""

    def _run(self, x, alpha=None, beta=None, bias=None, size=None):
        return (lrn_spec(x, alpha, beta, bias, size),)


# The specification's LRN is PyTorch's LocalResponseNorm.
lrn_in = rng.standard_normal((2, 6, 4, 4)).astype(np.float32)
torch_lrn = F.local_response_norm(torch.tensor(lrn_in), 3, alpha=0.05, beta=0.75, k=1.5).numpy()
assert np.abs(lrn_spec(lrn_in, 0.05, 0.75, 1.5, 3) - torch_lrn).max() < 1e-5

hx = rng.random((2, 3, 11, 11), dtype=np.float32)
(hy,) = ReferenceEvaluator(model, new_ops=[LRN]).run(None, {"input": hx})
with open(os.path.join(here, "handmade.json"), "w") as f:
    json.dump({"input": hx.flatten().tolist(), "shape": list(hx.shape), "logits": hy.flatten().tolist()}, f)
print("handmade", hy[0])

# The shape tf2onnx gives a Keras classifier: an NHWC input transposed to NCHW first thing,
# ReLU6 as Clip, global average pooling as ReduceMean over H and W, the dense layer as MatMul + Add,
# and a trailing Softmax. `tf2onnx.json` holds the input already in NCHW, as DeepSight feeds it.
inits = [init("k", 4, 3, 3, 3), init("dense", 4, 3), init("dense_bias", 3, scale=0.1),
         numpy_helper.from_array(np.array(0.0, dtype=np.float32), "zero"),
         numpy_helper.from_array(np.array(6.0, dtype=np.float32), "six")]
nodes = [
    helper.make_node("Transpose", ["image"], ["nchw"], perm=[0, 3, 1, 2]),
    helper.make_node("Conv", ["nchw", "k"], ["conv"], strides=[2, 2], auto_pad="SAME_UPPER"),
    helper.make_node("Clip", ["conv", "zero", "six"], ["relu6"]),
    helper.make_node("ReduceMean", ["relu6"], ["gap"], axes=[2, 3], keepdims=0),
    helper.make_node("MatMul", ["gap", "dense"], ["dense_out"]),
    helper.make_node("Add", ["dense_out", "dense_bias"], ["scores"]),
    helper.make_node("Softmax", ["scores"], ["probs"], axis=-1),
]
graph = helper.make_graph(nodes, "tf2onnx_like", [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 9, 9, 3])],
                          [helper.make_tensor_value_info("probs", TensorProto.FLOAT, ["N", 3])], inits)
model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
onnx.checker.check_model(model)
onnx.save(model, os.path.join(here, "tf2onnx_like.onnx"))
tx = rng.random((2, 9, 9, 3), dtype=np.float32) * 4 - 1
ref = ReferenceEvaluator(model)
ref_model = helper.make_model(helper.make_graph(nodes[:-1], "scores", graph.input,
                              [helper.make_tensor_value_info("scores", TensorProto.FLOAT, ["N", 3])], inits),
                              opset_imports=[helper.make_opsetid("", 13)])
(ty,) = ReferenceEvaluator(ref_model).run(None, {"image": tx})
with open(os.path.join(here, "tf2onnx_like.json"), "w") as f:
    json.dump({"input": tx.transpose(0, 3, 1, 2).flatten().tolist(), "shape": [2, 3, 9, 9], "logits": ty.flatten().tolist()}, f)
print("tf2onnx-like", ty[0])
