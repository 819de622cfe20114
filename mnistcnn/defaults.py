"""The defaults ledger: every implicit setting that makes "the same network" differ
between PyTorch and Keras, READ FROM THE INSTALLED FRAMEWORKS (signatures, and small
measurements where a signature cannot tell: initial weight bounds, the BatchNorm
variance estimator, where the optimizers add epsilon, weight-decay coupling, padding
side...), side by side with what mnistcnn's harmonized mode uses. Plus lint warnings
for known mistakes.
"""
from __future__ import annotations

import inspect
import math
import os

import numpy as np

from .backends import PAIR


def _default(fn, name):
    return inspect.signature(fn).parameters[name].default


# -- measurements, torch --------------------------------------------------------------
def _torch_facts() -> dict:
    import torch
    from torch import nn

    torch.manual_seed(0)
    lin = nn.Linear(400, 300)
    w_bound = float(lin.weight.detach().abs().max()) * math.sqrt(400)
    b_bound = float(lin.bias.detach().abs().max()) * math.sqrt(400)
    bn = nn.BatchNorm1d(1, momentum=1.0)
    bn.train()
    bn(torch.tensor([[0.0], [2.0]]))
    assert bn.running_var is not None  # track_running_stats (the default)
    var = float(bn.running_var[0])

    def one_step(make, lrs=(1.0,), grad=1e-3, w0=0.0, wd_only=False):
        w = torch.nn.Parameter(torch.tensor([w0]))
        opt = make([w])
        for lr in lrs:
            for g in opt.param_groups:
                g["lr"] = lr
            w.grad = torch.tensor([0.0 if wd_only else grad])
            opt.step()
        return float(w.detach()[0])

    adam = -one_step(lambda p: torch.optim.Adam(p, lr=1.0, eps=1e-3))
    rms = -one_step(lambda p: torch.optim.RMSprop(p, lr=1.0, alpha=0.9, eps=1e-3))
    # Adam with weight decay 0.1 and a zero loss gradient, one step of lr 0.01 from w = 1:
    # coupled decay makes the gradient 0.1 and Adam normalises it to a full step (Δw/lr = 1);
    # decoupled decay shrinks w by lr * wd (Δw/lr = 0.1)
    decay = 1 - one_step(lambda p: torch.optim.Adam(p, lr=0.01, weight_decay=0.1), lrs=(0.01,),
                         w0=1.0, wd_only=True)
    sgd = one_step(lambda p: torch.optim.SGD(p, lr=1.0, momentum=0.9), lrs=(1.0, 0.1), grad=1.0)
    try:
        nn.Conv2d(1, 1, 2, stride=2, padding="same")
        same = "accepted"
    except ValueError:
        same = "refused for stride > 1 (pad explicitly)"
    pool = nn.AvgPool2d(3, stride=1, padding=1)(torch.ones(1, 1, 3, 3))
    probs = torch.tensor([[1.0, 0.0]])
    ce = float(nn.CrossEntropyLoss()(probs, torch.tensor([0])))
    return {
        "init_weight": f"U(±1/sqrt(fan_in)) (measured max|w|·sqrt(fan_in) = {w_bound:.3f})",
        "init_bias": f"U(±1/sqrt(fan_in)) (measured max|b|·sqrt(fan_in) = {b_bound:.3f})",
        "bn_momentum": f"running = {1 - _default(nn.BatchNorm2d, 'momentum'):g}·running + "
                       f"{_default(nn.BatchNorm2d, 'momentum'):g}·batch "
                       f"(momentum={_default(nn.BatchNorm2d, 'momentum')})",
        "bn_epsilon": f"{_default(nn.BatchNorm2d, 'eps'):g}",
        "bn_variance": "unbiased (n-1) stored, biased used to normalise" if abs(var - 2) < 1e-6
                       else f"biased (measured {var:g} for [0, 2])",
        "adam_epsilon": f"{_default(torch.optim.Adam, 'eps'):g}, added to sqrt(v̂) after bias correction"
                        if adam > 0.3 else
                        f"{_default(torch.optim.Adam, 'eps'):g}, epsilon-hat (measured step {adam:.3f})",
        "rmsprop": f"alpha {_default(torch.optim.RMSprop, 'alpha')}, eps {_default(torch.optim.RMSprop, 'eps'):g} "
                   + ("added to sqrt(v)" if rms > 0.3 else "inside the square root"),
        "adadelta": f"lr {_default(torch.optim.Adadelta, 'lr')}, rho {_default(torch.optim.Adadelta, 'rho')}, "
                    f"eps {_default(torch.optim.Adadelta, 'eps'):g}",
        "default_lr": f"SGD {_default(torch.optim.SGD, 'lr')}, Adam {_default(torch.optim.Adam, 'lr')}, "
                      f"RMSprop {_default(torch.optim.RMSprop, 'lr')}",
        "weight_decay": ("coupled L2 in the gradient (Adam, SGD)" if decay / 0.01 > 0.5
                         else "decoupled") + f" (measured Δw/lr = {decay / 0.01:.2f} for wd 0.1)",
        "sgd_momentum": "b = μ·b + g; w -= lr·b" if abs(sgd + 1.19) < 1e-6 else "v = μ·v − lr·g; w += v",
        "leaky_relu": f"{_default(nn.LeakyReLU, 'negative_slope')}",
        "same_padding": same,
        "avgpool_padding": "padded cells counted (count_include_pad=True)" if float(pool[0, 0, 0, 0]) < 0.99
                           else "padded cells excluded",
        "loss_on_probabilities": f"CrossEntropyLoss treats its input as logits: a softmax output is "
                                 f"squashed again (loss {ce:.3f} for probabilities [1, 0], true 0)",
        "fit": "no fit(): batches, shuffling and validation are whatever the loop does",
        "threads": f"{torch.get_num_threads()} intra-op, {torch.get_num_interop_threads()} inter-op",
        "flags": f"mkldnn {'on' if torch.backends.mkldnn.is_available() else 'off'}, deterministic "
                 f"algorithms {'on' if torch.are_deterministic_algorithms_enabled() else 'off'}",
        "layout": "channels_first (N, C, H, W); Flatten in C, H, W order",
    }


