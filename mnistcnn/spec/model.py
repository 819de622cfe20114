"""ModelSpec: a named list of layers on an input shape, validated at construction.

Every layer's output shape, parameter counts and multiply-adds come from arithmetic
here; the backends are checked against these numbers, never the other way round.
"""
from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace

from ..errors import SpecError
from .layers import BatchNorm, Layer, _fmt


def param_memory(count: int, bytes_per_param: int = 4) -> str:
    """Parameter memory in float32, as Keras' summary gives it (binary units: 1 MiB =
    1,048,576 bytes; torchinfo's "Params size (MB)" divides by 1,000,000 instead)."""
    size = count * bytes_per_param
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if size >= scale:
            return f"{size / scale:.2f} {unit}"
    return f"{size} B"


@dataclass(frozen=True)
class LayerInfo:
    """One row of a spec's summary: what a layer receives, gives and holds."""

    index: int
    name: str  # e.g. 'conv2d_0': the name both backends give this layer
    kind: str
    layer: Layer
    input_shape: tuple
    output_shape: tuple
    trainable: int  # weights, biases, BatchNorm gamma/beta
    state: int  # non-trainable state: BatchNorm running mean and variance
    macs: int  # forward multiply-adds per example


def leaf_rows(rows, prefix: str = "") -> Iterator[LayerInfo]:
    """The rows of layers that are no composite, in order: a composite's (Residual's) inner
    rows in its place, named by their path ('residual_3.body.conv2d_0'), which is also how
    the backends name their layers and the neutral form their weights."""
    for r in rows:
        parts = r.layer.parts(r.input_shape)
        if not parts:
            yield replace(r, name=prefix + r.name) if prefix else r
        for part, spec in parts.items():
            yield from leaf_rows(spec.rows, f"{prefix}{r.name}.{part}.")


