"""Do the backends compute the same thing? Three tiers, each against stated
tolerances scaled to the magnitude of the values, with the measured maxima always reported.

Tier 1, forward: every layer's inference-mode output in torch, keras and the numpy
  reference (mnistcnn.reference) on the same weights and images; the first layer whose
  difference exceeds the tolerance is named.
Tier 2, gradients: training-mode loss and every parameter gradient on one batch.
Tier 3, drift: K optimizer steps in every backend from the same weights and batches
  (harmonized), with the loss and weight divergence after each step.
Dropout is left out for the comparison (its masks come from different generators).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from . import reference
from . import weights as W
from .backends import BACKENDS as KNOWN
from .backends import PAIR, call, get_backend
from .config import TrainConfig
from .errors import ConfigError
from .spec import variants
from .train import epoch_order

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
        kind = name.rsplit(".", 1)[1]
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


BACKENDS = PAIR  # the frameworks compared unless told otherwise


def _harmonized_model(backend: str, spec, weights: dict, dtype: str = "float32"):
    """The backend's model holding ``weights``, Keras' BatchNorm by PyTorch's rules (as
    harmonized training uses it); dtype 'float64' for the reference."""
    b = get_backend(backend)
    model = b.build(spec, bn_rules="torch", dtype=dtype)
    b.set_weights(model, spec, {k: v.astype(dtype) for k, v in weights.items()})
    return model


# each backend's side of a tier: module-level, so that mnistcnn.backends.call can run it
# in a process of its own (Keras on JAX beside Keras on TensorFlow)
def _layer_outputs(backend, spec, weights, x):
    return get_backend(backend).layer_outputs(_harmonized_model(backend, spec, weights), spec, x)


def _gradients(backend, spec, weights, x, y, dtype):
    return get_backend(backend).gradients(_harmonized_model(backend, spec, weights, dtype), spec, x, y)


def _drift_steps(backend, spec, weights, x, y, steps, batch_size, cfg) -> list:
    """(training loss, weights, inference-mode logits on x) after each step."""
    b = get_backend(backend)
    trainer = b.Trainer(spec, cfg.optimizer_for(backend), cfg.seed, weights)
    trainer.set_data(x, y)
    order = epoch_order(cfg.seed, 0, len(x))
    out = []
    for step in range(steps):
        idx = order[(step * batch_size) % len(x):][:batch_size]
        loss = trainer.train_epoch(idx, batch_size, cfg.lr, cfg.seed)[0]
        out.append((loss, trainer.get_weights(), b.predict(trainer.model, spec, x)))
    return out


def forward(spec, weights: dict, x: np.ndarray, models: dict | None = None, backends=BACKENDS) -> dict:
    """Tier 1. ``models`` (backend -> native model) defaults to the harmonized models of
    ``backends``; pass your own to check a transfer you made."""
    if models:
        outs = {b: get_backend(b).layer_outputs(m, spec, x) for b, m in models.items()}
    else:
        outs = {b: call(b, _layer_outputs, b, spec, weights, x) for b in backends}
    outs["numpy"] = reference.forward(spec, weights, x)
    rows = [_diff(r.name, r.kind, {k: np.asarray(v[i], np.float64) for k, v in outs.items()},
                  FORWARD_TOL, "numpy") for i, r in enumerate(spec.rows)]
    first = next((d for d in rows if not d.ok), None)
    return {"tier": "forward", "tolerance": FORWARD_TOL, "layers": [asdict(d) for d in rows],
            "first_failure": None if first is None else first.name, "ok": first is None}


def gradients(spec, weights: dict, x: np.ndarray, y: np.ndarray, backends=BACKENDS) -> dict:
    """Tier 2 (training mode: BatchNorm uses batch statistics). The definitions are
    compared in float64, where rounding cannot hide a difference; each framework's
    float32 gradients are then measured against that reference (the first backend's
    float64 gradient) and reported. (On deep conv-BatchNorm stacks TensorFlow's float32
    BatchNorm training loses precision that PyTorch's fused kernels keep: see docs/parity.md.)"""
    def run(dtype):
        return {b: call(b, _gradients, b, spec, weights, x, y, dtype) for b in backends}

    ref, f32 = run("float64"), run("float32")
    first = backends[0]
    rows = []
    for n in ref[first][1]:
        d = _diff(n, "gradient", {b: ref[b][1][n] for b in backends}, GRADIENT_TOL, first)
        mag = d.magnitude or 1.0
        d.max_rel.update({f"{b}32-float64": float(np.abs(f32[b][1][n] - ref[first][1][n]).max()) / mag
                          for b in backends})
        rows.append(d)
    l0 = ref[first][0]
    loss_ok = all(abs(ref[b][0] - l0) <= GRADIENT_TOL["atol"] + GRADIENT_TOL["rtol"] * abs(l0) for b in backends)
    worst = next((d for d in rows if not d.ok), None)
    return {"tier": "gradients", "tolerance": GRADIENT_TOL, "dtype": "float64",
            "loss": {**{b: ref[b][0] for b in backends}, **{f"{b}32": f32[b][0] for b in backends}},
            "loss_ok": loss_ok, "params": [asdict(d) for d in rows],
            "first_failure": None if worst is None else worst.name, "ok": worst is None and loss_ok}


def drift(spec, weights: dict, x: np.ndarray, y: np.ndarray, steps: int = 20,
          batch_size: int = 64, cfg=None, backends=BACKENDS) -> dict:
    """Tier 3: the same ``steps`` optimizer steps in every backend (harmonized); the
    differences are each backend's against the first."""
    cfg = cfg or TrainConfig()
    runs = {b: call(b, _drift_steps, b, spec, weights, x, y, steps, batch_size, cfg) for b in backends}
    first, others = backends[0], backends[1:]
    curve = []
    for step in range(steps):
        _, w0, logits0 = runs[first][step]
        diffs = {n: max(float(np.abs(w0[n] - runs[b][step][1][n]).max()) for b in others) for n in w0}
        worst = max(diffs, key=lambda n: diffs[n])
        curve.append({"step": step + 1, **{f"loss_{b}": runs[b][step][0] for b in backends},
                      "max_weight_diff": diffs[worst], "worst_weight": worst,
                      "max_weight": max(float(np.abs(w0[n]).max()) for n in w0),
                      "max_logit_diff": max(float(np.abs(logits0 - runs[b][step][2]).max()) for b in others),
                      "max_logit": float(np.abs(logits0).max())})
    return {"tier": "drift", "optimizer": asdict(cfg.optimizer_for(first)), "batch_size": batch_size,
            "backends": list(backends), "curve": curve,
            "note": ("Adam divides each gradient by its own running magnitude, so a gradient that is zero "
                     "in exact arithmetic (a bias right before BatchNorm) turns float noise into full-size "
                     "steps: such weights drift apart without changing what the network computes. The "
                     "logits column shows what it computes.")}


class ParityResult(dict):
    """What ``run`` found (a dict: "forward", "gradients", "drift" per tier asked), printed
    as format_report's text and shown in a notebook as one table per tier."""

    def __str__(self) -> str:
        return format_report(self)

    def _doc(self):
        from ._display import Doc

        yes = lambda ok: "yes" if ok else "NO"  # noqa: E731
        doc = Doc().heading(f"Parity of {self['spec']} on {self['images']} real MNIST images "
                            f"({', '.join(self['backends'])})")
        if "forward" in self:
            f = self["forward"]
            pairs = list(f["layers"][0]["max_abs"]) if f["layers"] else []
            doc.line(f"Tier 1, forward (inference mode): first layer over tolerance: {f['first_failure'] or 'none'}")
            doc.table(["layer", "max|value|", "tolerance", *(f"max|diff| {p}" for p in pairs), "ok"],
                      [[f"{d['name']} ({d['kind']})", f"{d['magnitude']:.3g}", f"{d['tolerance']:.2e}",
                        *(f"{d['max_abs'][p]:.2e}" for p in pairs), yes(d["ok"])] for d in f["layers"]],
                      right=range(1, len(pairs) + 3))
        if "gradients" in self:
            g = self["gradients"]
            pairs = list(g["params"][0]["max_abs"]) if g["params"] else []
            doc.line("Tier 2, gradients (training mode, float64): first parameter over tolerance: "
                     f"{g['first_failure'] or 'none'}")
            doc.table(["parameter", "max|grad|", "tolerance", *(f"max|diff| {p}" for p in pairs), "ok"],
                      [[d["name"], f"{d['magnitude']:.3g}", f"{d['tolerance']:.2e}",
                        *(f"{d['max_abs'][p]:.2e}" for p in pairs), yes(d["ok"])] for d in g["params"]],
                      right=range(1, len(pairs) + 3))
        if "drift" in self:
            d = self["drift"]
            doc.line(f"Tier 3, training drift ({d['optimizer']['name']}, lr {d['optimizer']['lr']:g}, "
                     f"batch {d['batch_size']}, harmonized). {d['note']}")
            doc.table(["step", *(f"loss {b}" for b in self["backends"]), "max|w diff|", "in", "max|logit diff|"],
                      [[c["step"], *(f"{c['loss_' + b]:.6f}" for b in self["backends"]), f"{c['max_weight_diff']:.2e}",
                        c["worst_weight"], f"{c['max_logit_diff']:.2e}"] for c in d["curve"]],
                      right=range(len(self["backends"]) + 2))
        return doc

    def _repr_html_(self) -> str:
        return self._doc().html()

    def _repr_markdown_(self) -> str:
        return self._doc().markdown()


def run(spec, x: np.ndarray, y: np.ndarray, tiers=(1, 2, 3), steps: int = 20, seed: int = 0,
        backends=BACKENDS) -> ParityResult:
    """All asked tiers on the comparison spec (no dropout; softmax head kept for tier 1),
    for two or more ``backends``. A notebook shows the result as one table per tier."""
    backends = tuple(backends)
    if len(backends) < 2 or not set(backends) <= set(KNOWN):
        raise ConfigError(f"Parity compares two or more backends of {', '.join(KNOWN)}; received "
                          f"{', '.join(backends) or 'none'}.")
    if not tiers or not set(tiers) <= {1, 2, 3}:
        raise ConfigError(f"Unknown parity tier(s) {sorted(set(tiers) - {1, 2, 3}) or tiers}: the tiers are "
                          "1 (forward), 2 (loss and gradients) and 3 (drift over steps).")
    if len(x) < 1 or len(x) != len(y):
        raise ConfigError(f"Parity needs at least 1 image with its label; received {len(x)} images and "
                          f"{len(y)} labels (--images must be >= 1).")
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**32:
        raise ConfigError(f"Invalid value for `seed`. Expected an integer from 0 to 2**32 - 1. Received seed={seed!r}.")
    if 3 in tiers and (not isinstance(steps, int) or steps < 1):
        raise ConfigError(f"Invalid value for `steps`. Expected an integer >= 1. Received steps={steps!r}.")
    spec = variants.without_dropout(spec)
    out = ParityResult(spec=spec.name, images=len(x), backends=list(backends))
    if 1 in tiers:
        out["forward"] = forward(spec, sample_weights(spec, seed), x, backends=backends)
    trained = variants.logits_head(spec)
    if 2 in tiers:
        out["gradients"] = gradients(trained, sample_weights(trained, seed), x, y, backends=backends)
    if 3 in tiers:
        out["drift"] = drift(trained, W.initial(trained, seed), x, y, steps, backends=backends)
    return out


def format_report(result: dict) -> str:
    backends = result.get("backends", list(BACKENDS))
    first = backends[0]
    lines = [f"Parity of {result['spec']} on {result['images']} real MNIST images ({', '.join(backends)})"]
    if "forward" in result:
        f = result["forward"]
        pairs = list(f["layers"][0]["max_abs"]) if f["layers"] else []
        lines += ["", f"Tier 1, forward (inference mode). Tolerance per layer: {f['tolerance']['atol']:g} + "
                  f"{f['tolerance']['rtol']:g} x max|value|",
                  f"{'layer':28s} {'max|value|':>10s} {'tolerance':>10s} " + " ".join(f"{p:>12s}" for p in pairs)
                  + "  ok"]
        for d in f["layers"]:
            lines.append(f"{d['name'] + ' (' + d['kind'] + ')':28s} {d['magnitude']:10.3g} {d['tolerance']:10.2e} "
                         + " ".join(f"{d['max_abs'][p]:12.2e}" for p in pairs) + f"  {'yes' if d['ok'] else 'NO'}")
        lines.append("first layer over tolerance: " + (f["first_failure"] or "none"))
    if "gradients" in result:
        g = result["gradients"]
        pairs = [p for p in (g["params"][0]["max_abs"] if g["params"] else {})]
        lines += ["", "Tier 2, gradients (training mode), definitions compared in float64. Loss "
                  + " ".join(f"{b} {g['loss'][b]:.12f}" for b in backends) + ". Tolerance: "
                  f"{g['tolerance']['atol']:g} + {g['tolerance']['rtol']:g} x max|gradient|. The float32 "
                  f"columns: each framework's float32 gradient against the float64 one ({first}'s), relative "
                  "to max|gradient|.",
                  f"{'parameter':28s} {'max|grad|':>10s} {'tolerance':>10s} " + " ".join(f"{p:>12s}" for p in pairs)
                  + "  ok " + " ".join(f"{b + '32 err':>12s}" for b in backends)]
        for d in g["params"]:
            if d["magnitude"] < 1e-8:  # zero in exact arithmetic (a bias BatchNorm cancels)
                f32 = f"{'zero gradient':>{13 * len(backends) - 1}s}"
            else:
                f32 = " ".join(f"{d['max_rel'][f'{b}32-float64']:12.2e}" for b in backends)
            lines.append(f"{d['name']:28s} {d['magnitude']:10.3g} {d['tolerance']:10.2e} "
                         + " ".join(f"{d['max_abs'][p]:12.2e}" for p in pairs)
                         + f"  {'yes' if d['ok'] else 'NO '} {f32}")
        lines.append("first parameter over tolerance: " + (g["first_failure"] or "none"))
    if "drift" in result:
        d = result["drift"]
        lines += ["", f"Tier 3, training drift ({d['optimizer']['name']}, lr {d['optimizer']['lr']:g}, "
                  f"batch {d['batch_size']}, harmonized; differences: each backend against {first})",
                  f"{'step':>5s} " + " ".join(f"{'loss ' + b:>12s}" for b in backends)
                  + f" {'max|w diff|':>12s} {'in':>22s} {'max|w|':>8s} {'max|logit diff|':>16s} {'max|logit|':>10s}"]
        for c in d["curve"]:
            lines.append(f"{c['step']:5d} " + " ".join(f"{c['loss_' + b]:12.6f}" for b in backends)
                         + f" {c['max_weight_diff']:12.2e} {c['worst_weight']:>22s} {c['max_weight']:8.3f} "
                         f"{c['max_logit_diff']:16.2e} {c['max_logit']:10.3f}")
        lines.append(d["note"])
    return "\n".join(lines)
