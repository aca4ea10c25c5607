"""Keras classifiers converted by tf2onnx, for the model-zoo test (`torchvision_zoo.rs` reads
every `<name>.json` of its folder): random weights (BatchNorm moving statistics included),
Keras's own logits, input gradient and Grad-CAM inputs, all in NCHW order (DeepSight feeds NCHW).
Keras EfficientNet carries its preprocessing (Rescaling, Normalization) before the NHWC-to-NCHW
Transpose, which DeepSight runs as part of the model.

    pip install tensorflow-cpu tf2onnx onnxruntime
    python3 scripts/make_keras_zoo.py DIR
"""

import json
import os
import sys

import numpy as np
import onnx
import tensorflow as tf
import tf2onnx

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "crates", "deepsight-onnx", "tests", "data"))
from make_modern_zoo import value_named  # noqa: E402

MODELS = {
    "keras_mobilenet_v2": (lambda: tf.keras.applications.MobileNetV2(weights=None, classifier_activation=None),
                           "out_relu", lambda r: r.normal(0, 0.5, (1, 224, 224, 3))),
    "keras_efficientnet_b0": (lambda: tf.keras.applications.EfficientNetB0(weights=None, classifier_activation=None),
                              "top_activation", lambda r: r.uniform(0, 255, (1, 224, 224, 3))),
}


def randomise(model, rng):
    for layer in model.layers:
        if isinstance(layer, tf.keras.layers.BatchNormalization):
            n = layer.moving_mean.shape[0]
            layer.moving_mean.assign(rng.normal(0, 0.2, n).astype(np.float32))
            layer.moving_variance.assign(rng.uniform(0.5, 1.5, n).astype(np.float32))
            layer.gamma.assign(rng.normal(1, 0.3, n).astype(np.float32))
            layer.beta.assign(rng.normal(0, 0.3, n).astype(np.float32))


def main():
    out_dir = sys.argv[1]
    os.makedirs(out_dir, exist_ok=True)
    for name, (make, cam, sample) in MODELS.items():
        rng = np.random.default_rng(0)
        model = make()
        randomise(model, rng)
        x = sample(rng).astype(np.float32)
        probe = tf.keras.Model(model.inputs, [model.get_layer(cam).output, model.outputs[0]])
        xt = tf.constant(x)
        with tf.GradientTape(persistent=True) as tape:
            tape.watch(xt)
            a, logits = probe(xt, training=False)
            target = int(tf.argmax(logits[0]))
            score = logits[0, target]
        ga, gx = tape.gradient(score, [a, xt])
        spec = (tf.TensorSpec((1, 224, 224, 3), tf.float32, name="input"),)
        proto, _ = tf2onnx.convert.from_keras(model, input_signature=spec, opset=17)
        path = os.path.join(out_dir, f"{name}.onnx")
        onnx.save(proto, path)
        feed = {proto.graph.input[0].name: x}
        layer = value_named(path, None, a.numpy(), feed)
        nchw = lambda t: np.transpose(np.asarray(t), (0, 3, 1, 2))
        ref = {
            "input": nchw(x).flatten().tolist(), "shape": [1, 3, 224, 224], "target": target,
            "logits": np.asarray(logits[0]).tolist(), "input_grad": nchw(gx).flatten().tolist(),
            "cams": [{"module": cam, "layer": layer, "shape": list(nchw(a).shape),
                      "activation": nchw(a).flatten().tolist(), "gradient": nchw(ga).flatten().tolist()}],
        }
        with open(os.path.join(out_dir, f"{name}.json"), "w") as f:
            json.dump(ref, f)
        print(f"{name}: {os.path.getsize(path) / 1e6:.1f} MB, cam {cam} -> {layer}", flush=True)


if __name__ == "__main__":
    main()
