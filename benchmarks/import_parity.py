"""Imported models against their originals: the largest output difference on all 10,000
MNIST test images after moving each model's weights into the other framework.

    MNISTCNN_DATA_DIR=../shared/data/mnist python benchmarks/import_parity.py
"""
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from test_importers import (  # noqa: E402
    keras_bn_model,
    keras_resnet,
    keras_simple_convnet,
    keras_tutorial_models,
    torch_modules,
    torch_resnet,
    torch_tutorial_models,
)

from mnistcnn import data  # noqa: E402
from mnistcnn.backends import get_backend  # noqa: E402
from mnistcnn.importers import from_keras, from_torch  # noqa: E402


def main():
    import torch

    ds = data.load("mnist")
    x = data.normalize(ds.x_test, "standard")
    print("| model | from | into | parameters | output | largest abs difference | same predicted class |")
    print("|---|---|---|---:|---|---:|---:|")
    keras_models = {"keras.io Simple MNIST convnet": keras_simple_convnet(), "Keras BN model": keras_bn_model(),
                    "Keras functional ResNet (layers.Add, a projection block)": keras_resnet(),
                    **{f"Keras {k}" : m for k, m in keras_tutorial_models().items()}}
    for name, model in keras_models.items():
        spec, w = from_keras(model, with_weights=True)
        tb = get_backend("torch")
        twin = tb.build(spec)
        tb.set_weights(twin, spec, w)
        given = x.reshape(len(x), -1) if name == "Keras reshape-input" else x.transpose(0, 2, 3, 1)
        a, b = model.predict(given, batch_size=1000, verbose=0), tb.predict(twin, spec, x)
        out = "softmax" if spec.layers[-1].__dict__.get("activation") == "softmax" else "logits"
        print(f"| {name} | Keras | PyTorch | {spec.total_params:,} | {out} | {np.abs(a - b).max():.2e} | "
              f"{(a.argmax(1) == b.argmax(1)).sum():,}/10,000 |")
    labels = {"examples-net": "pytorch/examples Net (today)", "net-2019": "report 001's 2019 Net",
              "sequential-bn": "nn.Sequential with BatchNorm",
              "resnet": "torchvision-style ResNet (BasicBlock, out += identity, downsample)",
              **{k: f"PyTorch {k}" for k in torch_tutorial_models()}}
    modules = {**{k: m for k, (m, _) in torch_modules().items()}, "resnet": torch_resnet(), **torch_tutorial_models()}
    for name, module in modules.items():
        module.eval()
        spec, w = from_torch(module, with_weights=True)
        kb = get_backend("keras")
        twin = kb.build(spec)
        kb.set_weights(twin, spec, w)
        with torch.no_grad():
            a = module(torch.from_numpy(x.reshape(len(x), -1) if name == "flat-784" else x)).numpy()
        b = kb.predict(twin, spec, x)
        out = "log-softmax" if name in ("examples-net", "net-2019") else "logits"
        print(f"| {labels[name]} | PyTorch | Keras | {spec.total_params:,} | {out} | {np.abs(a - b).max():.2e} | "
              f"{(a.argmax(1) == b.argmax(1)).sum():,}/10,000 |")


if __name__ == "__main__":
    main()
