"""The command line: the README's commands and clear errors for bad flags."""
import json
import os
import subprocess
import sys

import pytest

from mnistcnn.cli import main


def test_summary_both_backends(capsys):
    assert main(["summary", "seed000-cnn", "--backend", "both"]) == 0
    out = capsys.readouterr().out
    assert "spec: 827,738  torch: 827,738  keras: 827,738" in out
    assert "Check: all backends agree with the spec." in out


def test_summary_spec_only_from_json(tmp_path, capsys):
    from mnistcnn import spec, zoo

    spec.save(zoo.get("mlp"), tmp_path / "mlp.json")
    assert main(["summary", "--spec", str(tmp_path / "mlp.json"), "--backend", "spec"]) == 0
    assert "Total params: 669,706" in capsys.readouterr().out


def test_unknown_model_is_one_clear_error(capsys):
    assert main(["summary", "lenet9", "--backend", "spec"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("mnistcnn: error: Unknown model 'lenet9'. Valid names:")


def test_bad_flag_value(capsys):
    with pytest.raises(SystemExit) as e:
        main(["summary", "mlp", "--backend", "mxnet"])
    assert e.value.code == 2
    assert "invalid choice: 'mxnet'" in capsys.readouterr().err


def test_console_entry_point_runs():
    out = subprocess.run([sys.executable, "-m", "mnistcnn", "zoo"], capture_output=True, text=True,
                         check=True)
    assert "seed000-cnn" in out.stdout and "827,738" in out.stdout


@pytest.mark.slow
@pytest.mark.parametrize("command,sig,code,word", [
    ("train", "SIGINT", 130, "interrupted"), ("train", "SIGTERM", 143, "terminated"),
    ("compare", "SIGTERM", 143, "terminated")])
def test_interruption_exits_cleanly_with_how_to_resume(command, sig, code, word, tmp_path, mnist_path):
    """Ctrl-C or SIGTERM: no traceback, the lock released, no child left running, and the
    printed command continues the work."""
    import os
    import signal
    import time

    out = tmp_path / "run"
    args = ["--epochs", "500", "--train-limit", "2000", "--val-size", "500", "--out", str(out),
            "--data-dir", str(mnist_path), "--quiet"]
    argv = (["train", "seed000-cnn", "--backend", "torch"] if command == "train"
            else ["compare", "simple-fc", "--seeds", "1", "--no-bn", "--workers", "2"]) + args
    # SIGINT as from a terminal: a shell that starts a job in the background (a CI runner
    # may) has it ignored, and Python keeps an ignored SIGINT ignored in its children
    proc = subprocess.Popen([sys.executable, "-m", "mnistcnn", *argv], stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.time() + 600  # generous: a loaded CI machine
    while not list(out.rglob("result.json")) and time.time() < deadline and proc.poll() is None:  # one epoch done
        time.sleep(0.5)
    assert proc.poll() is None and list(out.rglob("result.json")), "no epoch finished before the signal"
    children = subprocess.run(["pgrep", "-P", str(proc.pid)], capture_output=True, text=True).stdout.split()
    proc.send_signal(getattr(signal, sig))
    try:
        _, err = proc.communicate(timeout=600)  # generous too: CI ran this beside five trainings
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()  # no process or pipe left behind for the next test
        pytest.fail(f"mnistcnn {command} did not exit within 600 s of {sig}")
    assert proc.returncode == code, err[-2000:]
    assert "Traceback" not in err
    assert f"{word}; finished epochs and runs are saved: resume with: mnistcnn {command}" in err
    if command == "train":
        assert err.strip().endswith("--resume")
    time.sleep(1)
    for pid in children:  # compare's training children were stopped, not orphaned
        assert not os.path.exists(f"/proc/{pid}") or "zombie" in open(f"/proc/{pid}/status").read().lower()
    for lock in out.rglob(".mnistcnn.lock"):  # only a child killed after 30 s leaves one: stale
        assert not os.path.exists(f"/proc/{lock.read_text().split()[0]}"), lock


def test_an_unexpected_error_is_one_line_and_a_file(monkeypatch, capsys, tmp_path):
    from mnistcnn import cli, zoo

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.setattr(zoo, "names", lambda: 1 / 0)  # a bug in what a command calls
    assert cli.main(["zoo"]) == 1
    err = capsys.readouterr().err
    assert "unexpected error: ZeroDivisionError: division by zero" in err and "Traceback" not in err
    assert "Traceback" in (tmp_path / "mnistcnn" / "last-error.txt").read_text()
    with pytest.raises(ZeroDivisionError):
        cli.main(["--debug", "zoo"])


def test_version_help_and_zoo_table(capsys):
    import mnistcnn

    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0 and capsys.readouterr().out.strip() == f"mnistcnn {mnistcnn.__version__}"
    with pytest.raises(SystemExit):
        main(["--help"])
    assert "train the same CNN in PyTorch and in Keras" in capsys.readouterr().out
    assert main(["zoo"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:4] == ["name", "trainable", "BN", "stats"]
    assert any(l.split()[:2] == ["seed000-cnn", "827,738"] for l in lines)


@pytest.mark.slow
def test_output_that_is_not_a_terminal_gets_one_line_per_epoch_and_no_cuda_noise(tmp_path, mnist_path):
    """CI logs and `> log.txt`: no redrawn progress bar; TensorFlow's CUDA probing on a
    machine without a GPU ('failed call to cuInit') does not reach the user."""
    proc = subprocess.run([sys.executable, "-m", "mnistcnn", "train", "simple-fc", "--backend", "keras",
                           "--epochs", "2", "--train-limit", "256", "--out", str(tmp_path / "r"),
                           "--data-dir", str(mnist_path)], capture_output=True, text=True, check=True)
    assert "\r" not in proc.stdout + proc.stderr
    assert [line.split("  ")[0] for line in proc.stdout.splitlines() if " epoch " in line] == \
        ["[keras] epoch 1/2", "[keras] epoch 2/2"]
    for noise in ("cuInit", "cudart_stub", "absl::InitializeLog"):
        assert noise not in proc.stderr


def test_every_flag_says_what_it_does():
    import argparse

    from mnistcnn.cli import make_parser

    sub = next(a for a in make_parser()._actions if isinstance(a, argparse._SubParsersAction))
    for name, parser in sub.choices.items():
        for action in parser._actions:
            if action.help == argparse.SUPPRESS:
                continue
            assert action.help and "default: None" not in action.help, (name, action.option_strings or action.dest)


def test_one_way_to_name_the_model_and_both_backends_by_default(tmp_path, mnist_path, capsys):
    from mnistcnn import spec, zoo

    spec.save(zoo.get("simple-fc"), tmp_path / "fc.json")
    assert main(["summary", str(tmp_path / "fc.json"), "--backend", "spec"]) == 0  # MODEL as a file
    assert "Total params: 7,850" in capsys.readouterr().out
    assert main(["summary", "--arch", "mlp", "--backend", "spec"]) == 0  # the older spelling still works
    assert main(["summary", "mlp", "--arch", "mlp", "--backend", "spec"]) == 2
    assert "Name one model" in capsys.readouterr().err
    assert main(["train", str(tmp_path / "fc.json"), "--epochs", "1", "--train-limit", "128", "--test-limit", "100",
                 "--out", str(tmp_path / "r"), "--data-dir", str(mnist_path), "--quiet"]) == 0
    assert (tmp_path / "r" / "torch" / "result.json").exists() and (tmp_path / "r" / "keras" / "result.json").exists()
    capsys.readouterr()
    assert main(["evaluate", str(tmp_path / "r" / "keras" / "checkpoint" / "weights.npz"),
                 "--data-dir", str(mnist_path)]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert [json.loads(x)["backend"] for x in lines] == ["torch", "keras"]
    assert json.loads(lines[0])["test_acc"] == pytest.approx(json.loads(lines[1])["test_acc"], abs=2e-4)


def test_an_error_speaks_python_to_a_caller_and_flags_on_the_command_line(tmp_path, mnist_path, capsys):
    from mnistcnn import train, zoo
    from mnistcnn.errors import ConfigError

    cfg = train.TrainConfig(epochs=1, train_limit=64, test_limit=64, val_size=0)
    with pytest.raises(ConfigError, match="`resume=True` .* `overwrite=True` replaces it: give one"):
        train.run(zoo.get("simple-fc"), "torch", cfg, out=tmp_path, resume=True, overwrite=True)
    train.run(zoo.get("simple-fc"), "torch", cfg, tmp_path, mnist_path, progress=False)
    with pytest.raises(ConfigError, match=r"Resume it with `resume=True`, replace it with `overwrite=True`, or "
                                          r"choose another `out`"):
        train.run(zoo.get("simple-fc"), "torch", cfg, tmp_path, mnist_path, progress=False)
    assert main(["train", "simple-fc", "--backend", "torch", "--out", str(tmp_path)]) == 2
    assert "Resume it with --resume, replace it with --overwrite, or choose another --out." in capsys.readouterr().err


def test_in_flags_writes_each_argument_as_its_flag():
    from mnistcnn.cli import in_flags
    from mnistcnn.errors import ConfigError

    flags = {"lr": "--lr", "resume": "--resume", "milestones": "--milestones", "optimizer": "--optimizer",
             "ci_target": "--ci-target"}
    e = ConfigError("`lr` and `resume=True`, `optimizer='adam'`, `milestones=(5, 10)`; Received lr=0.0, "
                    "milestones=[2, 1], ci_target_pp=-1.0, max_lr=3 and `units`.", arguments=(
                        "lr", "resume", "optimizer", "milestones", "ci_target_pp", "units"))
    assert in_flags(e, flags) == ("--lr and --resume, --optimizer adam, --milestones 5 10; Received --lr 0.0, "
                                  "--milestones 2 1, --ci-target -1.0, max_lr=3 and `units`.")


def test_a_closed_standard_output_ends_quietly():
    p = subprocess.Popen([sys.executable, "-m", "mnistcnn", "zoo"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    p.stdout.close()  # `mnistcnn zoo | head -0`: the reader is gone before the first line
    with p.stderr:
        assert p.stderr.read() == b""
    assert p.wait(timeout=120) == 141


def test_the_error_handler_survives_a_cache_it_cannot_write(monkeypatch, capsys, tmp_path):
    from mnistcnn import cli, zoo

    (tmp_path / "a-file").write_text("")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "a-file"))
    monkeypatch.setattr(zoo, "names", lambda: 1 / 0)
    assert cli.main(["zoo"]) == 1
    err = capsys.readouterr().err
    assert "unexpected error: ZeroDivisionError" in err and "could not be written to the cache" in err
    assert "During handling" not in err  # the bug's own traceback, not the handler's


def test_an_operating_system_error_names_the_path_and_the_fix(monkeypatch, capsys, tmp_path):
    import errno

    from mnistcnn import cli, zoo

    def full(*a):
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "out.json"))

    monkeypatch.setattr(zoo, "names", full)
    assert cli.main(["zoo"]) == 2
    assert capsys.readouterr().err == f"mnistcnn: error: {tmp_path / 'out.json'}: the disk is full: free some " \
                                      "space, or write elsewhere.\n"


def test_a_full_disk_names_the_file_asked_for(monkeypatch, capsys, tmp_path):
    import errno

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    assert main(["results-doc", "--out", str(tmp_path / "results.md")]) == 2
    assert f"error: {tmp_path / 'results.md'}: the disk is full" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []  # no temporary file left behind
