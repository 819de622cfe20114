"""The neutral weight form: names, shapes, numpy initialisers and the .npz checkpoint."""
import math

import numpy as np
import pytest

from mnistcnn import weights as W
from mnistcnn import zoo
from mnistcnn.errors import SpecError


def test_names_and_shapes_follow_the_spec():
    shapes = W.shapes(zoo.get("seed000-cnn-bn"))
    assert list(shapes)[:6] == ["conv2d_0.kernel", "conv2d_0.bias", "batchnorm_1.gamma", "batchnorm_1.beta",
                                "batchnorm_1.moving_mean", "batchnorm_1.moving_variance"]
    assert shapes["conv2d_0.kernel"] == (32, 1, 5, 5)
    assert shapes["dense_9.kernel"] == (1024, 784)  # (out, in), inputs in (C, H, W) order
    spec = zoo.get("seed000-cnn-bn")
    assert sum(math.prod(s) for s in shapes.values()) == spec.trainable_params + spec.state_params


@pytest.mark.parametrize("init", W.INITS)
def test_initialisers_draw_within_their_bounds_from_the_seed(init):
    spec = zoo.get("seed000-cnn")
    w = W.initial(spec, 7, init)
    assert all(v.dtype == np.float32 for v in w.values())
    k = w["dense_5.kernel"]  # fan_in 784, fan_out 1024
    limit = math.sqrt(6 / (784 + 1024)) if init == "glorot_uniform" else 1 / math.sqrt(784)
    assert np.abs(k).max() <= limit and np.abs(k).max() > 0.99 * limit
    assert np.std(k) == pytest.approx(limit / math.sqrt(3), rel=0.01)  # uniform's sd
    if init == "glorot_uniform":
        assert not w["dense_5.bias"].any()
    else:
        assert 0 < np.abs(w["dense_5.bias"]).max() <= 1 / math.sqrt(784)
    assert all(np.array_equal(v, W.initial(spec, 7, init)[n]) for n, v in w.items())
    assert not np.array_equal(k, W.initial(spec, 8, init)["dense_5.kernel"])


def test_batchnorm_starts_as_the_identity():
    w = W.initial(zoo.get("complex-cnn"), 0)
    assert (w["batchnorm_1.gamma"] == 1).all() and (w["batchnorm_1.moving_variance"] == 1).all()
    assert not w["batchnorm_1.beta"].any() and not w["batchnorm_1.moving_mean"].any()


def test_check_names_what_does_not_fit():
    spec = zoo.get("simple-fc")
    w = W.initial(spec, 0)
    w["dense_1.kernel"] = np.zeros((10, 783), np.float32)
    w["extra.kernel"] = np.zeros(1)
    del w["dense_1.bias"]
    with pytest.raises(SpecError, match=r"missing \['dense_1.bias'\], unexpected \['extra.kernel'\], "
                                        r"wrong shapes \['dense_1.kernel: \(10, 783\) != \(10, 784\)'\]"):
        W.check(spec, w)


def test_checkpoint_round_trip(tmp_path):
    spec = zoo.get("pytorch-examples-net")
    w = W.initial(spec, 3)
    W.save(tmp_path / "w.npz", spec, w, {"epoch": 2})
    spec2, w2, meta = W.load(tmp_path / "w.npz")
    assert spec2 == spec and meta == {"epoch": 2}
    assert set(w2) == set(w) and all(np.array_equal(w2[n], w[n]) for n in w)
