"""The neutral weight form: named numpy arrays in a fixed layout, and numpy initialisers.

Names are '<row name>.<kind>': conv2d_0.kernel, conv2d_0.bias, dense_5.kernel,
batchnorm_1.gamma / .beta / .moving_mean / .moving_variance; a composite's by their path,
residual_3.body.conv2d_0.kernel. The layout is the spec's
(channels first): a conv kernel is (out, in, kh, kw); a dense kernel is (out, in) with
its inputs in (C, H, W) flatten order. Each backend translates to and from this form.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from . import spec as S
from ._io import atomic_write_bytes
from .errors import CheckpointError, SpecError

INITS = ("glorot_uniform", "torch_default")


def shapes(spec) -> dict[str, tuple]:
    """Every neutral array's name and shape, in spec order (each layer kind declares its
    own: Layer.weight_shapes)."""
    return {f"{r.name}.{kind}": shape for r in spec.rows
            for kind, shape in r.layer.weight_shapes(r.input_shape).items()}


def by_row(spec, weights: dict) -> dict[str, dict]:
    """{row name: {kind: array}} of the rows that hold weights, in spec order."""
    out: dict[str, dict] = {}
    for name, value in weights.items():
        row, kind = name.split(".", 1)  # kind: a composite's weights keep their path (body.conv2d_0.kernel)
        out.setdefault(row, {})[kind] = value
    return {r.name: out[r.name] for r in spec.rows if r.name in out}


def initial(spec, seed: int, init: str = "glorot_uniform") -> dict[str, np.ndarray]:
    """Initial weights drawn with numpy from ``seed``, to be loaded into either backend.

    glorot_uniform: kernels U(+-sqrt(6 / (fan_in + fan_out))), biases 0 (Keras' default).
    torch_default: kernels and biases U(+-1/sqrt(fan_in)) (PyTorch's default,
    kaiming_uniform with a=sqrt(5)). BatchNorm: gamma 1, beta 0, mean 0, variance 1.
    """
    if init not in INITS:
        raise SpecError(f"Unknown init {init!r}. Valid: {', '.join(INITS)}.")
    rng = np.random.default_rng(seed)
    weights: dict[str, np.ndarray] = {}
    for name, shape in shapes(spec).items():
        kind = name.rsplit(".", 1)[1]
        if kind == "kernel":
            receptive = math.prod(shape[2:])
            fan_in, fan_out = shape[1] * receptive, shape[0] * receptive
            limit = (math.sqrt(6 / (fan_in + fan_out)) if init == "glorot_uniform"
                     else 1 / math.sqrt(fan_in))
            w = rng.uniform(-limit, limit, shape)
        elif kind == "bias" and init == "torch_default":
            fan_in = math.prod(weights[name[:-4] + "kernel"].shape[1:])
            w = rng.uniform(-1 / math.sqrt(fan_in), 1 / math.sqrt(fan_in), shape)
        elif kind in ("gamma", "moving_variance"):
            w = np.ones(shape)
        else:
            w = np.zeros(shape)
        weights[name] = w.astype(np.float32)
    return weights


def check(spec, weights: dict) -> None:
    """SpecError unless ``weights`` has exactly the spec's arrays and shapes, as finite floats."""
    expected = shapes(spec)
    missing = sorted(set(expected) - set(weights))
    extra = sorted(set(weights) - set(expected))
    wrong = [f"{n}: {tuple(weights[n].shape)} != {expected[n]}" for n in expected
             if n in weights and tuple(weights[n].shape) != expected[n]]
    if missing or extra or wrong:
        raise SpecError(
            f"Weights do not fit spec '{spec.name}': missing {missing}, unexpected {extra}, "
            f"wrong shapes {wrong}"
        )
    not_float = [f"{n} ({np.asarray(w).dtype})" for n, w in weights.items() if np.asarray(w).dtype.kind != "f"]
    not_finite = [n for n, w in weights.items() if np.asarray(w).dtype.kind == "f" and not np.isfinite(w).all()]
    if not_float or not_finite:
        found = [f"not floats: {', '.join(not_float)}"] * bool(not_float) + \
            [f"NaN or inf in: {', '.join(not_finite)}"] * bool(not_finite)
        raise SpecError(f"Weights of spec '{spec.name}' must be finite floats: {'; '.join(found)}. The checkpoint "
                        "is damaged or was saved from a diverged model.")


def save(path, spec, weights: dict, meta: dict | None = None) -> Path:
    """The neutral checkpoint: one .npz holding the spec JSON, metadata and the arrays."""
    import io

    buf = io.BytesIO()
    arrays = {"__spec__": np.array(S.to_json(spec)), "__meta__": np.array(json.dumps(meta or {}))}
    np.savez(buf, **arrays, **{k: np.asarray(v) for k, v in weights.items()})  # type: ignore[arg-type]
    return atomic_write_bytes(path, buf.getvalue())


def _what_it_holds(head: bytes) -> str:
    """What a file that is no .npz holds, from its first bytes, in words."""
    if not head:
        return "it is empty"
    if head[:1] == b"\x80" and head[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05"):
        return "it holds pickled Python objects (e.g. torch.save of a model), which mnistcnn never loads"
    return "it is not an .npz archive (a zip file)"


def load(path) -> tuple:
    """(spec, weights, meta) from a neutral checkpoint; anything else is a CheckpointError
    that names the file (never a hint to unpickle it)."""
    import zipfile

    path = Path(path)
    fix = "Give the weights.npz that training writes (e.g. runs/<name>/checkpoint/weights.npz)."
    if path.is_dir():
        raise CheckpointError(f"{path} is a directory, not a checkpoint file. {fix}")
    try:
        with open(path, "rb") as f:  # our handle: closed on any error
            head = f.read(6)
            f.seek(0)
            if not head.startswith((b"PK\x03\x04", b"\x93NUMPY")):  # neither a zip (.npz) nor a .npy
                raise CheckpointError(f"{path} is not a mnistcnn checkpoint: {_what_it_holds(head)}. {fix}")
            z = np.load(f, allow_pickle=False)
            if not isinstance(z, np.lib.npyio.NpzFile) or "__spec__" not in z.files:
                raise CheckpointError(f"{path} is not a mnistcnn checkpoint: it holds no spec. {fix}")
            spec = S.from_json(str(z["__spec__"]), f"The spec inside {path}")
            meta = json.loads(str(z["__meta__"])) if "__meta__" in z.files else {}
            weights = {k: z[k] for k in z.files if not k.startswith("__")}
    except CheckpointError:
        raise
    except FileNotFoundError:
        raise CheckpointError(f"{path} does not exist. {fix}") from None
    except ValueError as e:
        if "pickle" in str(e):  # a .npy of Python objects
            raise CheckpointError(f"{path} is not a mnistcnn checkpoint: it holds pickled Python objects, "
                                  f"which mnistcnn never loads. {fix}") from None
        raise CheckpointError(f"{path} is not a readable mnistcnn checkpoint ({e}). {fix}") from None
    except (zipfile.BadZipFile, EOFError, OSError, KeyError, json.JSONDecodeError) as e:
        what = "empty" if path.exists() and path.stat().st_size == 0 else f"{type(e).__name__}: {e}"
        raise CheckpointError(f"{path} is not a readable mnistcnn checkpoint ({what}): it is damaged or "
                              f"another kind of file. {fix}") from None
    check(spec, weights)
    return spec, weights, meta
