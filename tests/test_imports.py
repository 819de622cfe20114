"""The core imports no framework and no plotting library."""
import subprocess
import sys

HEAVY = ("torch", "keras", "tensorflow", "matplotlib", "scipy", "jax")


def test_core_imports_nothing_heavy():
    code = (
        "import sys, mnistcnn, mnistcnn.spec, mnistcnn.zoo\n"
        "mnistcnn.zoo.get('seed000-cnn').summary_text()\n"
        f"print(sorted({{m.split('.')[0] for m in sys.modules}} & set({HEAVY!r})))\n"
        "print('numpy' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    heavy, numpy = out.stdout.split("\n")[:2]
    assert heavy == "[]"
    assert numpy == "False"  # the spec is pure Python, not even numpy


def test_submodules_are_attributes_loaded_on_first_use():
    code = ("import sys, mnistcnn\n"
            "print('mnistcnn.train' in sys.modules)\n"
            "print(callable(mnistcnn.train.run), 'mnistcnn.train' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split("\n")[:2] == ["False", "True True"]