@dataclass(frozen=True)
class ModelSpec:
    name: str
    layers: Sequence[Layer]  # kept as a tuple
    input_shape: tuple = (1, 28, 28)
    rows: tuple = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        if not isinstance(self.name, str) or not self.name:
            raise SpecError(f"A spec needs a non-empty name. Received name={self.name!r}.")
        if "/" in self.name or "\\" in self.name or self.name.startswith("."):
            # the name becomes part of run directory names: it must stay inside them
            raise SpecError(f"A spec name cannot contain '/' or '\\' or start with '.' (it names "
                            f"directories). Received name={self.name!r}.")
        object.__setattr__(self, "layers", tuple(self.layers))
        object.__setattr__(self, "input_shape", tuple(self.input_shape))
        if len(self.input_shape) != 3 or not all(
            isinstance(d, int) and d > 0 for d in self.input_shape
        ):
            raise SpecError(
                f"Spec '{self.name}': input_shape must be (C, H, W) of positive ints. "
                f"Received input_shape={self.input_shape!r}."
            )
        if not self.layers:
            raise SpecError(f"Spec '{self.name}' has no layers.")
        rows, shape = [], self.input_shape
        for i, layer in enumerate(self.layers):
            if not isinstance(layer, Layer):
                raise SpecError(
                    f"Layer {i} of spec '{self.name}' is {layer!r}, not a layer; use the "
                    "classes of mnistcnn.spec (Conv2D, Dense, ...)"
                )
            kind = type(layer).__name__
            try:
                out = layer.output_shape(shape)
                rows.append(LayerInfo(
                    i, f"{kind.lower()}_{i}", kind, layer, shape, out,
                    layer.trainable_params(shape), layer.state_params(shape), layer.macs(shape),
                ))
            except SpecError as e:
                raise SpecError(f"Layer {i} ({kind}) of spec '{self.name}': {e}", arguments=e.arguments) from None
            shape = out
        object.__setattr__(self, "rows", tuple(rows))

    # -- totals -------------------------------------------------------------------
    @property
    def output_shape(self) -> tuple:
        return self.rows[-1].output_shape

    @property
    def leaves(self) -> tuple[LayerInfo, ...]:
        """Every row that is no composite, a composite's inner rows named by their path."""
        return tuple(leaf_rows(self.rows))

    @property
    def trainable_params(self) -> int:
        return sum(r.trainable for r in self.rows)

    @property
    def state_params(self) -> int:
        return sum(r.state for r in self.rows)

    @property
    def total_params(self) -> int:
        """Trainable + state: what Keras' count_params() reports (before fit)."""
        return self.trainable_params + self.state_params

    @property
    def macs(self) -> int:
        return sum(r.macs for r in self.rows)

    def keras_count_with_bn_axis(self, axis: int) -> int:
        """Keras' count_params() had every BatchNormalization used ``axis`` of the
        channels_last tensor (N, H, W, C) or (N, F) instead of the channel axis.

        BatchNormalization(axis=1) on image data normalises the HEIGHT axis and holds
        4 * H weights; this reproduces counts published with that mistake.
        """
        total = 0
        for r in self.rows:
            if isinstance(r.layer, BatchNorm):
                channels_last = (r.input_shape[1:] + r.input_shape[:1]) if len(r.input_shape) == 3 \
                    else r.input_shape
                total += 4 * channels_last[axis - 1 if axis > 0 else axis]
            else:
                total += r.trainable + r.state
        return total

    # -- presentation -------------------------------------------------------------
    def summary_text(self) -> str:
        head = ("Layer (type)", "Output shape", "Param #", "Mult-Adds")
        body = [
            (f"{'  ' * r.name.count('.')}{r.name} ({r.kind})", "(None, " + ", ".join(map(str, r.output_shape)) + ")",
             f"{r.trainable + r.state:,}", f"{r.macs:,}")
            for r in _with_inner_rows(self.rows)
        ]
        widths = [max(len(row[i]) for row in [head] + body) for i in range(4)]
        line = lambda cells: "  ".join(  # noqa: E731
            c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths))
        )
        rule = "-" * len(line(head))
        return "\n".join([
            f'Model: "{self.name}"  input (C, H, W) = {_fmt(self.input_shape)}',
            rule.replace("-", "="), line(head), rule.replace("-", "="),
            *[line(b) for b in body], rule.replace("-", "="),
            f"Total params: {self.total_params:,} ({param_memory(self.total_params)})",
            f"Trainable params: {self.trainable_params:,} ({param_memory(self.trainable_params)})",
            f"Non-trainable params (BatchNorm running statistics): {self.state_params:,} "
            f"({param_memory(self.state_params)})",
            f"Forward mult-adds per example: {self.macs:,} (one multiply-add = 2 FLOPs)",
        ])

    def summary(self, print_fn=print) -> None:
        """Print a table like Keras' model.summary(): layer, output shape, params."""
        print_fn(self.summary_text())

    def _summary_doc(self):
        """The summary as a document: a notebook shows the spec as this table."""
        from .._display import Doc

        return Doc().heading(f'Model "{self.name}", input (C, H, W) = {_fmt(self.input_shape)}').table(
            ["Layer (type)", "Output shape", "Param #", "Mult-Adds"],
            [[f"{chr(0x2003) * r.name.count('.')}{r.name} ({r.kind})",  # a composite's inner rows indented
              "(None, " + ", ".join(map(str, r.output_shape)) + ")", f"{r.trainable + r.state:,}", f"{r.macs:,}"]
             for r in _with_inner_rows(self.rows)], right=(2, 3)).items([
                f"Total params: {self.total_params:,} ({param_memory(self.total_params)})",
                f"Trainable params: {self.trainable_params:,} ({param_memory(self.trainable_params)})",
                f"Non-trainable params (BatchNorm running statistics): {self.state_params:,}",
                f"Forward mult-adds per example: {self.macs:,}"])

    def _repr_html_(self) -> str:
        return self._summary_doc().html()

    def _repr_markdown_(self) -> str:
        return self._summary_doc().markdown()


def _with_inner_rows(rows, prefix: str = "") -> Iterator[LayerInfo]:
    """Each row, a composite followed by its inner rows (indented by the summary)."""
    for r in rows:
        yield replace(r, name=prefix + r.name) if prefix else r
        for part, spec in r.layer.parts(r.input_shape).items():
            yield from _with_inner_rows(spec.rows, f"{prefix}{r.name}.{part}.")
