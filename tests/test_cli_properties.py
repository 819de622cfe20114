"""Generated arguments, valid and invalid, for the command line and the TrainConfig API
(hypothesis): the command line exits 0 or 2, never with a traceback or "unexpected
error", never 1 for a user's error, and writes nothing when it exits 2; the API raises
ConfigError or gives a config, and the command line refuses what the API refuses.
Nothing trains: a run that would start stops at a stub (WouldTrain)."""
import contextlib
import dataclasses
import io
import math
import os
import tempfile
import typing
from pathlib import Path
from unittest import mock

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mnistcnn import config
from mnistcnn.cli import main
from mnistcnn.errors import ConfigError

FIELDS = {f.name: f for f in dataclasses.fields(config.TrainConfig)}
HINTS = typing.get_type_hints(config.TrainConfig)


class WouldTrain(BaseException):
    """Raised where training would begin: the arguments were accepted."""


def _stop(*args, **kwargs):
    raise WouldTrain()


def _kind(name):
    kind = HINTS[name]
    return next((t for t in typing.get_args(kind) if t is not type(None)), kind)


def values(name):
    """Python values for one TrainConfig field: good ones, and bad ones of every sort."""
    kind = _kind(name)
    if name in config.CHOICES:
        words = st.sampled_from([*config.CHOICES[name], "bogus", ""])
        return st.lists(words, min_size=1, max_size=3).map(tuple) if kind is tuple else words
    if kind is tuple:
        return st.lists(st.integers(-2, 6), min_size=1, max_size=3).map(tuple)
    if kind is bool:
        return st.just(True)
    if kind is int:
        return st.one_of(st.integers(-3, 12), st.sampled_from([2**32 - 1, 2**32, 2**64, 100_000, 60_000]))
    if kind is float:
        return st.one_of(st.floats(-0.5, 1.5), st.sampled_from([0.0, 1.0, math.inf, -math.inf, math.nan, 1e300]))
    return st.sampled_from(["auto", "cpu", "cuda:0", "gpu", "cuda:x", ""])  # device


settings_ = st.dictionaries(st.sampled_from(sorted(FIELDS)), st.none(), max_size=5).flatmap(
    lambda d: st.fixed_dictionaries({k: values(k) for k in d}))


def flags(given: dict) -> list:
    """The command line's words for TrainConfig settings."""
    argv = []
    for name, v in given.items():
        flag = "--" + name.replace("_", "-")
        if v is True:
            argv.append(flag)
        elif isinstance(v, tuple):
            argv += [flag, *map(str, v)]
        else:
            argv.append(f"{flag}={v}")  # = keeps a negative number a value
    return argv


def run_cli(argv) -> tuple:
    """(exit status or 'trains', stderr, files written) of main(argv) in an empty directory."""
    err, here = io.StringIO(), os.getcwd()
    with tempfile.TemporaryDirectory() as tmp, \
            mock.patch("mnistcnn.backends.call", _stop), mock.patch("mnistcnn.runner._check_before_running", _stop):
        os.chdir(tmp)
        try:
            with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
                code = main([a.replace("{tmp}", tmp) for a in argv])
        except SystemExit as e:
            code = e.code
        except WouldTrain:
            code = "trains"
        finally:
            os.chdir(here)
        written = [str(p) for p in Path(tmp).rglob("*")]
    return code, err.getvalue(), written


def check_outcome(code, err, written):
    assert code in (0, 2, "trains"), (code, err)
    assert "Traceback" not in err and "unexpected error" not in err, err
    if code == 2:
        assert err.strip(), "exit 2 without a message"
        assert written == [], written


FAST = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FAST
@given(settings_)
def test_the_api_gives_a_config_or_a_config_error(given_settings):
    try:
        cfg = config.TrainConfig(**given_settings)
    except ConfigError as e:
        assert set(e.arguments) & set(given_settings) or set(e.arguments) & {"optimizer", "schedule", "defaults"}
    else:
        for name, v in given_settings.items():  # what was given is what the config holds
            assert getattr(cfg, name) == v


@FAST
@given(settings_, st.sampled_from(["train", "compare", "sweep"]))
def test_the_command_line_refuses_what_the_api_refuses(given_settings, command):
    if command == "compare":
        given_settings = {k: v for k, v in given_settings.items() if k not in ("defaults", "harmonize")}
    argv = {"train": ["train", "simple-fc", "--backend", "torch", "--out", "{tmp}/t"],
            "compare": ["compare", "simple-fc", "--out", "{tmp}/c", "--in-process"],
            "sweep": ["sweep", "simple-fc", "--grid", "lr=0.01", "--out", "{tmp}/s", "--in-process"]}[command]
    code, err, written = run_cli(argv + flags(given_settings))
    check_outcome(code, err, written)
    try:
        config.TrainConfig(**given_settings)
    except ConfigError:
        assert code == 2, err  # what the API refuses, the command line refuses too


@FAST
@given(st.lists(st.one_of(
    st.sampled_from(["--seeds", "--workers", "--max-seeds", "--ci-target", "--executor", "--address", "--resume",
                     "--overwrite", "--out", "--backend", "--backends", "--images", "--tiers",
                     "--native", "--ablate", "--no-bn", "--quiet", "--in-process", "--only", "--smoke"]),
    st.sampled_from(["0", "-1", "1", "3", "x", "", "nan", "auto", "torch", "torch,keras", "ray", "local", "1,7",
                     "{tmp}/o", "/proc/x", "all", "000"])), max_size=6),
    st.sampled_from(["train", "compare", "sweep", "parity", "reproduce", "summary", "evaluate", "zoo"]))
def test_any_arguments_end_in_0_or_2_and_write_nothing_on_2(argv, command):
    model = {"train": ["simple-fc"], "compare": ["simple-fc"], "sweep": ["simple-fc", "--grid", "lr=0.1"],
             "parity": ["simple-fc"], "reproduce": ["000"], "summary": ["simple-fc", "--backend", "spec"],
             "evaluate": ["{tmp}/missing.npz"], "zoo": []}[command]
    code, err, written = run_cli([command, *model, *argv])
    check_outcome(code, err, written)


def test_the_makefiles_commands_are_accepted_as_written():
    """make main's and the other targets' mnistcnn command lines, read from the Makefile:
    each gets as far as training (a default of one flag once made every plain compare an
    error, which only a fresh clone's make main showed)."""
    import re
    import shlex

    makefile = (Path(__file__).resolve().parents[1] / "Makefile").read_text()
    commands = [shlex.split(line.split("/bin/mnistcnn", 1)[1]) for line in makefile.splitlines()
                if re.search(r"/bin/mnistcnn (compare|sweep|train) ", line)]
    assert commands, "no mnistcnn compare/sweep/train command in the Makefile"
    for argv in commands:
        argv = [a if not a.startswith(("runs/", "reports/")) else "{tmp}/" + a for a in argv]
        code, err, _ = run_cli(argv)
        assert code == "trains", (argv, code, err)
