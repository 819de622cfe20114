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


@pytest.mark.parametrize("settings,words", [
    ({"epochs": "5"}, "Expected an integer >= 1. Received epochs='5'"),
    ({"epochs": True}, "Received epochs=True"),
    ({"lr": "0.1"}, "Expected a positive number. Received lr='0.1'"),
    ({"lr": None}, "Received lr=None"),
    ({"dataset": "cifar10"}, "Expected one of ['mnist', 'fashion-mnist']. Received dataset='cifar10'"),
    ({"seed": -1}, "Received seed=-1"), ({"seed": 2**64}, "Received seed=18446744073709551616"),
    ({"schedule": "step", "gamma": -1}, "Received gamma=-1"),
    ({"schedule": "multistep", "milestones": (-1,)}, "Received milestones=(-1,)"),
    ({"schedule": "multistep", "milestones": (3, 2)}, "increasing"),
    ({"schedule": "multistep", "milestones": 5}, "Received milestones=5"),
    ({"threads": 100_000}, "Received threads=100000"),
    ({"val_size": 60_000}, "Received val_size=60000"),
    ({"defaults": "native", "harmonize": "init"}, "Received harmonize='init'"),
    ({"nesterov": "yes"}, "Expected True or False"),
    ({"device": 3}, "Received device=3"),
])
def test_every_field_is_checked_for_type_range_and_choice(settings, words):
    with pytest.raises(config.ConfigError, match="Invalid value for `") as e:
        config.TrainConfig(**settings)
    assert words in str(e.value)
    assert e.value.arguments == (next(iter(settings.keys() - {"schedule", "defaults"})),)


def test_values_are_stored_as_plain_python():
    import numpy as np

    cfg = config.TrainConfig(epochs=np.int64(3), lr=1, schedule="multistep", milestones=[1, 2])
    assert (type(cfg.epochs), type(cfg.lr), cfg.milestones) == (int, float, (1, 2))
    assert config.TrainConfig(seed=2**32 - 1).seed == 2**32 - 1


@pytest.mark.parametrize("settings,words", [
    ({"optimizer": "adam", "momentum": 0.9}, "`momentum=0.9` does not apply to `optimizer='adam'`"),
    ({"optimizer": "adam", "nesterov": True}, "`nesterov=True` does not apply"),
    ({"optimizer": "adam", "rho": 0.9}, "`rho=0.9` does not apply"),
    ({"optimizer": "sgd", "beta1": 0.5}, "`optimizer='adam'` only"),
    ({"optimizer": "sgd", "eps": 1e-8}, "`eps=1e-08` does not apply to `optimizer='sgd'`"),
    ({"optimizer": "adadelta", "momentum": 0.1}, "`momentum=0.1` does not apply"),
    ({"milestones": (2,)}, "`milestones=(2,)` does not apply to `schedule='constant'`"),
    ({"schedule": "step", "milestones": (2,)}, "`milestones=(2,)` does not apply to `schedule='step'`"),
    ({"gamma": 0.5}, "`gamma=0.5` does not apply"), ({"step_size": 3}, "`step_size=3` does not apply"),
    ({"harmonize": ("init",)}, "`harmonize=('init',)` does not apply to `defaults='harmonized'`"),
    ({"defaults": "native", "init": "torch_default"}, "`init='torch_default'` does not apply"),
    ({"optimizer": "sgd", "nesterov": True}, "`nesterov=True` needs a momentum"),
    ({"schedule": "multistep"}, "`schedule='multistep'` needs"),
])
def test_a_setting_that_does_not_apply_is_refused(settings, words):
    with pytest.raises(config.ConfigError) as e:
        config.TrainConfig(**settings)
    assert words in str(e.value)


def test_a_setting_given_at_its_default_is_refused_where_it_does_not_apply():
    cfg = config.TrainConfig(optimizer="adam", momentum=0.0)  # the API cannot tell: accepted
    cfg.check_applies(["lr", "beta1"])
    with pytest.raises(config.ConfigError, match="`momentum=0.0` does not apply"):
        cfg.check_applies(["momentum"])  # the command line can: --momentum 0 was given


def test_settings_that_apply_are_accepted():
    config.TrainConfig(optimizer="sgd", momentum=0.9, nesterov=True, weight_decay=1e-4)
    config.TrainConfig(optimizer="rmsprop", momentum=0.5, rho=0.9, eps=1e-7)
    config.TrainConfig(schedule="step", step_size=2, gamma=0.5)
    config.TrainConfig(defaults="native", harmonize=("init",), init="torch_default")


def test_native_modes_drop_an_init_that_does_not_apply():
    cfg = config.TrainConfig(init="torch_default")
    assert config.mode_config(cfg, "native").init == "glorot_uniform"
    assert config.mode_config(cfg, "native+init").init == "torch_default"


@pytest.mark.parametrize("settings,words", [
    ({"name": "adamw", "lr": 0.1}, "Received name='adamw'"), ({"name": "sgd", "lr": "0.1"}, "Received lr='0.1'"),
    ({"name": "sgd", "lr": 0.1, "formulas": "tf"}, "Received formulas='tf'"),
    ({"name": "sgd", "lr": 0.1, "eps": -1.0}, "Received eps=-1.0"),
])
def test_optimizer_checks_its_fields(settings, words):
    with pytest.raises(config.ConfigError, match="Invalid value for `") as e:
        config.Optimizer(**settings)
    assert words in str(e.value)


def test_an_error_is_pickled_with_its_arguments():
    import pickle

    e = pickle.loads(pickle.dumps(config.ConfigError("Resume it with `resume=True` or another `out`.")))
    assert e.arguments == ("resume", "out")
