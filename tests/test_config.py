"""Run settings and what each defaults mode means (mnistcnn.config)."""
import pytest

from mnistcnn import config, zoo
from mnistcnn.spec import Activation, BatchNorm

TORCH, KERAS = "torch", "keras"


def test_optimizer_resolution():
    cfg = config.TrainConfig(optimizer="adam")
    assert cfg.optimizer_for(TORCH).eps == cfg.optimizer_for(KERAS).eps == 1e-8
    assert cfg.optimizer_for(KERAS).formulas == "torch"
    native = config.TrainConfig(optimizer="adam", defaults="native")
    assert native.optimizer_for(KERAS).formulas == "native"
    assert (native.optimizer_for(TORCH).eps, native.optimizer_for(KERAS).eps) == (1e-8, 1e-7)
    assert config.TrainConfig(eps=1e-4, defaults="native").optimizer_for(KERAS).eps == 1e-4


def test_harmonize_items_one_at_a_time():
    native = config.TrainConfig(defaults="native")
    assert not any(native.harmonized(i) for i in config.DEFAULT_ITEMS)
    assert all(config.TrainConfig().harmonized(i) for i in config.DEFAULT_ITEMS)
    only_opt = config.TrainConfig(defaults="native", harmonize=("optimizer",))
    assert only_opt.harmonized("optimizer") and not only_opt.harmonized("init")
    assert only_opt.optimizer_for(KERAS).formulas == "torch"
    with pytest.raises(config.ConfigError, match="Received harmonize=\\('dropout',\\)"):
        config.TrainConfig(harmonize=("dropout",))


def test_learning_rate_schedules():
    two_then_two = config.TrainConfig(lr=0.01, schedule="multistep", milestones=(2,), epochs=4)
    assert [two_then_two.lr_at(e) for e in range(4)] == pytest.approx([0.01, 0.01, 0.001, 0.001])
    step = config.TrainConfig(lr=1.0, schedule="step", step_size=2, gamma=0.5)
    assert [step.lr_at(e) for e in range(5)] == [1.0, 1.0, 0.5, 0.5, 0.25]


@pytest.mark.parametrize("field,value,message", [
    ("optimizer", "lbfgs", "Expected one of ['sgd', 'adam', 'rmsprop', 'adadelta']. Received optimizer='lbfgs'"),
    ("lr", 0, "Received lr=0"), ("epochs", 0, "Received epochs=0"),
    ("defaults", "mixed", "Received defaults='mixed'"), ("init", "he", "Received init='he'"),
    ("precision", "float16", "Expected one of ['float32', 'bfloat16']. Received precision='float16'"),
])
def test_bad_config(field, value, message):
    with pytest.raises(config.ConfigError, match=message.replace("[", r"\[").replace("(", r"\(")):
        config.TrainConfig(**{field: value})


def test_trained_spec_trains_on_logits_with_the_modes_batchnorm():
    spec = zoo.get("pytorch-examples-net")
    assert isinstance(spec.layers[-1], Activation)
    assert config.TrainConfig().trained_spec(spec, TORCH).layers == spec.layers[:-1]
    complex_cnn = zoo.get("complex-cnn")  # BatchNorm momentum 0.9, epsilon 1e-5
    assert config.TrainConfig().trained_spec(complex_cnn, KERAS).layers == complex_cnn.layers[:-1]  # no log_softmax
    native = config.TrainConfig(defaults="native").trained_spec(complex_cnn, KERAS)
    assert {l for l in native.layers if isinstance(l, BatchNorm)} == {BatchNorm(0.99, 1e-3)}
    native_torch = config.TrainConfig(defaults="native").trained_spec(zoo.get("seed000-cnn-bn"), TORCH)
    assert {l for l in native_torch.layers if isinstance(l, BatchNorm)} == {BatchNorm(0.9, 1e-5)}
    kept = config.TrainConfig(defaults="native", harmonize=("batchnorm",)).trained_spec(complex_cnn, KERAS)
    assert kept.layers == complex_cnn.layers[:-1]


def test_harmonized_optimizer_values_are_pytorchs():
    from mnistcnn.backends import get_backend

    assert config.HARMONIZED_OPTIMIZER_DEFAULTS == get_backend(TORCH).NATIVE_OPTIMIZER_DEFAULTS


def test_mode_config():
    assert config.mode_config(config.TrainConfig(), "native+init").harmonize == ("init",)
    with pytest.raises(config.ConfigError, match="Unknown mode 'native\\+dropout'"):
        config.mode_config(config.TrainConfig(), "native+dropout")


@pytest.mark.parametrize("field,value", [
    ("lr", float("inf")), ("lr", float("nan")), ("momentum", float("nan")), ("eps", float("inf")),
    ("train_limit", 0), ("train_limit", -5), ("test_limit", 0), ("beta1", 1.0), ("eps", 0.0),
    ("threads", 0),
])
def test_values_that_would_train_silently_wrong_are_refused(field, value):
    with pytest.raises(config.ConfigError, match=f"Invalid value for `{field}`.*Received {field}="):
        config.TrainConfig(**{field: value})
