"""Writes the two generated seed models of the structure-aware ONNX fuzz target beside itself:

  tiny_zoo.onnx     torch.onnx.export of a small CNN with most layer types the importer reads
                    (convolutions with BatchNorm folded in, ConvTranspose, depthwise and dilated
                    convolutions, padded pools, activations, Concat, Gemm)
  tiny_shapes.onnx  a model whose flatten is `x.view(x.size(0), -1)` and whose padding is
                    computed (Shape/Gather/Concat/Reshape/Pad/Slice chains, as TF-SAME exports)

Channels are 2 to 6 and the input 3x12x12, so each file is a few kilobytes.
Re-run with torch and onnx installed:  python make_seeds.py"""
import os
import torch
import torch.nn as nn
import torch.nn.functional as F

here = os.path.dirname(os.path.abspath(__file__))
torch.manual_seed(5)


class Zoo(nn.Module):
    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv2d(3, 4, 3, stride=1, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.dw = nn.Conv2d(4, 4, 3, padding=2, dilation=2, groups=4)
        self.up = nn.ConvTranspose2d(4, 2, 2, stride=2)
        self.c2 = nn.Conv2d(6, 6, 1)
        self.fc = nn.Linear(6, 5)
        self.bn.running_mean.uniform_(-0.5, 0.5)
        self.bn.running_var.uniform_(0.5, 1.5)

    def forward(self, x):
        a = F.relu6(self.bn(self.c1(x)))
        b = F.hardswish(self.dw(a))
        c = F.avg_pool2d(self.up(b), 4)
        d = F.max_pool2d(torch.sigmoid(a), 3, stride=2, padding=1)
        e = torch.cat([F.leaky_relu(c, 0.1), d], 1)
        f = self.c2(e) * 0.5 + 1.0
        g = F.adaptive_avg_pool2d(torch.tanh(f), 1).flatten(1)
        return self.fc(g)


class Shapes(nn.Module):
    def __init__(self):
        super().__init__()
        self.c = nn.Conv2d(3, 3, 3, stride=2)
        self.fc = nn.Linear(3 * 3 * 3, 4)

    def forward(self, x):
        # TF-SAME padding computed from the input's size.
        h, w = x.shape[2], x.shape[3]
        ph = max((-(-h // 2) - 1) * 2 + 3 - h, 0)
        pw = max((-(-w // 2) - 1) * 2 + 3 - w, 0)
        x = F.pad(x, [pw // 2, pw - pw // 2, ph // 2, ph - ph // 2])
        y = F.max_pool2d(torch.relu(self.c(x)), 2)
        y = y.view(y.size(0), -1)
        return torch.softmax(self.fc(y), dim=1)


for name, m in [("tiny_zoo", Zoo()), ("tiny_shapes", Shapes())]:
    m.eval()
    torch.onnx.export(
        m,
        torch.zeros(1, 3, 12, 12),
        os.path.join(here, name + ".onnx"),
        input_names=["input"],
        output_names=["logits"],
        opset_version=13,
        dynamo=False,
    )