# -- measurements, keras --------------------------------------------------------------
def _keras_facts() -> dict:
    """Keras' defaults as measured on the framework it runs on in this process
    (mnistcnn.backends.call picks it: TensorFlow for 'keras', JAX for 'jax')."""
    import keras

    keras.utils.set_random_seed(0)
    dense = keras.layers.Dense(300)
    dense.build((None, 400))
    w, b = dense.get_weights()
    w_bound = float(np.abs(w).max()) / math.sqrt(6 / 700)
    bn = keras.layers.BatchNormalization(momentum=0.0)
    bn(np.array([[0.0], [2.0]], np.float32), training=True)
    var = float(bn.moving_variance.numpy()[0])

    def one_step(opt, lrs=(1.0,), grad=1e-3, w0=0.0):
        v = keras.Variable(np.array([w0], np.float32))
        opt.build([v])
        for lr in lrs:
            opt.learning_rate = lr
            opt.apply([np.array([grad], np.float32)], [v])
        return float(v.numpy()[0])

    adam = -one_step(keras.optimizers.Adam(epsilon=1e-3))
    rms = -one_step(keras.optimizers.RMSprop(rho=0.9, epsilon=1e-3))
    decay = 1 - one_step(keras.optimizers.Adam(learning_rate=0.01, weight_decay=0.1), lrs=(0.01,),
                         grad=0.0, w0=1.0)
    sgd = one_step(keras.optimizers.SGD(momentum=0.9), lrs=(1.0, 0.1), grad=1.0)
    x = np.arange(1, 10, dtype=np.float32).reshape(1, 3, 3, 1)
    conv = keras.layers.Conv2D(1, 2, strides=2, padding="same", use_bias=False, kernel_initializer="ones")
    corner = float(conv(x)[0, 0, 0, 0])
    pool = keras.layers.AveragePooling2D(3, 1, padding="same")(np.ones((1, 3, 3, 1), np.float32))
    probs = keras.layers.Activation("softmax")(keras.ops.convert_to_tensor(np.array([[30.0, 0.0]], np.float32)))
    ce = float(keras.losses.SparseCategoricalCrossentropy()(np.array([1]), probs))
    fit = inspect.signature(keras.Model.fit).parameters
    compile_ = inspect.signature(keras.Model.compile).parameters
    return {
        "init_weight": f"{_default(keras.layers.Dense, 'kernel_initializer')}: U(±sqrt(6/(fan_in+fan_out))) "
                       f"(measured max|w|/limit = {w_bound:.3f})",
        "init_bias": f"{_default(keras.layers.Dense, 'bias_initializer')} "
                     f"(measured max|b| = {float(np.abs(b).max()):g})",
        "bn_momentum": f"moving = {_default(keras.layers.BatchNormalization, 'momentum')}·moving + "
                       f"{1 - _default(keras.layers.BatchNormalization, 'momentum'):g}·batch",
        "bn_epsilon": f"{_default(keras.layers.BatchNormalization, 'epsilon'):g}",
        "bn_variance": "biased (n) stored and used" if abs(var - 1) < 1e-6 else f"unbiased (measured {var:g})",
        "adam_epsilon": f"{_default(keras.optimizers.Adam, 'epsilon'):g}, "
                        + ("added to sqrt(v) before bias correction (epsilon-hat)" if adam < 0.3
                           else "added to sqrt(v̂)"),
        "rmsprop": f"rho {_default(keras.optimizers.RMSprop, 'rho')}, "
                   f"eps {_default(keras.optimizers.RMSprop, 'epsilon'):g} "
                   + ("inside the square root: sqrt(v + eps)" if rms < 0.3 else "added to sqrt(v)"),
        "adadelta": f"lr {_default(keras.optimizers.Adadelta, 'learning_rate')}, rho "
                    f"{_default(keras.optimizers.Adadelta, 'rho')}, "
                    f"eps {_default(keras.optimizers.Adadelta, 'epsilon'):g}",
        "default_lr": f"SGD {_default(keras.optimizers.SGD, 'learning_rate')}, Adam "
                      f"{_default(keras.optimizers.Adam, 'learning_rate')}, "
                      f"RMSprop {_default(keras.optimizers.RMSprop, 'learning_rate')}",
        "weight_decay": ("decoupled: w -= lr·wd·w" if decay / 0.01 < 0.5 else "coupled")
                        + f" (measured Δw/lr = {decay / 0.01:.2f} for wd 0.1)",
        "sgd_momentum": "v = μ·v − lr·g; w += v" if abs(sgd + 2.0) < 1e-6 else "b = μ·b + g; w -= lr·b",
        "leaky_relu": f"{_default(keras.layers.LeakyReLU, 'negative_slope')}",
        "same_padding": "extra pixel at the end (bottom/right)" if corner == 12.0 else "extra pixel at the start",
        "avgpool_padding": "padded cells excluded" if abs(float(pool[0, 0, 0, 0]) - 1) < 1e-6
                           else "padded cells counted",
        "loss_on_probabilities": f"recovers the logits of a softmax output (measured loss {ce:.2f} "
                                 "for logits [30, 0], true 30)" if ce > 25 else
                                 f"clips probabilities (measured loss {ce:.2f} for logits [30, 0], true 30)",
        "fit": f"batch_size {fit['batch_size'].default} (= 32), shuffle={fit['shuffle'].default}, "
               "validation_split takes the LAST samples, before shuffling",
        **_keras_framework_facts(keras.backend.backend(), compile_['jit_compile'].default),
        "layout": "channels_last (N, H, W, C); Flatten in H, W, C order",
    }


