"""Property-based tests (hypothesis): random layer stacks and random bytes.

- A random stack of layers either raises SpecError when the spec is built, or builds in
  both backends with the output shapes and parameter counts of the spec's arithmetic,
  and per-layer outputs of torch, keras and the numpy reference agree within parity's
  forward tolerance (parity.FORWARD_TOL).
- Random bytes given as an IDX file, a spec JSON or a checkpoint give a clear error of
  mnistcnn's own (never another exception).

Example counts are kept small for CI (building a Keras model takes a fraction of a second).
"""
from functools import partial

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mnistcnn import data, parity
from mnistcnn import spec as S
from mnistcnn import weights as W
from mnistcnn.backends import get_backend
from mnistcnn.errors import CheckpointError, DataError, MnistCnnError, SpecError

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

ACT = st.sampled_from([None, "relu", "tanh", "sigmoid", "elu"])
SIZE = st.integers(0, 4)  # 0 is invalid: the spec must refuse it
PAD = st.sampled_from(["valid", "same"])

# layers as partials, constructed in the test: a constructor may refuse its arguments too
conv = st.builds(partial, st.just(S.Conv2D), st.integers(1, 4), SIZE, stride=st.integers(1, 2), padding=PAD,
                 activation=ACT)
pool = st.builds(partial, st.sampled_from([S.MaxPool2D, S.AvgPool2D]), SIZE, st.sampled_from([None, 1, 2]), PAD)
feature = st.one_of(
    st.builds(partial, st.just(S.BatchNorm), st.sampled_from([0.9, 0.99]), st.sampled_from([1e-5, 1e-3])),
    st.builds(partial, st.just(S.Activation), st.sampled_from(["relu", "tanh", "leaky_relu", "elu"])),
    st.builds(partial, st.just(S.Dropout), st.sampled_from([0.0, 0.25])))
dense = st.builds(partial, st.just(S.Dense), st.integers(1, 6), ACT)


@st.composite
def stacks(draw):
    """(layers, input shape): a conv part, Flatten or global pooling, then a dense part."""
    layers = draw(st.lists(st.one_of(conv, pool, feature), max_size=4))
    layers.append(draw(st.sampled_from([partial(S.Flatten), partial(S.GlobalAvgPool2D)])))
    layers += draw(st.lists(st.one_of(dense, feature), max_size=2))
    layers.append(draw(dense))
    shape = (draw(st.integers(1, 3)), draw(st.integers(3, 9)), draw(st.integers(3, 9)))
    return layers, shape


def _spec_or_none(layers, shape):
    try:
        return S.ModelSpec("random", [make() for make in layers], shape)
    except SpecError as e:  # names the layer (its index or its kind) or the spec
        assert str(e).startswith(("Layer ", "Spec 'random'", "Invalid value for argument")), e
        return None


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True)
@given(stacks())
def test_random_stacks_build_as_the_arithmetic_says_and_agree_with_numpy(stack):
    spec = _spec_or_none(*stack)
    if spec is None:
        return
    for b in ("torch", "keras"):
        backend = get_backend(b)
        model = backend.build(spec)
        assert [tuple(s) for s in backend.layer_output_shapes(model, spec)] == [r.output_shape for r in spec.rows]
        assert backend.param_counts(model, spec) == [(r.trainable, r.state) for r in spec.rows]
    x = np.random.default_rng(0).standard_normal((3, *spec.input_shape)).astype(np.float32)
    result = parity.forward(spec, parity.sample_weights(spec, 0), x)
    assert result["ok"], result["first_failure"]


@settings(max_examples=200, deadline=None, derandomize=True)
@given(stacks())
def test_random_stacks_never_fail_but_with_a_spec_error(stack):
    """The arithmetic alone, many more examples: SpecError or a consistent spec."""
    spec = _spec_or_none(*stack)
    if spec is not None:
        assert spec.total_params == sum(r.trainable + r.state for r in spec.rows)
        assert len(spec.output_shape) == 1 and all(d > 0 for r in spec.rows for d in r.output_shape)
        assert S.from_json(S.to_json(spec)) == spec


@settings(max_examples=200, deadline=None, derandomize=True)
@given(st.binary(max_size=300))
def test_random_bytes_as_an_idx_file(blob):
    try:
        array = data.parse_idx(blob, "random.idx")
    except DataError as e:
        assert "random.idx" in str(e)
    else:  # a valid IDX file by chance: then it is exactly what its header says
        assert array.size * array.dtype.itemsize == len(blob) - 4 - 4 * blob[3]


@settings(max_examples=200, deadline=None, derandomize=True)
@given(st.one_of(st.binary(max_size=200).map(lambda b: b.decode("latin-1")),
                 st.text(max_size=200),
                 st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=5),
                              lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=6), c, max_size=3),
                              max_leaves=8).map(__import__("json").dumps)))
def test_random_text_as_a_spec_json(text):
    try:
        S.from_json(text)
    except SpecError:
        pass


@settings(max_examples=60, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.binary(max_size=400), st.integers(0, 2))
def test_random_bytes_as_a_checkpoint(tmp_path, blob, mode):
    """Pure noise, a genuine checkpoint with noise written over part of it, or cut short."""
    path = tmp_path / "ckpt.npz"
    if mode == 0:
        path.write_bytes(blob)
    else:
        spec = S.ModelSpec("fc", [S.Flatten(), S.Dense(3)], (1, 2, 2))
        W.save(path, spec, W.initial(spec, 0))
        good = path.read_bytes()
        path.write_bytes(good[:len(blob) % len(good)] + (blob if mode == 1 else b""))
    try:
        W.load(path)
    except (CheckpointError, SpecError) as e:
        assert isinstance(e, MnistCnnError) and "allow_pickle" not in str(e)
