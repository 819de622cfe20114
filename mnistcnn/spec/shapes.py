"""Pure shape arithmetic for convolution and pooling windows (no framework, no numpy).

The conventions are TensorFlow's for 'same' (the extra pixel of an odd total padding
goes at the end: bottom/right), which PyTorch reproduces with explicit asymmetric padding.
"""
from __future__ import annotations


def conv_output_size(n: int, kernel: int, stride: int = 1, padding: int = 0) -> int:
    """Output length of a window sliding over ``n`` cells: floor((n + 2p - k) / s) + 1.

    >>> conv_output_size(28, 5)            # 5x5 kernel, no padding
    24
    >>> conv_output_size(5, 3, stride=2)   # the reports' stride-2 worked example
    2
    >>> conv_output_size(5, 3, padding=1)  # zero padding 1 keeps 5x5
    5
    """
    return (n + 2 * padding - kernel) // stride + 1


def same_padding(n: int, kernel: int, stride: int) -> tuple[int, int]:
    """Padding (before, after) that makes the output ceil(n / stride), TensorFlow-style."""
    out = -(-n // stride)
    total = max((out - 1) * stride + kernel - n, 0)
    return total // 2, total - total // 2


def window_1d(n: int, kernel: int, stride: int, padding) -> tuple[int, int, int]:
    """(output size, pad before, pad after) for one spatial axis.

    ``padding`` is 'valid', 'same' or a non-negative int (symmetric).
    The output size is < 1 when the window does not fit; callers report that.
    """
    if padding == "valid":
        before = after = 0
    elif padding == "same":
        before, after = same_padding(n, kernel, stride)
    else:
        before = after = int(padding)
    return (n + before + after - kernel) // stride + 1, before, after