def _keras_framework_facts(framework: str, jit_default) -> dict:
    if framework == "tensorflow":
        import tensorflow as tf

        return {"threads": f"{tf.config.threading.get_intra_op_parallelism_threads()} intra-op, "
                           f"{tf.config.threading.get_inter_op_parallelism_threads()} inter-op "
                           "(0 = TensorFlow decides)",
                "flags": f"oneDNN {os.environ.get('TF_ENABLE_ONEDNN_OPTS', 'on (default on x86)')}, "
                         f"compile(jit_compile={jit_default!r}): 'auto' means no XLA on TensorFlow"}
    import jax

    return {"threads": f"XLA's CPU pool: every core the process may use ({len(os.sched_getaffinity(0))} here)",
            "flags": f"XLA always (jax.jit); compile(jit_compile={jit_default!r}); 64-bit types "
                     f"{'on' if jax.config.read('jax_enable_x64') else 'off'} "
                     "(jax_enable_x64: float64 silently becomes float32)"}


ITEMS = {  # item -> (label, what mnistcnn's harmonized mode does)
    "init_weight": ("weight init", "numpy, the same arrays in every backend (glorot_uniform or torch_default, "
                                   "from the seed)"),
    "init_bias": ("bias init", "numpy, the same arrays in every backend"),
    "bn_momentum": ("BatchNorm momentum", "the spec's value in every backend (Keras convention in the spec)"),
    "bn_epsilon": ("BatchNorm epsilon", "the spec's value in every backend"),
    "bn_variance": ("BatchNorm running variance", "unbiased in every backend, mean subtracted before scaling "
                                                  "(Keras layer subclassed: TorchBatchNormalization)"),
    "adam_epsilon": ("Adam epsilon", "PyTorch's rule and value in every backend (Keras update_step subclassed)"),
    "rmsprop": ("RMSprop", "PyTorch's rule and values in every backend"),
    "adadelta": ("Adadelta", "PyTorch's values in every backend (same formula)"),
    "default_lr": ("default learning rates", "always explicit in TrainConfig"),
    "weight_decay": ("weight decay", "coupled L2 in every backend"),
    "sgd_momentum": ("SGD momentum form", "PyTorch's form in every backend (differs only when lr changes)"),
    "leaky_relu": ("LeakyReLU slope", "explicit in the spec (Activation('leaky_relu', negative_slope=...))"),
    "same_padding": ("'same' padding, stride > 1", "TensorFlow's placement in every backend (explicit asymmetric "
                                                   "padding in torch)"),
    "avgpool_padding": ("average pooling over padding", "padded cells excluded in every backend"),
    "loss_on_probabilities": ("loss on a softmax output", "cross-entropy on logits in every backend; a softmax head "
                                                         "is dropped for training"),
    "fit": ("batches, shuffle, validation split", "one numpy sampler per (seed, epoch); the LAST val_size images "
                                                  "validate"),
    "threads": ("threads", "set explicitly per run and recorded"),
    "flags": ("backend flags", "recorded with every run (oneDNN default, no XLA)"),
    "layout": ("tensor layout", "spec is (C, H, W); Keras weights translated, Flatten rows permuted"),
}


