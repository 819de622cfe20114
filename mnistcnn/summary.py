"""A spec's summary checked against real backends, side by side."""
from __future__ import annotations

from .backends import PAIR, get_backend
from .spec.model import param_memory


def backend_rows(spec, backend: str) -> list[tuple[tuple, int]]:
    """(output shape, trainable + state params) per spec layer, read from a built model."""
    b = get_backend(backend)
    model = b.build(spec)
    shapes = b.layer_output_shapes(model, spec)
    return [(shape, t + s) for shape, (t, s) in zip(shapes, b.param_counts(model, spec))]


def side_by_side(spec, backends=PAIR) -> str:
    """The spec's table with each backend's shape and count; '!' marks a disagreement."""
    from .backends import call

    built = {name: call(name, backend_rows, spec, name) for name in backends}
    head = ["Layer (type)", "Output shape (C,H,W)", "Params", "Mult-Adds"]
    for name in backends:
        head += [f"{name} shape", f"{name} params"]
    body, mismatches = [], 0
    for i, r in enumerate(spec.rows):
        line = [f"{r.name} ({r.kind})", _shape(r.output_shape), f"{r.trainable + r.state:,}",
                f"{r.macs:,}"]
        for name in backends:
            shape, n = built[name][i]
            bad_shape, bad_n = shape != r.output_shape, n != r.trainable + r.state
            mismatches += bad_shape + bad_n
            line += [_shape(shape) + (" !" if bad_shape else ""), f"{n:,}" + (" !" if bad_n else "")]
        body.append(line)
    widths = [max(len(x[i]) for x in [head] + body) for i in range(len(head))]
    fmt = lambda cells: "  ".join(  # noqa: E731
        c.ljust(w) if i in (0, 1) or "shape" in head[i] else c.rjust(w)
        for i, (c, w) in enumerate(zip(cells, widths)))
    rule = "=" * len(fmt(head))
    totals = "  ".join(f"{name}: {sum(n for _, n in built[name]):,}" for name in backends)
    verdict = ("all backends agree with the spec" if not mismatches
               else f"{mismatches} disagreement(s) marked '!'")
    return "\n".join([
        f'Model: "{spec.name}"  input (C, H, W) = {_shape(spec.input_shape)}',
        rule, fmt(head), rule, *map(fmt, body), rule,
        f"Total params (trainable + BatchNorm statistics): spec: {spec.total_params:,}  {totals}  "
        f"({param_memory(spec.total_params)} in float32)",
        f"Trainable: {spec.trainable_params:,}  BatchNorm statistics: {spec.state_params:,}  "
        f"Forward mult-adds per example: {spec.macs:,} (one multiply-add = 2 FLOPs)",
        f"Check: {verdict}.",
    ])


def _shape(shape) -> str:
    return "(" + ", ".join(map(str, shape)) + ")"
