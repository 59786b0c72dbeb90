"""The CLI: real examples, JSON output, one-line errors with exit code 2."""

import json
import os
import re
import subprocess
import sys

import pytest

from mobilenets.cli import build_parser, main


def test_zoo_json(capsys):
    assert main(["zoo", "--version", "v1", "--filter", "v1-1.00-*", "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["macs_m"] for r in rows] == [568.7, 418.1, 290.7, 186.4]
    assert rows[0]["params"] == 4_253_864 and rows[0]["top1"] == 70.9


def test_zoo_markdown(capsys):
    assert main(["zoo", "--filter", "v3-small-*", "--format", "md"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("| spec |") and "v3-small-1.00-224-min" in out


def test_profile_json(capsys):
    assert main(["profile", "v1-0.50-32", "--classes", "10", "--json", "--per-layer"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert (d["params"], d["trainable_params"]) == (834_666, 823_722)
    assert isinstance(d["macs"], int) and d["layers"][0]["type"] == "InputLayer"


@pytest.mark.parametrize("argv, fragment", [
    (["profile", "v9-1.0-224"], "not a model spec: 'v9-1.0-224'"),
    (["profile", "/no/such/model.tflite"], "no such model file"),
    (["zoo", "--filter", "nothing*"], "no registry variant matches"),
    (["profile"], "the following arguments are required"),
])
def test_errors_are_one_line_exit_2(argv, fragment, capsys):
    assert _run(argv) == 2
    err = capsys.readouterr().err
    assert fragment in err and err.count("\n") == 1 and "Traceback" not in err


# Every command that takes a spec refuses one out of bounds, before any work.
_OUT_OF_BOUNDS = [
    (["profile", "v1-1.0-99999"], "'v1-1.0-99999': each side of the input must be from 32 to 1024 pixels"),
    (["profile", "v1-0.01-224"], "'v1-0.01-224': alpha (width multiplier) must be from 0.05 to 2.0"),
    (["benchmark", "v1-1.0-99999"], "each side of the input must be from 32 to 1024 pixels"),
    (["compare", "v2-3.0-224"], "alpha (width multiplier) must be from 0.05 to 2.0. Received alpha=3.0"),
    (["compare", "--grid", "v1:0.5:224,2048"], "from 32 to 1024 pixels. Received 2048x2048"),
    (["retrain", "digits", "--arch", "v1-1.0-99999"], "from 32 to 1024 pixels. Received 99999x99999"),
    (["train", "digits", "--arch", "v2-0.01-32"], "must be from 0.05 to 2.0. Received alpha=0.01"),
]


@pytest.mark.parametrize("argv, fragment", _OUT_OF_BOUNDS, ids=[" ".join(a) for a, _ in _OUT_OF_BOUNDS])
def test_specs_out_of_bounds_are_refused(argv, fragment, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert _run(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"mobilenets {argv[0]}: error: ") and fragment in err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert not any(tmp_path.iterdir())


def _run(argv) -> int:
    """main()'s exit code, whether it returns it or argparse exits with it."""
    try:
        return main(argv)
    except SystemExit as e:
        return e.code


def test_every_command_has_an_example():
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    for name, p in sub.choices.items():
        assert "example:\n  mobilenets " + name in p.format_help(), name


def test_python_m_entry_point():
    out = subprocess.run([sys.executable, "-m", "mobilenets", "--help"],
                         capture_output=True, text=True, check=True).stdout
    assert "profile" in out and "zoo" in out


# Every numeric flag, by the rule it follows: refused when parsed, in one line, exit 2.
_JUNK = [
    (["retrain", "d", "--epochs", "0"], "--epochs: must be a whole number >= 1. Received '0'"),
    (["retrain", "d", "--epochs", "-3"], "--epochs: must be a whole number >= 1. Received '-3'"),
    (["retrain", "d", "--epochs", "2.5"], "--epochs: must be a whole number >= 1. Received '2.5'"),
    (["retrain", "d", "--batch-size", "0"], "--batch-size: must be a whole number >= 1. Received '0'"),
    (["retrain", "d", "--batch-size", "-1"], "--batch-size: must be a whole number >= 1. Received '-1'"),
    (["retrain", "d", "--learning-rate", "-1"], "--learning-rate: must be a number > 0. Received '-1'"),
    (["retrain", "d", "--learning-rate", "nan"], "--learning-rate: must be a number > 0. Received 'nan'"),
    (["retrain", "d", "--learning-rate", "inf"], "--learning-rate: must be a number > 0. Received 'inf'"),
    (["retrain", "d", "--fine-tune-learning-rate", "0"], "--fine-tune-learning-rate: must be a number > 0"),
    (["retrain", "d", "--label-smoothing", "2"],
     "--label-smoothing: must be a fraction >= 0 and < 1. Received '2'"),
    (["retrain", "d", "--dropout", "1.5"], "--dropout: must be a fraction >= 0 and < 1. Received '1.5'"),
    (["retrain", "d", "--dropout", "-0.5"], "--dropout: must be a fraction >= 0 and < 1. Received '-0.5'"),
    (["retrain", "d", "--dropout", "1"], "--dropout: must be a fraction >= 0 and < 1. Received '1'"),
    (["retrain", "d", "--weight-decay=-1e-4"], "--weight-decay: must be a number >= 0. Received '-1e-4'"),
    (["retrain", "d", "--fine-tune", "-5"], "--fine-tune: must be a whole number >= 0. Received '-5'"),
    (["retrain", "d", "--fine-tune-epochs", "-1"],
     "--fine-tune-epochs: must be a whole number >= 1. Received '-1'"),
    (["retrain", "d", "--seed", "-1"], "--seed: must be a whole number >= 0. Received '-1'"),
    (["retrain", "d", "--time-budget", "-1"], "--time-budget: must be a number > 0. Received '-1'"),
    (["retrain", "d", "--logical-cpus", "0"], "--logical-cpus: must be a whole number >= 1. Received '0'"),
    (["retrain", "d", "--validation-percent", "nan"],
     "--validation-percent: must be a percentage >= 0 and < 100. Received 'nan'"),
    (["retrain", "d", "--test-percent", "100"],
     "--test-percent: must be a percentage >= 0 and < 100. Received '100'"),
    (["retrain", "d", "--random-crop", "-5"], "--random-crop: must be a percentage >= 0 and < 100"),
    (["train", "d", "--epochs", "0"], "--epochs: must be a whole number >= 1. Received '0'"),
    (["train", "d", "--low-res", "-1"], "--low-res: must be a whole number >= 0. Received '-1'"),
    (["train", "d", "--low-res-fraction", "1"],
     "--low-res-fraction: must be a fraction > 0 and < 1. Received '1'"),
    (["demo", "--epochs", "0"], "--epochs: must be a whole number >= 1. Received '0'"),
    (["compare", "v1-0.25-32", "--epochs", "0"], "--epochs: must be a whole number >= 1. Received '0'"),
    (["compare", "v1-0.25-32", "--repeats", "0"], "--repeats: must be a whole number >= 1"),
    (["compare", "v1-0.25-32", "--warmup", "-1"], "--warmup: must be a whole number >= 0"),
    (["compare", "v1-0.25-32", "--budget-ms", "nan"], "--budget-ms: must be a number > 0. Received 'nan'"),
    (["compare", "v1-0.25-32", "--max-size-mb", "0"], "--max-size-mb: must be a number > 0"),
    (["compare", "v1-0.25-32", "--budget-threads", "0"], "--budget-threads: must be a whole number >= 1"),
    (["evaluate", "run", "--top-k", "0"], "--top-k: must be a whole number >= 1. Received '0'"),
    (["evaluate", "run", "--top-k", "-1"], "--top-k: must be a whole number >= 1. Received '-1'"),
    (["predict", "m", "i.jpg", "--top-k", "0"], "--top-k: must be a whole number >= 1. Received '0'"),
    (["predict", "m", "i.jpg", "--batch-size", "0"], "--batch-size: must be a whole number >= 1"),
    (["predict", "m", "i.jpg", "--threads", "0"], "--threads: must be a whole number >= 1"),
    (["predict", "m", "i.jpg", "--input-range", "abc"],
     "--input-range: must be LOW,HIGH with LOW < HIGH, e.g. -1,1 or 0,255. Received 'abc'"),
    (["export", "run", "--input-range", "1,0"],
     "--input-range: must be LOW,HIGH with LOW < HIGH, e.g. -1,1 or 0,255. Received '1,0'"),
    (["export", "run", "--input-range", "abc"], "--input-range: must be LOW,HIGH"),
    (["export", "run", "--input-range=0,nan"], "--input-range: must be LOW,HIGH"),
    (["export", "run", "--calibration-size", "0"], "--calibration-size: must be a whole number >= 1"),
    (["benchmark", "v1-0.25-32", "--runs", "0"], "--runs: must be a whole number >= 1. Received '0'"),
    (["benchmark", "v1-0.25-32", "--warmup", "-1"], "--warmup: must be a whole number >= 0"),
    (["benchmark", "v1-0.25-32", "--batch", "0"], "--batch: must be a whole number >= 1"),
    (["profile", "v1-0.25-32", "--classes", "0"], "--classes: must be a whole number >= 1"),
    (["benchmark", "v1-0.25-32", "--threads", "0"],
     "--threads: must be comma-separated whole numbers >= 1, e.g. 1,2. Received '0'"),
    (["benchmark", "v1-0.25-32", "--threads", "1,-2"], "--threads: must be comma-separated whole numbers"),
    (["benchmark", "v1-0.25-32", "--threads", "1,,2"], "--threads: must be comma-separated whole numbers"),
    (["benchmark", "v1-0.25-32", "--threads", ""], "--threads: must be comma-separated whole numbers"),
    (["benchmark", "v1-0.25-32", "--threads", "two"],
     "--threads: must be comma-separated whole numbers >= 1, e.g. 1,2. Received 'two'"),
    (["compare", "v1-0.25-32", "--threads", "1.5"],
     "--threads: must be comma-separated whole numbers >= 1, e.g. 1,2. Received '1.5'"),
    (["compare", "v1-0.25-32", "--threads", "1,0"], "--threads: must be comma-separated whole numbers"),
]


@pytest.mark.parametrize("argv, fragment", _JUNK, ids=[" ".join(a) for a, _ in _JUNK])
def test_junk_numbers_are_refused_when_parsed(argv, fragment, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # were one accepted, its run would write here
    assert _run(argv) == 2
    err = capsys.readouterr().err
    assert f"mobilenets {argv[0]}: error: argument {fragment}" in err
    assert err.count("\n") == 1 and "Traceback" not in err


def test_the_edges_of_each_rule_are_accepted():
    parse = build_parser().parse_args
    a = parse(["retrain", "d", "--epochs", "1", "--dropout", "0", "--label-smoothing", "0.99",
               "--fine-tune", "0", "--seed", "0", "--weight-decay", "0", "--validation-percent", "0",
               "--test-percent", "99.5", "--learning-rate", "1e-9", "--random-crop", "0"])
    assert (a.epochs, a.dropout, a.label_smoothing, a.fine_tune, a.seed) == (1, 0.0, 0.99, 0, 0)
    assert (a.validation_percent, a.test_percent, a.learning_rate) == (0.0, 99.5, 1e-9)
    assert parse(["train", "d", "--low-res", "0", "--low-res-fraction", "0.5"]).low_res == 0
    assert parse(["benchmark", "m", "--warmup", "0"]).warmup == 0
    assert parse(["benchmark", "m"]).threads == (1,)
    assert parse(["benchmark", "m", "--threads", "2, 1,2"]).threads == (2, 1)
    assert parse(["compare", "v1-0.25-32", "--threads", "4"]).threads == (4,)
    assert parse(["predict", "m", "i.jpg", "--input-range=-1,1"]).input_range == "-1,1"
    assert parse(["export", "run", "--input-range", "0,255", "--max-drop", "0"]).input_range == "0,255"


def test_percents_that_leave_no_training_data_are_refused(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["retrain", "digits", "--validation-percent", "60", "--test-percent", "40"]) == 2
    err = capsys.readouterr().err
    assert err == ("mobilenets retrain: error: --validation-percent and --test-percent must sum to "
                   "less than 100. Received 60 + 40\n")


# A file where a folder goes, a folder where a file goes: one line, exit 2, nothing written.
_WRONG_KIND = [
    (["retrain", "digits", "--runs-dir", "{file}"], "--runs-dir: must be a folder, not a file"),
    (["train", "digits", "--runs-dir", "{file}"], "--runs-dir: must be a folder, not a file"),
    (["demo", "--runs-dir", "{file}"], "--runs-dir: must be a folder, not a file"),
    (["retrain", "digits", "--runs-dir", "{file}/runs"],
     "--runs-dir: must be a folder, but {file} is a file"),
    (["retrain", "digits", "--cache-dir", "{file}"], "--cache-dir: must be a folder, not a file"),
    (["train", "digits", "--cache-dir", "{file}/cache"],
     "--cache-dir: must be a folder, but {file} is a file"),
    (["compare", "v1-0.25-32", "--cache-dir", "{file}"], "--cache-dir: must be a folder, not a file"),
    (["compare", "v1-0.25-32", "--out", "{file}"], "--out: must be a folder, not a file"),
    (["evaluate", "run", "--out", "{file}"], "--out: must be a folder, not a file"),
    (["export", "run", "--out", "{file}/export"], "--out: must be a folder, but {file} is a file"),
    (["benchmark", "v1-0.25-32", "--out", "{dir}"], "--out: must be a file, not a folder"),
    (["benchmark", "v1-0.25-32", "--out", "{file}/bench.csv"],
     "--out: must be a file, but {file} is a file, not a folder"),
]


@pytest.mark.parametrize("argv, fragment", _WRONG_KIND, ids=[" ".join(a) for a, _ in _WRONG_KIND])
def test_paths_of_the_wrong_kind_are_refused(argv, fragment, tmp_path, monkeypatch, capsys):
    (tmp_path / "dir").mkdir()
    file = tmp_path / "file"
    file.write_text("keep me")
    names = {"file": file, "dir": tmp_path / "dir"}
    monkeypatch.chdir(tmp_path / "dir")
    assert _run([a.format(**names) for a in argv]) == 2
    err = capsys.readouterr().err
    assert f"argument {fragment.format(**names)}" in err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert file.read_text() == "keep me" and sorted(p.name for p in tmp_path.iterdir()) == ["dir", "file"]
    assert not any((tmp_path / "dir").iterdir())


def test_a_default_folder_that_is_a_file_is_refused(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs").write_text("not a folder")
    assert _run(["retrain", "digits"]) == 2
    assert "argument --runs-dir: must be a folder, not a file. Received 'runs'" in capsys.readouterr().err


def _help(command: str, capsys) -> str:
    assert _run([command, "--help"]) == 0
    return capsys.readouterr().out


def _options(text: str) -> dict[str, str]:
    """`--flag` -> its help entry (first line with the metavar, continuation lines joined)."""
    options, flag = {}, None
    for line in text.split("\n"):
        m = re.match(r"^  (-\w, )?(--[\w-]+)", line)
        if m:
            flag = m.group(2)
            options[flag] = line
        elif flag and line.startswith("      "):
            options[flag] += " " + line.strip()
        else:
            flag = None
    return options


_COMMANDS = ["zoo", "profile", "retrain", "train", "evaluate", "export", "predict", "benchmark",
             "compare", "demo"]


@pytest.mark.parametrize("command", _COMMANDS)
def test_help_shows_every_default(command, capsys):
    text = _help(command, capsys)
    options = _options(text)
    assert options, text
    for flag, entry in options.items():
        takes_value = re.match(rf"^  (-\w, )?{flag} [A-Z{{]", entry)
        if takes_value:  # a switch is off unless given; everything else says what it is without
            assert "(default: " in entry, entry
    for noise in ("default: None", "default: False", "default: []", "default: ()"):
        assert noise not in text


@pytest.mark.parametrize("command", ["retrain", "train"])
def test_help_explains_augmentation(command, capsys):
    from mobilenets.augment import PRESETS

    options = _options(_help(command, capsys))
    for flag in ("--flip-left-right", "--random-crop", "--random-scale", "--random-brightness", "--shift"):
        what = re.sub(rf"^\s*{flag}( [A-Z]+)?\s+", "", options[flag]).split("(default: ")[0]
        assert len(what.split()) >= 5, options[flag]  # a sentence on what it does
    for name in PRESETS:
        assert f"{name}: " in options["--augment"]
    assert "retrain: flip,crop=10,scale=10,brightness=10" in options["--augment"]
    assert "cifar: flip,pad_crop=4" in options["--augment"]


def test_retrain_help_warns_that_augmentation_turns_the_cache_off(capsys):
    text = " ".join(_help("retrain", capsys).split())
    assert "Any of these turns the feature cache off" in text and "16x the time" in text
    assert re.search(r"--fine-tune N .*try \d+", _options(_help("retrain", capsys))["--fine-tune"])


def test_help_defaults_are_the_recipes(capsys):
    retrain, train = _options(_help("retrain", capsys)), _options(_help("train", capsys))
    assert "(default: 0.001)" in retrain["--learning-rate"] and "(default: 0.1)" in train["--learning-rate"]
    assert "(default: adam)" in retrain["--optimizer"] and "(default: sgd)" in train["--optimizer"]
    assert "(default: off)" in retrain["--flip-left-right"] and "(default: on)" in train["--flip-left-right"]
    assert "(default: none)" in retrain["--augment"] and "(default: flip,pad_crop=4)" in train["--augment"]


@pytest.fixture(scope="module")
def three_class_run(tmp_path_factory):
    """A run of 3 classes (untrained: these tests are about what is printed)."""
    from _tiny import make_folder, make_run

    root = tmp_path_factory.mktemp("run3")
    data = make_folder(root / "data", per_class=6, size=32)
    return make_run(root / "run", data)


def test_top_k_is_shown_only_when_k_is_below_the_classes(three_class_run, tmp_path, capsys):
    run = three_class_run
    assert main(["evaluate", str(run), "--out", str(tmp_path / "a")]) == 0  # k 5, 3 classes
    line = capsys.readouterr().out.strip().splitlines()[-1]
    assert line.startswith("accuracy ") and "top-" not in line
    assert main(["evaluate", str(run), "--top-k", "2", "--out", str(tmp_path / "b")]) == 0
    assert "  top-2 " in capsys.readouterr().out.strip().splitlines()[-1]
    assert main(["evaluate", str(run), "--json", "--out", str(tmp_path / "c")]) == 0
    r = json.loads(capsys.readouterr().out)
    assert (r["k"], r["top_k_accuracy"]) == (3, None)  # the field stays, null: 1.0 by construction
    assert main(["evaluate", str(run), "--json", "--top-k", "2", "--out", str(tmp_path / "d")]) == 0
    r = json.loads(capsys.readouterr().out)
    assert r["k"] == 2 and 0 <= r["top_k_accuracy"] <= 1


@pytest.mark.parametrize("name, hint", [("model.tflite", "export's parity report scores a .tflite"),
                                        ("model.onnx", ""), ("model.txt", "")])
def test_evaluate_says_which_files_it_takes(name, hint, tmp_path, capsys):
    (tmp_path / name).write_bytes(b"not a model")
    assert _run(["evaluate", str(tmp_path / name), str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("mobilenets evaluate: error: evaluate takes a run directory or a .keras or .h5 "
                          "model file") and hint in err and f"Received {tmp_path / name}" in err
    assert ".keras, .h5 or .tflite" not in err
    assert err.count("\n") == 1 and "Traceback" not in err


def _cli_without_tensorflow(argv, tmp_path, broken: bool = False):
    """`mobilenets ARGV` in a fresh process where TensorFlow is not installed, or installed broken."""
    if broken:
        (tmp_path / "tensorflow").mkdir()
        (tmp_path / "tensorflow" / "__init__.py").write_text(
            'raise ImportError("libtensorflow_framework.so.2: cannot open shared object file")')
        code = "import sys; from mobilenets.cli import main; sys.exit(main(sys.argv[1:]))"
    else:
        code = ("import sys; sys.modules['tensorflow'] = None; "  # what `import tensorflow` sees when absent
                "from mobilenets.cli import main; sys.exit(main(sys.argv[1:]))")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), *sys.path])}
    return subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True,
                          env=env, cwd=tmp_path)


def test_without_tensorflow_tflite_files_still_work_and_the_rest_says_why_in_one_line(shared, tmp_path):
    models = shared / "models"
    r = _cli_without_tensorflow(["predict", str(models / "mobilenet_v1_0.25_128_quant.tflite"),
                                 str(models / "parrot.jpg"), "--top-k", "1",
                                 "--labels", str(models / "imagenet_labels.txt")], tmp_path)
    assert r.returncode == 0 and "macaw" in r.stdout and r.stderr == ""
    r = _cli_without_tensorflow(["profile", "v1-0.25-32"], tmp_path)
    assert r.returncode == 2
    assert r.stderr == ("mobilenets profile: error: this needs TensorFlow, which is not installed (only "
                        ".tflite files can be used without it; pip install 'tensorflow-cpu==2.21.*')\n")


def test_a_tensorflow_that_does_not_import_is_a_one_line_error(tmp_path):
    r = _cli_without_tensorflow(["profile", "v1-0.25-32"], tmp_path, broken=True)
    assert r.returncode == 2
    assert r.stderr == ("mobilenets profile: error: TensorFlow is installed but does not import: "
                        "libtensorflow_framework.so.2: cannot open shared object file "
                        "(reinstall it: pip install 'tensorflow-cpu==2.21.*')\n")


def test_help_and_parsing_load_no_tensorflow():
    # The library loads when a command runs: `mobilenets --help` answers at once.
    code = ("import sys; from mobilenets.cli import build_parser, main\n"
            "for argv in (['--help'], ['zoo', '--help'], ['compare', '--help'], ['serve', '--help']):\n"
            "    try: main(argv)\n"
            "    except SystemExit: pass\n"
            "build_parser().parse_args(['retrain', 'digits', '--epochs', '3'])\n"
            "print(sorted(m for m in ('tensorflow', 'keras') if m in sys.modules), file=sys.stderr)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert r.stderr == "[]\n"
