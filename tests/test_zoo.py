"""Every zoo entry against the numbers its source published."""
import pytest

from mnistcnn import zoo
from mnistcnn.errors import SpecError
from mnistcnn.spec import variants

PUBLISHED_TOTALS = {
    "seed000-cnn": 827_738,
    "pytorch-examples-net": 21_840,
    "pytorch-examples-net-25": 13_565,
    "pytorch-examples-net-avgpool": 21_840,
    "simple-fc": 7_850,
    "simple-cnn": 8_490,
}


@pytest.mark.parametrize("name,total", PUBLISHED_TOTALS.items())
def test_published_totals(name, total):
    spec = zoo.get(name)
    assert spec.total_params == total


def test_seed000_flattens_784():
    assert [r.output_shape for r in zoo.get("seed000-cnn").rows if r.kind == "Flatten"] == [(784,)]


def test_keras_bn_cnn_per_layer_counts_as_keras_publishes_them():
    """Keras counts BatchNorm as 4C (gamma, beta, moving mean, moving variance)."""
    spec = zoo.get("keras-bn-cnn")
    counts = [r.trainable + r.state for r in spec.rows if r.trainable + r.state]
    assert counts == [640, 256, 36_928, 256, 204_928, 512, 16_512, 512, 16_512, 512, 1_290]


def test_keras_bn_cnn_one_conv_variant():
    rows = zoo.get("keras-bn-cnn-1conv").rows
    flatten = next(i for i, r in enumerate(rows) if r.kind == "Flatten")
    assert rows[flatten].output_shape == (10_816,)
    assert rows[flatten + 1].trainable == 1_384_576


def test_mlp_and_complex_cnn_arithmetic():
    assert zoo.get("mlp").total_params == 784 * 512 + 512 + 512 * 512 + 512 + 5130
    cc = zoo.get("complex-cnn")
    assert [r.output_shape for r in cc.rows if r.kind == "Flatten"] == [(3136,)]
    assert cc.state_params == 2 * (32 + 64 + 64 + 512 + 256)


def test_keras_notebook_axis1_mistake_explained():
    """BatchNormalization(axis=1) on channels_last data normalises the height: 4*H weights.
    The 3-layer CNN's BN heights 11 and 3 give the notebook's rows 44 and 12."""
    spec = zoo.get("keras3-cnn")
    heights = [r.input_shape[1] for r in spec.rows if r.kind == "BatchNorm"]
    assert [4 * h for h in heights] == [44, 12]
    bn_correct = sum(r.trainable + r.state for r in spec.rows if r.kind == "BatchNorm")
    assert spec.keras_count_with_bn_axis(1) == spec.total_params - bn_correct + 44 + 12
    assert spec.keras_count_with_bn_axis(-1) == spec.total_params


@pytest.mark.parametrize("name", ["keras3-cnn", "keras5-cnn", "keras7-cnn"])
def test_report_004_counts_from_its_layer_lists(name):
    """Report 004's totals, non-trainable counts and every non-zero per-layer row of its
    summary tables, from the spec's arithmetic with its BatchNormalization(axis=1): 4*H
    weights per BN, half of them non-trainable (real Keras: tests/test_backends.py)."""
    spec, published = zoo.get(name), zoo.ZOO[name].published
    assert spec.keras_count_with_bn_axis(1) == published["keras_total_bn_axis1"]
    rows = []
    for r in spec.rows:
        n = 4 * r.input_shape[1] if r.kind == "BatchNorm" else r.trainable + r.state
        if n:
            rows.append(n)
    assert rows == published["keras_layer_params_bn_axis1"]
    bn_axis1 = [4 * r.input_shape[1] for r in spec.rows if r.kind == "BatchNorm"]
    assert sum(bn_axis1) // 2 == published["keras_non_trainable_bn_axis1"]
    # the model as published, its BatchNorms on the height axis: the spec counts it directly
    as_published = variants.batchnorm_axis(spec, "height")
    assert (as_published.total_params, as_published.state_params) == (
        published["keras_total_bn_axis1"], published["keras_non_trainable_bn_axis1"])
    assert [r.trainable + r.state for r in as_published.rows if r.trainable + r.state] == \
        published["keras_layer_params_bn_axis1"]
    assert (published["keras_total_bn_axis1"], published["keras_non_trainable_bn_axis1"]) in (
        (30_706, 28), (759_390, 44), (156_190, 118))


@pytest.mark.parametrize("k", [2, 4, 8, 32])
def test_bottleneck_any_width(k):
    spec = zoo.get(f"bottleneck-cnn:features={k}")
    assert spec == zoo.get("bottleneck-cnn", features=k)
    assert spec.name == f"bottleneck-cnn-features{k}"
    neck = spec.layers[spec.layers.index(next(x for x in spec.layers if type(x).__name__ == "Flatten")) + 1]
    assert (neck.units, neck.activation) == (k, "relu")  # report 002's accuracy ceiling needs the ReLU


def test_bottleneck_relu0_is_linear_with_the_same_parameters():
    linear, relu = zoo.get("bottleneck-cnn:relu=0"), zoo.get("bottleneck-cnn")
    assert linear.name == "bottleneck-cnn-relu0"
    assert [type(x).__name__ for x in linear.layers] == [type(x).__name__ for x in relu.layers]
    activations = [[getattr(x, "activation", None) for x in s.layers] for s in (linear, relu)]
    assert activations[0] != activations[1]
    assert linear.total_params == relu.total_params == 28_540


def test_unknown_name_lists_valid_names():
    with pytest.raises(SpecError) as e:
        zoo.get("resnet50")
    assert "Unknown model 'resnet50'. Valid names: bottleneck-cnn, complex-cnn" in str(e.value)
    with pytest.raises(SpecError, match="takes no argument"):
        zoo.get("mlp:features=3")


def test_a_name_that_is_not_a_string_is_a_clear_error():
    from mnistcnn.errors import SpecError

    with pytest.raises(SpecError, match="A zoo name must be a string such as 'seed000-cnn'. Received None"):
        zoo.get(None)


def _framework_counts(backend: str, spec) -> tuple:
    """(trainable, total) as the framework itself counts the model it built: PyTorch's
    parameters and floating-point buffers, Keras' count_params()."""
    from mnistcnn.backends import get_backend

    model = get_backend(backend).build(spec)
    if backend == "torch":
        trainable = sum(p.numel() for p in model.parameters())
        return trainable, trainable + sum(b.numel() for b in model.buffers() if b.is_floating_point())
    return sum(int(w.numpy().size) for w in model.trainable_weights), model.count_params()


def test_resnet_mini_counts_from_the_arithmetic_are_both_frameworks_own():
    from mnistcnn.backends import call

    spec = zoo.get("resnet-mini")
    assert (spec.trainable_params, spec.total_params, spec.macs) == (19_706, 19_994, 6_535_744)
    for backend in ("torch", "keras"):
        assert call(backend, _framework_counts, backend, spec) == (19_706, 19_994), backend
