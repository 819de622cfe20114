"""The spec's arithmetic, validation and serialisation, with no framework involved."""
import json

import pytest

from mnistcnn import spec as S
from mnistcnn import weights as W
from mnistcnn import zoo
from mnistcnn.errors import SpecError
from mnistcnn.spec import shapes


@pytest.mark.parametrize("n,k,s,p,expected", [
    (5, 3, 1, 0, 3),    # reports' worked example: 5x5 input, 3x3 kernel -> 3x3
    (5, 3, 2, 0, 2),    # stride 2 -> 2x2
    (5, 3, 1, 1, 5),    # zero padding 1 -> 5x5
    (28, 5, 1, 0, 24),  # pytorch-examples conv1
    (28, 5, 1, 2, 28),  # 'same' for a 5x5 kernel
    (13, 2, 2, 0, 6),   # pooling floors
])
def test_conv_output_size(n, k, s, p, expected):
    assert shapes.conv_output_size(n, k, s, p) == expected


@pytest.mark.parametrize("n,k,s,pads", [
    (28, 5, 1, (2, 2)), (28, 3, 2, (0, 1)), (7, 2, 2, (0, 1)), (5, 4, 1, (1, 2)), (4, 1, 3, (0, 0)),
])
def test_same_padding_puts_extra_pixel_at_the_end(n, k, s, pads):
    assert shapes.same_padding(n, k, s) == pads
    assert shapes.conv_output_size(n + sum(pads), k, s) == -(-n // s)


# (layer, input shape, output shape, trainable, state, macs): one row per case
LAYER_CASES = [
    (S.Conv2D(32, 5, padding="same"), (1, 28, 28), (32, 28, 28), 832, 0, 28 * 28 * 32 * 25),
    (S.Conv2D(8, 3, stride=2, padding="same", use_bias=False), (3, 9, 9), (8, 5, 5), 216, 0, 25 * 8 * 27),
    (S.Conv2D(4, (3, 1), padding=(1, 0)), (2, 6, 6), (4, 6, 6), 28, 0, 36 * 4 * 6),
    (S.MaxPool2D(2), (16, 7, 7), (16, 3, 3), 0, 0, 0),
    (S.MaxPool2D(2, padding="same"), (16, 7, 7), (16, 4, 4), 0, 0, 0),
    (S.AvgPool2D(3, stride=1, padding="same"), (4, 5, 5), (4, 5, 5), 0, 0, 0),
    (S.BatchNorm.preset("keras"), (64, 26, 26), (64, 26, 26), 128, 128, 0),
    (S.BatchNorm.preset("torch"), (128,), (128,), 256, 256, 0),
    (S.Dropout(0.5), (50,), (50,), 0, 0, 0),
    (S.SpatialDropout2D(0.5), (20, 8, 8), (20, 8, 8), 0, 0, 0),
    (S.Flatten(), (16, 7, 7), (784,), 0, 0, 0),
    (S.Dense(1024), (784,), (1024,), 803_840, 0, 802_816),
    (S.Activation("leaky_relu", negative_slope=0.01), (10,), (10,), 0, 0, 0),
    (S.GlobalAvgPool2D(), (64, 5, 5), (64,), 0, 0, 0),
]


@pytest.mark.parametrize("layer,inp,out,trainable,state,macs", LAYER_CASES)
def test_layer_arithmetic(layer, inp, out, trainable, state, macs):
    assert layer.output_shape(inp) == out
    assert layer.trainable_params(inp) == trainable
    assert layer.state_params(inp) == state
    assert layer.macs(inp) == macs




def test_dense_infers_its_input_width():
    """Changing one width never needs a second edit (the report's 'mat1 and mat2' crash)."""
    for k in (2, 4, 8, 32):
        spec = zoo.get("bottleneck-cnn", features=k)
        neck, hidden = [r for r in spec.rows if r.kind == "Dense"][:2]
        assert neck.output_shape == (k,)
        assert hidden.trainable == k * 1024 + 1024


# (layers, input shape, expected message fragment): one row per bad spec
BAD_SPECS = [
    ([S.Conv2D(8, 5, padding="valid"), S.MaxPool2D(2), S.MaxPool2D(2), S.MaxPool2D(2), S.Conv2D(8, 5)],
     (1, 28, 28),
     "Layer 4 (Conv2D) of spec 'bad': input is 3x3 but kernel_size=5x5 (padding='valid') needs at least 5x5"),
    ([S.Conv2D(8, 5)], (1, 4, 4), "Layer 0 (Conv2D) of spec 'bad': input is 4x4 but kernel_size=5x5"),
    ([S.MaxPool2D(8)], (1, 4, 4), "Layer 0 (MaxPool2D) of spec 'bad': input is 4x4 but pool_size=8x8"),
    ([S.Conv2D(8, 3), S.Dense(10)], (1, 28, 28),
     "Layer 1 (Dense) of spec 'bad': Dense needs a flat input but receives a 8x26x26 map (C x H x W); "
     "add Flatten() before it"),
    ([S.Flatten(), S.Conv2D(4, 3)], (1, 28, 28), "Layer 1 (Conv2D) of spec 'bad': Conv2D needs a feature map"),
    ([S.Flatten(), S.SpatialDropout2D(0.1)], (1, 28, 28), "Layer 1 (SpatialDropout2D)"),
    (["relu"], (1, 28, 28), "Layer 0 of spec 'bad' is 'relu', not a layer"),
    ([], (1, 28, 28), "Spec 'bad' has no layers"),
    ([S.Flatten()], (28, 28), "input_shape must be (C, H, W)"),
]


@pytest.mark.parametrize("layers,inp,message", BAD_SPECS)
def test_bad_spec_names_layer_and_shape(layers, inp, message):
    with pytest.raises(SpecError) as e:
        S.ModelSpec("bad", layers, inp)
    assert message in str(e.value)


@pytest.mark.parametrize("make,message", [
    (lambda: S.Dense(0),
     "Invalid value for argument `units` of Dense. Expected a strictly positive integer. Received units=0."),
    (lambda: S.Conv2D(-1), "Received filters=-1"),
    (lambda: S.Conv2D(8, 0), "`kernel_size` of Conv2D"),
    (lambda: S.Conv2D(8, 3, padding="full"), "Received padding='full'"),
    (lambda: S.Conv2D(8, 3, activation="swish"), "`activation` of Conv2D"),
    (lambda: S.Dense(8, activation="leaky_relu"), "hides the slope"),
    (lambda: S.Activation("leaky_relu"), "negative_slope"),
    (lambda: S.Dropout(1.0), "Received rate=1.0"),
    (lambda: S.BatchNorm(momentum=1.5, epsilon=1e-3), "Received momentum=1.5"),
    (lambda: S.BatchNorm(momentum=0.9, epsilon=0), "Received epsilon=0"),
    (lambda: S.BatchNorm.preset("jax"), "one of ['torch', 'keras']"),
    (lambda: S.MaxPool2D(2, padding=1), "Expected 'valid' or 'same'"),
])
def test_bad_layer_argument(make, message):
    with pytest.raises(SpecError) as e:
        make()
    assert message in str(e.value)


def test_batchnorm_presets_are_the_native_defaults():
    assert S.BatchNorm.preset("keras") == S.BatchNorm(momentum=0.99, epsilon=1e-3)
    assert S.BatchNorm.preset("torch") == S.BatchNorm(momentum=0.9, epsilon=1e-5)


@pytest.mark.parametrize("name", zoo.names())
def test_json_round_trip(name, tmp_path):
    spec = zoo.get(name)
    again = S.from_json(S.to_json(spec))
    assert again == spec and again.rows == spec.rows
    S.save(spec, tmp_path / "s.json")
    assert S.load(tmp_path / "s.json") == spec
    assert json.loads((tmp_path / "s.json").read_text())["version"] == 1


@pytest.mark.parametrize("data,message", [
    ({"format": "mnistcnn.spec", "version": 99, "name": "x", "layers": []}, "version 99 is not supported"),
    ({"format": "other"}, "Not a mnistcnn spec"),
    ({"format": "mnistcnn.spec", "version": 1, "name": "x", "layers": [{"kind": "Conv3D"}]},
     "unknown kind 'Conv3D'. Valid kinds: Conv2D, MaxPool2D"),
    ({"format": "mnistcnn.spec", "version": 1, "name": "x", "layers": [{"kind": "Dense", "width": 3}]},
     "Layer 0 (Dense) of spec 'x'"),
])
def test_bad_json(data, message):
    with pytest.raises(SpecError) as e:
        S.from_dict(data)
    assert message in str(e.value)


def test_summary_lists_every_layer_and_the_totals(capsys):
    spec = zoo.get("seed000-cnn-bn")
    spec.summary()
    out = capsys.readouterr().out
    for row in spec.rows:
        assert row.name in out
    assert "Total params: 832,026 (3.17 MiB)" in out  # as Keras says it: 3.17 MB
    assert "Non-trainable params (BatchNorm running statistics): 2,144" in out
    assert f"Forward mult-adds per example: {spec.macs:,}" in out


def test_spec_json_with_an_unknown_field_is_refused():
    d = S.to_dict(zoo.get("simple-fc"))
    d["optimiser"] = "adam"
    with pytest.raises(SpecError, match=r"unknown field\(s\) \['optimiser'\]"):
        S.from_dict(d)


@pytest.mark.parametrize("name", ["../../evil", "a/b", "a\\b", ".hidden"])
def test_spec_names_stay_inside_directories(name):
    with pytest.raises(SpecError, match="cannot contain"):
        S.ModelSpec(name, [S.Flatten(), S.Dense(10)])


def test_the_spellings_users_bring():
    """Keras' and PyTorch's argument names are taken; a wrong call is a SpecError that shows
    the arguments and the likely confusion, never a raw TypeError or a silent misreading."""
    from mnistcnn.errors import SpecError

    assert S.Conv2D(8, 3, strides=2).stride == (2, 2)
    assert S.Dense(out_features=4).units == 4 and S.Dropout(p=0.5).rate == 0.5
    assert S.BatchNorm(momentum=0.9, eps=1e-5).epsilon == 1e-5
    with pytest.raises(SpecError, match=r"PyTorch's Conv2d\(in_channels, out_channels, kernel_size\) is "
                                        r"Conv2D\(out_channels, kernel_size\)"):
        S.Conv2D(1, 32, 3)
    with pytest.raises(SpecError, match=r"BatchNorm\(momentum, epsilon\): .*BatchNorm.preset\('torch'\)"):
        S.BatchNorm()
    with pytest.raises(SpecError, match=r"Dense\(units, activation=\.\.\., use_bias=\.\.\.\): .*'colour'"):
        S.Dense(3, colour="red")


def test_every_layer_kind_is_exported_by_its_name():
    """LAYER_KINDS, filled by defining the kinds, is what mnistcnn.spec and mnistcnn export."""
    import mnistcnn

    for name, cls in S.LAYER_KINDS.items():
        assert getattr(S, name) is cls and name in S.__all__
        assert getattr(mnistcnn, name) is cls and name in mnistcnn.__all__


def test_defining_a_public_layer_class_registers_a_kind(monkeypatch):
    from dataclasses import dataclass

    from mnistcnn.spec import layers

    monkeypatch.setattr(layers, "LAYER_KINDS", dict(layers.LAYER_KINDS))

    @dataclass(frozen=True)
    class Doubling(layers.Layer):
        pass

    @dataclass(frozen=True)
    class _Helper(layers.Layer):
        pass

    assert layers.LAYER_KINDS["Doubling"] is Doubling and "_Helper" not in layers.LAYER_KINDS
    with pytest.raises(TypeError, match="a layer kind named Doubling is already defined"):
        type("Doubling", (layers.Layer,), {})


def test_a_residual_block_is_one_row_with_named_inner_rows():
    from mnistcnn.spec.lint import lint

    block = S.Residual([S.Conv2D(8, 3, stride=2, padding="same"), S.BatchNorm(0.9, 1e-5), S.Dropout(0.1),
                        S.BatchNorm(0.9, 1e-5)], shortcut=[S.Conv2D(8, 1, stride=2, use_bias=False)])
    spec = S.ModelSpec("res", [S.Conv2D(4, 3, padding="same"), block, S.GlobalAvgPool2D(), S.Dense(10)])
    row = spec.rows[1]
    assert (row.kind, row.input_shape, row.output_shape) == ("Residual", (4, 28, 28), (8, 14, 14))
    assert (row.trainable, row.state) == (4 * 9 * 8 + 8 + 2 * 16 + 4 * 8, 2 * 16)
    assert row.macs == 14 * 14 * 8 * 9 * 4 + 14 * 14 * 8 * 4  # the body's and the shortcut's; the addition uncounted
    assert [r.name for r in spec.leaves][1:6] == ["residual_1.body.conv2d_0", "residual_1.body.batchnorm_1",
                                                   "residual_1.body.dropout_2", "residual_1.body.batchnorm_3",
                                                   "residual_1.shortcut.conv2d_0"]
    assert "residual_1.shortcut.conv2d_0.kernel" in W.shapes(spec)
    assert "residual_1.body.conv2d_0 (Conv2D)" in spec.summary_text()
    assert S.from_json(S.to_json(spec)) == spec
    assert lint(spec)[0].startswith("residual_1.body: layer 2 (Dropout) comes right before BatchNorm")
    with pytest.raises(SpecError, match=r"body gives 8x14x14 but the shortcut is 8x28x28: the two are added"):
        S.ModelSpec("bad", [S.Residual([S.Conv2D(8, 3, stride=2, padding="same")], [S.Conv2D(8, 1)])])
    with pytest.raises(SpecError, match=r"`body` of Residual. Expected a non-empty list of layers"):
        S.Residual([])
    with pytest.raises(SpecError, match="Residual needs a feature map"):
        S.ModelSpec("flat", [S.Flatten(), S.Residual([S.Dense(784)])])


def test_a_spec_with_residual_blocks_has_no_batchnorm_pair():
    from mnistcnn.config import BN_VARIANT
    from mnistcnn.spec import variants

    with pytest.raises(SpecError, match=r"BatchNorm inside its blocks \(residual_3, residual_5\). Compare it as given"):
        variants.batchnorm_pair(zoo.get("resnet-mini"), BN_VARIANT)
