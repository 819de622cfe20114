"""What building a spec in a framework takes from the machine, checked before anything is
allocated. A spec is data and may describe any size (its summary needs no memory); a
framework that builds or trains it allocates its weights and activations, so a spec
beyond this machine is refused by ``check_memory`` with both sizes and the layer that
needs the most, instead of a MemoryError, an out-of-memory kill or a framework's
allocation error. Pure Python, like the rest of the spec."""
from __future__ import annotations

import math
import os

from ..errors import SpecError
from .layers import _fmt
from .model import ModelSpec


def size(n: int) -> str:
    """Bytes in binary units (1 GiB = 2**30 bytes)."""
    for unit, scale in (("TiB", 1 << 40), ("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= scale:
            return f"{n / scale:.2f} {unit}"
    return f"{n} B"


def machine_memory() -> int | None:
    """The memory this process may use, in bytes: the machine's physical memory, or the
    limit of its control group (a container) where that is lower; None where neither is known."""
    sizes = []
    try:
        sizes.append(os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (AttributeError, ValueError, OSError):
        pass
    try:
        with open("/sys/fs/cgroup/memory.max") as f:  # cgroup v2; "max" when unlimited
            limit = f.read().strip()
        if limit.isdigit():
            sizes.append(int(limit))
    except OSError:
        pass
    return min(sizes) if sizes else None


def memory_needed(spec: ModelSpec, batch_size: int = 1, training: bool = False, bytes_per_value: int = 4) -> int:
    """A lower bound, in bytes, of what a framework allocates to run ``spec`` on batches of
    ``batch_size``: its weights, and the largest layer's input and output; to train, also the
    weights' gradients and every layer's output (kept for the backward pass)."""
    per_example = [math.prod(r.input_shape) + math.prod(r.output_shape) for r in spec.rows]
    activations = sum(math.prod(r.output_shape) for r in spec.rows) + math.prod(spec.input_shape) if training \
        else max(per_example)
    return (spec.total_params * (2 if training else 1) + batch_size * activations) * bytes_per_value


def check_memory(spec: ModelSpec, batch_size: int = 1, training: bool = False, bytes_per_value: int = 4) -> None:
    """SpecError, before anything is allocated, when ``spec`` needs more memory than this
    machine has (``memory_needed``), naming both sizes and the layer that needs the most. A
    spec itself is data and may describe any size (its summary needs no memory); this is for
    building it in a framework and training it."""
    available = machine_memory()
    needed = memory_needed(spec, batch_size, training, bytes_per_value)
    if available is None or needed <= available:
        return
    weights = max(spec.rows, key=lambda r: r.trainable + r.state)
    output = max(spec.rows, key=lambda r: math.prod(r.output_shape))
    if (weights.trainable + weights.state) >= batch_size * math.prod(output.output_shape):
        most = (f"the weights of {weights.name} ({weights.kind}), {weights.trainable + weights.state:,} "
                f"({size((weights.trainable + weights.state) * bytes_per_value)}): make it smaller")
    else:
        most = (f"the output of {output.name} ({output.kind}), {_fmt(output.output_shape)} per example "
                f"({size(batch_size * math.prod(output.output_shape) * bytes_per_value)} for a batch of "
                f"{batch_size}): make it smaller, or the batch (`batch_size`)")
    raise SpecError(f"Spec '{spec.name}' needs at least {size(needed)} of memory to "
                    f"{'train' if training else 'run'} ({spec.total_params:,} parameters, "
                    f"{size(spec.total_params * bytes_per_value)}"
                    f"{' and as much for their gradients' if training else ''}, and the activations of a batch "
                    f"of {batch_size}), but this machine has {size(available)}. The largest part is "
                    f"{most}.")
