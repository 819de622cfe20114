"""Spec transforms (mnistcnn.spec.variants): the studies' axes reproduce the zoo's variants."""
import pytest

from mnistcnn import spec as S
from mnistcnn import zoo
from mnistcnn.config import BN_VARIANT
from mnistcnn.errors import SpecError
from mnistcnn.spec import variants


def test_batchnorm_variant_is_the_reports():
    pair = variants.batchnorm_pair(zoo.get("seed000-cnn"), BN_VARIANT)
    assert pair["no-bn"] == zoo.get("seed000-cnn")
    assert pair["bn"].layers == zoo.get("seed000-cnn-bn").layers
    assert variants.without_batchnorm(zoo.get("complex-cnn")).state_params == 0


@pytest.mark.parametrize("fn,arg,base,expected", [
    (variants.set_hidden, 25, "pytorch-examples-net", "pytorch-examples-net-25"),
    (variants.set_pooling, "avg", "pytorch-examples-net", "pytorch-examples-net-avgpool"),
    (variants.conv_blocks, 1, "keras-bn-cnn", "keras-bn-cnn-1conv"),
])
def test_sweep_axes_reproduce_the_zoo_variants(fn, arg, base, expected):
    assert fn(zoo.get(base), arg).layers == zoo.get(expected).layers


def test_activation_and_kernel_axes():
    tanh = variants.set_activation(zoo.get("seed000-cnn"), "tanh")
    assert {l.activation for l in tanh.layers if hasattr(l, "activation")} == {"tanh", None}
    assert variants.set_kernel(zoo.get("seed000-cnn"), 3).rows[0].trainable == 9 * 32 + 32
    with pytest.raises(SpecError, match="has 2 conv blocks; cannot keep 3"):
        variants.conv_blocks(zoo.get("simple-cnn"), 3)


def test_logits_head_drops_a_softmax_head_only():
    assert variants.logits_head(zoo.get("pytorch-examples-net")).layers[-1] == S.Dense(10)
    inline = variants.logits_head(zoo.get("keras-bn-cnn"))  # Dense(10, activation='softmax')
    assert inline.layers[-1] == S.Dense(10) and len(inline.layers) == len(zoo.get("keras-bn-cnn").layers)
    mlp = variants.logits_head(zoo.get("mlp"))  # Dense(10) then Activation('log_softmax')
    assert mlp.layers == zoo.get("mlp").layers[:-1]
    logits = variants.logits_head(zoo.get("complex-cnn"))
    assert variants.logits_head(logits) == logits  # a logits head is kept


def test_batchnorm_settings_and_dropout_removal():
    keras_bn = variants.with_batchnorm_settings(zoo.get("complex-cnn"), S.BatchNorm.preset("keras"))
    assert {l for l in keras_bn.layers if isinstance(l, S.BatchNorm)} == {S.BatchNorm(0.99, 1e-3)}
    assert keras_bn.name == "complex-cnn" and keras_bn.trainable_params == zoo.get("complex-cnn").trainable_params
    plain = variants.without_dropout(zoo.get("complex-cnn"))
    assert not any(isinstance(l, S.Dropout) for l in plain.layers)
    assert plain.trainable_params == zoo.get("complex-cnn").trainable_params


def test_no_batchnorm_pair_where_there_is_nothing_to_normalise():
    spec = zoo.get("simple-fc")
    assert variants.batchnorm_pair(spec, BN_VARIANT) == {"as-is": spec}
