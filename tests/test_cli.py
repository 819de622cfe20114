"""The command line: the README's commands and clear errors for bad flags."""
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
        main(["summary", "mlp", "--backend", "jax"])
    assert e.value.code == 2
    assert "invalid choice: 'jax'" in capsys.readouterr().err


def test_console_entry_point_runs():
    out = subprocess.run([sys.executable, "-m", "mnistcnn", "zoo"], capture_output=True, text=True,
                         check=True)
    assert "seed000-cnn" in out.stdout and "827,738" in out.stdout
