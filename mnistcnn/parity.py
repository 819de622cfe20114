"""Do the two backends compute the same thing? Three tiers, each against stated
tolerances scaled to the magnitude of the values, with the measured maxima always reported.

Tier 1, forward: every layer's inference-mode output in torch, keras and the numpy
  reference (mnistcnn.reference) on the same weights and images; the first layer whose
  difference exceeds the tolerance is named.
Tier 2, gradients: training-mode loss and every parameter gradient on one batch.
Tier 3, drift: K optimizer steps in both backends from the same weights and batches
  (harmonized), with the loss and weight divergence after each step.
Dropout is left out for the comparison (its masks come from different generators).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from . import reference
from . import weights as W
from .backends import get_backend
from .spec import variants

#: float32 frameworks against each other and against a float64 reference:
#: tolerance = ATOL + RTOL * (largest |value| of that layer or gradient)
FORWARD_TOL = {"atol": 1e-5, "rtol": 1e-4}
GRADIENT_TOL = {"atol": 1e-12, "rtol": 1e-9}  # float64 against float64


@dataclass
class Diff:
    name: str
    kind: str
    magnitude: float  # largest |value| of the reference
    tolerance: float
    max_abs: dict  # pair -> max |a - b|, pairs like 'torch-numpy'
    max_rel: dict  # pair -> max |a - b| / magnitude
    ok: bool


def sample_weights(spec, seed: int = 0) -> dict:
    """Initial weights with BatchNorm parameters and statistics drawn away from 1 and 0,
    so that the comparison exercises them."""
    w = W.initial(spec, seed)
    rng = np.random.default_rng(seed + 1)
    for name, v in w.items():
        kind = name.split(".")[1]
        if kind in ("gamma", "moving_variance"):
            w[name] = rng.uniform(0.5, 1.5, v.shape).astype(np.float32)
        elif kind in ("beta", "moving_mean", "bias"):
            w[name] = rng.normal(0, 0.1, v.shape).astype(np.float32)
    return w


def _diff(name, kind, values: dict, tol: dict, reference_key: str) -> Diff:
    ref = values[reference_key]
    magnitude = float(np.abs(ref).max()) if ref.size else 0.0
    tolerance = tol["atol"] + tol["rtol"] * magnitude
    keys = list(values)
    pairs = [(a, b) for i, a in enumerate(keys) for b in keys[i + 1:]]
    max_abs = {f"{a}-{b}": float(np.abs(values[a] - values[b]).max()) for a, b in pairs}
    max_rel = {k: v / magnitude if magnitude else v for k, v in max_abs.items()}
    return Diff(name, kind, magnitude, tolerance, max_abs, max_rel, max(max_abs.values()) <= tolerance)


def harmonized_models(spec, weights: dict, dtype: str = "float32") -> dict:
    """Both backends' models holding ``weights``, Keras' BatchNorm by PyTorch's rules
    (as harmonized training uses it); dtype 'float64' for the reference."""
    models = {b: get_backend(b).build(spec, bn_rules="torch", dtype=dtype) for b in ("torch", "keras")}
    for b, m in models.items():
        get_backend(b).set_weights(m, spec, {k: v.astype(dtype) for k, v in weights.items()})
    return models


def forward(spec, weights: dict, x: np.ndarray, models: dict | None = None) -> dict:
    """Tier 1. ``models`` (backend -> native model) defaults to harmonized_models; pass
    your own to check a transfer you made."""
    models = models or harmonized_models(spec, weights)
    outs = {b: get_backend(b).layer_outputs(m, spec, x) for b, m in models.items()}
    outs["numpy"] = reference.forward(spec, weights, x)
    rows = [_diff(r.name, r.kind, {k: np.asarray(v[i], np.float64) for k, v in outs.items()},
                  FORWARD_TOL, "numpy") for i, r in enumerate(spec.rows)]
    first = next((d for d in rows if not d.ok), None)
    return {"tier": "forward", "tolerance": FORWARD_TOL, "layers": [asdict(d) for d in rows],
            "first_failure": None if first is None else first.name, "ok": first is None}


def gradients(spec, weights: dict, x: np.ndarray, y: np.ndarray) -> dict:
    """Tier 2 (training mode: BatchNorm uses batch statistics). The definitions are
    compared in float64, where rounding cannot hide a difference; each framework's
    float32 gradients are then measured against that reference and reported. (On deep
    conv-BatchNorm stacks TensorFlow's float32 BatchNorm training loses precision that
    PyTorch's fused kernels keep: see docs/parity.md.)"""
    def run(dtype):
        return {b: get_backend(b).gradients(m, spec, x, y)
                for b, m in harmonized_models(spec, weights, dtype).items()}

    ref, f32 = run("float64"), run("float32")
    (lt, gt), (lk, gk) = ref["torch"], ref["keras"]
    rows = []
    for n in gt:
        d = _diff(n, "gradient", {"torch": gt[n], "keras": gk[n]}, GRADIENT_TOL, "torch")
        mag = d.magnitude or 1.0
        d.max_rel.update({f"{b}32-float64": float(np.abs(f32[b][1][n] - gt[n]).max()) / mag
                          for b in ("torch", "keras")})
        rows.append(d)
    loss_ok = abs(lt - lk) <= GRADIENT_TOL["atol"] + GRADIENT_TOL["rtol"] * abs(lt)
    first = next((d for d in rows if not d.ok), None)
    return {"tier": "gradients", "tolerance": GRADIENT_TOL, "dtype": "float64",
            "loss": {"torch": lt, "keras": lk, "torch32": f32["torch"][0], "keras32": f32["keras"][0]},
            "loss_ok": loss_ok, "params": [asdict(d) for d in rows],
            "first_failure": None if first is None else first.name, "ok": first is None and loss_ok}


def drift(spec, weights: dict, x: np.ndarray, y: np.ndarray, steps: int = 20,
          batch_size: int = 64, cfg=None) -> dict:
    """Tier 3: the same ``steps`` optimizer steps in both backends (harmonized)."""
    from .train import TrainConfig, epoch_order

    cfg = cfg or TrainConfig()
    trainers = {}
    for b in ("torch", "keras"):
        trainers[b] = get_backend(b).Trainer(spec, cfg.optimizer_for(b), cfg.seed, weights)
        trainers[b].set_data(x, y)
    order = epoch_order(cfg.seed, 0, len(x))
    curve = []
    for step in range(steps):
        idx = order[(step * batch_size) % len(x):][:batch_size]
        losses = {b: t.train_epoch(idx, batch_size, cfg.lr, cfg.seed)[0] for b, t in trainers.items()}
        wt, wk = trainers["torch"].get_weights(), trainers["keras"].get_weights()
        diffs = {n: float(np.abs(wt[n] - wk[n]).max()) for n in wt}
        worst = max(diffs, key=diffs.get)
        # what the weights compute: inference-mode logits on the whole set
        lt = get_backend("torch").predict(trainers["torch"].model, spec, x)
        lk = get_backend("keras").predict(trainers["keras"].model, spec, x)
        curve.append({"step": step + 1, "loss_torch": losses["torch"], "loss_keras": losses["keras"],
                      "max_weight_diff": diffs[worst], "worst_weight": worst,
                      "max_weight": max(float(np.abs(wt[n]).max()) for n in wt),
                      "max_logit_diff": float(np.abs(lt - lk).max()), "max_logit": float(np.abs(lt).max())})
    return {"tier": "drift", "optimizer": asdict(cfg.optimizer_for("torch")), "batch_size": batch_size,
            "curve": curve,
            "note": ("Adam divides each gradient by its own running magnitude, so a gradient that is zero "
                     "in exact arithmetic (a bias right before BatchNorm) turns float noise into full-size "
                     "steps: such weights drift apart without changing what the network computes. The "
                     "logits column shows what it computes.")}


def run(spec, x: np.ndarray, y: np.ndarray, tiers=(1, 2, 3), steps: int = 20, seed: int = 0) -> dict:
    """All asked tiers on the comparison spec (no dropout; softmax head kept for tier 1)."""
    from .errors import ConfigError

    if not tiers or not set(tiers) <= {1, 2, 3}:
        raise ConfigError(f"Unknown parity tier(s) {sorted(set(tiers) - {1, 2, 3}) or tiers}: the tiers are "
                          "1 (forward), 2 (loss and gradients) and 3 (drift over steps).")
    if len(x) < 1 or len(x) != len(y):
        raise ConfigError(f"Parity needs at least 1 image with its label; received {len(x)} images and "
                          f"{len(y)} labels (--images must be >= 1).")
    if 3 in tiers and (not isinstance(steps, int) or steps < 1):
        raise ConfigError(f"Invalid value for `steps`. Expected an integer >= 1. Received steps={steps!r}.")
    spec = variants.without_dropout(spec)
    out = {"spec": spec.name, "images": len(x)}
    if 1 in tiers:
        out["forward"] = forward(spec, sample_weights(spec, seed), x)
    trained = variants.logits_head(spec)
    if 2 in tiers:
        out["gradients"] = gradients(trained, sample_weights(trained, seed), x, y)
    if 3 in tiers:
        out["drift"] = drift(trained, W.initial(trained, seed), x, y, steps)
    return out


def format_report(result: dict) -> str:
    lines = [f"Parity of {result['spec']} on {result['images']} real MNIST images"]
    if "forward" in result:
        f = result["forward"]
        lines += ["", f"Tier 1, forward (inference mode). Tolerance per layer: {f['tolerance']['atol']:g} + "
                  f"{f['tolerance']['rtol']:g} x max|value|",
                  f"{'layer':28s} {'max|value|':>10s} {'tolerance':>10s} {'torch-keras':>12s} "
                  f"{'torch-numpy':>12s} {'keras-numpy':>12s}  ok"]
        for d in f["layers"]:
            a = d["max_abs"]
            lines.append(f"{d['name'] + ' (' + d['kind'] + ')':28s} {d['magnitude']:10.3g} {d['tolerance']:10.2e} "
                         f"{a['torch-keras']:12.2e} {a['torch-numpy']:12.2e} {a['keras-numpy']:12.2e}  "
                         f"{'yes' if d['ok'] else 'NO'}")
        lines.append("first layer over tolerance: " + (f["first_failure"] or "none"))
    if "gradients" in result:
        g = result["gradients"]
        lines += ["", f"Tier 2, gradients (training mode), definitions compared in float64. Loss torch "
                  f"{g['loss']['torch']:.12f} keras {g['loss']['keras']:.12f}. Tolerance: "
                  f"{g['tolerance']['atol']:g} + {g['tolerance']['rtol']:g} x max|gradient|. The float32 "
                  f"columns: each framework's float32 gradient against the float64 one, relative to max|gradient|.",
                  f"{'parameter':28s} {'max|grad|':>10s} {'tolerance':>10s} {'torch-keras':>12s}  ok "
                  f"{'torch32 err':>12s} {'keras32 err':>12s}"]
        for d in g["params"]:
            if d["magnitude"] < 1e-8:  # zero in exact arithmetic (a bias BatchNorm cancels)
                f32 = f"{'zero gradient':>25s}"
            else:
                f32 = f"{d['max_rel']['torch32-float64']:12.2e} {d['max_rel']['keras32-float64']:12.2e}"
            lines.append(f"{d['name']:28s} {d['magnitude']:10.3g} {d['tolerance']:10.2e} "
                         f"{d['max_abs']['torch-keras']:12.2e}  {'yes' if d['ok'] else 'NO '} {f32}")
        lines.append("first parameter over tolerance: " + (g["first_failure"] or "none"))
    if "drift" in result:
        d = result["drift"]
        lines += ["", f"Tier 3, training drift ({d['optimizer']['name']}, lr {d['optimizer']['lr']:g}, "
                  f"batch {d['batch_size']}, harmonized)",
                  f"{'step':>5s} {'loss torch':>12s} {'loss keras':>12s} {'max|w diff|':>12s} {'in':>22s} "
                  f"{'max|w|':>8s} {'max|logit diff|':>16s} {'max|logit|':>10s}"]
        for c in d["curve"]:
            lines.append(f"{c['step']:5d} {c['loss_torch']:12.6f} {c['loss_keras']:12.6f} "
                         f"{c['max_weight_diff']:12.2e} {c['worst_weight']:>22s} {c['max_weight']:8.3f} "
                         f"{c['max_logit_diff']:16.2e} {c['max_logit']:10.3f}")
        lines.append(d["note"])
    return "\n".join(lines)