#: column titles of the ledger
TITLES = {"torch": "PyTorch native", "keras": "Keras native (TensorFlow)", "jax": "Keras native (JAX)"}


class Ledger(list):
    """The ledger's rows (a list of dicts), shown in a notebook as its table."""

    def _repr_markdown_(self) -> str:
        return ledger_markdown(self) + "\n"

    def _repr_html_(self) -> str:
        from ._display import Doc

        backends = [b for b in TITLES if self and b in self[0]]
        return Doc().table(["setting", *(TITLES[b] for b in backends), "mnistcnn harmonized", "differs"],
                           [[r["label"], *(r[b] for b in backends), r["harmonized"], "yes" if r["differs"] else "no"]
                            for r in self]).html()


def ledger(backends=PAIR) -> Ledger:
    """One row per item: each backend's native setting, mnistcnn harmonized, and whether
    the native settings differ. Keras is measured on each framework it runs on, each in
    a process of its own where needed (mnistcnn.backends.call). A notebook shows it as
    a table."""
    from .backends import call

    facts = {b: _torch_facts() if b == "torch" else call(b, _keras_facts) for b in backends}
    rows = []
    for item, (label, harmonized) in ITEMS.items():
        values = {b: facts[b][item] for b in backends}
        differs = len({_strip(v) for v in values.values()}) > 1
        rows.append({"item": item, "label": label, **values, "harmonized": harmonized, "differs": differs})
    return Ledger(rows)


def _strip(text: str) -> str:
    """Compare settings, not the measurement notes in parentheses."""
    return text.split(" (measured")[0]


def ledger_markdown(rows) -> str:
    backends = [b for b in TITLES if b in rows[0]]
    lines = ["| setting | " + " | ".join(TITLES[b] for b in backends) + " | mnistcnn harmonized | differs |",
             "|---|" + "---|" * len(backends) + "---|---|"]
    for r in rows:
        lines.append(f"| {r['label']} | " + " | ".join(r[b] for b in backends) + f" | {r['harmonized']} | "
                     f"{'**yes**' if r['differs'] else 'no'} |")
    return "\n".join(lines)


def lint_keras_model(model) -> list[str]:
    """BatchNormalization on a non-channel axis of channels_last image data (the Keras
    notebook's axis=1 mistake: it normalises the height and holds 4*H weights)."""
    import keras

    out = []
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            rank = len(layer.input.shape)
            axes = layer.axis if isinstance(layer.axis, (list, tuple)) else [layer.axis]
            if rank == 4 and any(a % rank != 3 for a in axes):
                h = layer.input.shape[1]
                out.append(
                    f"layer '{layer.name}': BatchNormalization(axis={layer.axis}) on (N, H, W, C) data "
                    f"normalises the height, not the channels ({layer.count_params()} weights = 4 x {h}); "
                    "use axis=-1.")
    return out


def lint_labels(y) -> list[str]:
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] == 1:
        return [f"labels have shape {y.shape} ([B, 1]); against outputs or targets of shape [B] a "
                "hand-written loss broadcasts to [B, B]. Use y.reshape(-1)."]
    return []
