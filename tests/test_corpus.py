"""A corpus of bad inputs drives every command: exit 2, one line on stderr, nothing written.

    pytest tests/test_corpus.py -q

The corpus is generated: a good two-class folder (with greyscale, RGBA,
16-bit and EXIF-rotated images in it), an empty folder, a one-class folder,
folders of corrupt, truncated and non-image files, model files that are
text, folders named like files and files named like folders, run folders
whose config.json is broken. Every case runs `mobilenets.cli.main` in this
process, from an empty working folder, with HOME and the caches inside the
temporary folder.
"""

import json
import os
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mobilenets.cli import build_parser, main

REPO = Path(__file__).resolve().parents[1]
# What TensorFlow and absl may print on their own (C++ log lines), not the CLI.
NOISE = re.compile(r"^(WARNING: All log messages before absl|I0000|W0000|E0000|\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+: [IWE] )")


def _jpeg(path: Path, rgb=(200, 30, 30), size=24, **save):
    path.parent.mkdir(parents=True, exist_ok=True)
    px = np.clip(np.array(rgb) + np.random.default_rng(len(str(path))).normal(0, 30, (size, size, 3)), 0, 255)
    Image.fromarray(px.astype("uint8")).save(path, **save)
    return path


def _make_corpus(root: Path) -> Path:
    good = root / "good"
    for name, rgb in (("red", (220, 30, 30)), ("blue", (30, 40, 220))):
        for i in range(4):
            _jpeg(good / name / f"{name}_{i}.jpg", rgb)
    # Odd but valid images the loader must take.
    Image.new("L", (24, 24), 128).save(good / "red" / "grey.png")
    Image.new("RGBA", (24, 24), (220, 30, 30, 100)).save(good / "red" / "rgba.png")
    Image.fromarray(np.full((24, 24), 40000, np.uint16)).save(good / "blue" / "sixteen.png")
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90
    _jpeg(good / "blue" / "rotated.jpg", (30, 40, 220), exif=exif)

    (root / "empty").mkdir()
    _jpeg(root / "single" / "only" / "a.jpg")
    whole = (good / "red" / "red_0.jpg").read_bytes()
    for cls in ("x", "y"):  # class folders holding nothing usable
        bad = root / "corrupt" / cls
        bad.mkdir(parents=True)
        (bad / "truncated.jpg").write_bytes(whole[: len(whole) // 3])
        (bad / "text.jpg").write_text("not an image\n")
        (bad / "zero.png").write_bytes(b"")
        (bad / "garbage.png").write_bytes(b"\x89PNG\r\n\x1a\n" + os.urandom(64))
    (root / "notes.txt").write_text("a file where a folder goes\n")
    (root / "fake.tar.gz").write_bytes(b"not a tar archive")
    models = root / "models"
    models.mkdir()
    for name in ("model.tflite", "model.keras", "model.h5"):
        (models / name).write_text("a text file named like a model\n")
    (models / "empty.tflite").write_bytes(b"")
    (models / "folder.tflite").mkdir()  # a folder where a file goes
    (models / "labels_dir").mkdir()
    # Run folders: none, broken and wrong config.json, a text model.keras.
    (root / "runs" / "no_config").mkdir(parents=True)
    (root / "runs" / "broken_config").mkdir()
    (root / "runs" / "broken_config" / "config.json").write_text('{"spec": "v1-0.25-32", ')
    (root / "runs" / "list_config").mkdir()
    (root / "runs" / "list_config" / "config.json").write_text("[1, 2, 3]\n")
    text_run = root / "runs" / "text_model"
    text_run.mkdir()
    (text_run / "config.json").write_text(json.dumps({"spec": "v1-0.25-32", "data": str(good),
                                                      "classes": ["blue", "red"]}))
    (text_run / "model.keras").write_text("not a zip\n")
    (text_run / "labels.txt").write_text("blue\nred\n")
    return root


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return _make_corpus(tmp_path_factory.mktemp("corpus"))


def _tree(root: Path, skip=("__pycache__", ".pytest_cache", ".git")) -> dict:
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if d not in skip]
        for name in filenames + [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]:
            p = os.path.join(dirpath, name)
            st = os.lstat(p)
            out[os.path.relpath(p, root)] = (st.st_size, st.st_mtime_ns)
        for d in dirnames:
            out[os.path.relpath(os.path.join(dirpath, d), root) + "/"] = None
    return out


@pytest.fixture(scope="module")
def repo_before():
    return _tree(REPO)


# (argv, a fragment of the one error line). {c} is the corpus, {m} its models/, {r} its runs/.
CASES = [
    # profile
    (["profile", "v9-1.00-224"], "not a model spec"),
    (["profile", "{m}/model.tflite"], ""),
    (["profile", "{m}/model.keras"], ""),
    (["profile", "{m}/model.h5"], ""),
    (["profile", "{m}/empty.tflite"], ""),
    (["profile", "{m}/folder.tflite"], ""),
    (["profile", "{c}/nowhere.tflite"], "no such model file"),
    (["profile", "{c}/notes.txt"], ""),
    # zoo
    (["zoo", "--filter", "v7-*"], "no registry variant matches"),
    (["zoo", "--version", "v9"], "invalid choice"),
    # retrain / train: bad data of every kind
    (["retrain", "{c}/empty", "--arch", "v1-0.25-32"], "no class folders"),
    (["retrain", "{c}/single", "--arch", "v1-0.25-32"], "need at least 2 classes"),
    (["train", "{c}/corrupt", "--arch", "v1-0.25-32"], "split of {c}/corrupt is empty"),
    (["retrain", "{c}/notes.txt", "--arch", "v1-0.25-32"], ""),
    (["retrain", "{c}/nowhere", "--arch", "v1-0.25-32"], ""),
    (["retrain", "{c}/fake.tar.gz", "--arch", "v1-0.25-32"], ""),
    (["retrain", "cifar10:{c}/nowhere.tar.gz", "--arch", "v1-0.25-32"], ""),
    (["retrain", "{c}/good", "--arch", "v1-9.00-224"], ""),
    (["retrain", "{c}/good", "--arch", "v1-0.25-32", "--preset", "nonsense"], ""),
    (["retrain", "{c}/good", "--arch", "v1-0.25-32", "--weights", "{m}/model.h5"], ""),
    (["retrain", "{c}/good", "--arch", "v1-0.25-32", "--weights", "{c}/nowhere.h5"], ""),
    (["retrain", "{c}/good", "--arch", "v1-0.25-32", "--augment", "wobble=3"], "unknown augmentation"),
    (["retrain", "{c}/good", "--runs-dir", "{c}/notes.txt"], "must be a folder, not a file"),
    (["retrain", "{c}/good", "--name", "../out"], "--name takes a plain folder name"),
    (["retrain", "--resume", "{c}/nowhere"], ""),
    (["retrain", "--resume", "{r}/no_config"], "no config.json"),
    (["retrain", "--resume", "{r}/broken_config"], ""),
    (["retrain", "--resume", "{r}/list_config"], ""),
    (["retrain", "--resume", "{c}/notes.txt"], ""),
    (["retrain"], "give DATA"),
    (["train", "{c}/empty", "--arch", "v1-0.25-32"], "no class folders"),
    (["train", "{c}/good", "--arch", "v1-0.25-32", "--init", "{m}/model.keras"], ""),
    (["train", "--resume", "{r}/broken_config"], ""),
    (["train", "digits", "--stem-stride", "3"], "invalid choice"),
    # evaluate
    (["evaluate", "{c}/nowhere"], ""),
    (["evaluate", "{r}/no_config"], "no config.json"),
    (["evaluate", "{r}/broken_config"], ""),
    (["evaluate", "{r}/list_config"], ""),
    (["evaluate", "{r}/text_model"], ""),
    (["evaluate", "{m}/model.keras", "{c}/good"], ""),
    (["evaluate", "{m}/model.h5", "{c}/good"], ""),
    (["evaluate", "{m}/model.tflite", "{c}/good"], ""),
    (["evaluate", "{m}/folder.tflite"], ""),
    (["evaluate", "{c}/notes.txt", "{c}/good"], ""),
    # export
    (["export", "{c}/nowhere"], ""),
    (["export", "{r}/no_config"], ""),
    (["export", "{r}/broken_config"], ""),
    (["export", "{r}/text_model", "--quantize", "none"], ""),
    (["export", "{m}/model.keras"], ""),
    (["export", "{m}/model.h5"], ""),
    (["export", "{m}/model.tflite"], ""),
    (["export", "{c}/notes.txt"], ""),
    (["export", "{r}/text_model", "--quantize", "int4"], ""),
    (["export", "{r}/text_model", "--format", "pdf"], ""),
    # predict
    (["predict", "{m}/model.tflite", "{c}/good/red/red_0.jpg"], ""),
    (["predict", "{m}/empty.tflite", "{c}/good/red/red_0.jpg"], ""),
    (["predict", "{m}/model.keras", "{c}/good/red/red_0.jpg"], ""),
    (["predict", "{m}/folder.tflite", "{c}/good/red/red_0.jpg"], ""),
    (["predict", "{c}/nowhere.tflite", "{c}/good/red/red_0.jpg"], ""),
    (["predict", "{r}/no_config", "{c}/good/red/red_0.jpg"], ""),
    (["predict", "{r}/text_model", "{c}/good/red/red_0.jpg"], ""),
    (["predict", "{c}/notes.txt", "{c}/good/red/red_0.jpg"], ""),
    (["predict", "{m}/model.tflite"], "the following arguments are required"),
    # benchmark
    (["benchmark", "{m}/model.tflite"], ""),
    (["benchmark", "{m}/empty.tflite"], ""),
    (["benchmark", "{m}/model.keras"], ""),
    (["benchmark", "{m}/folder.tflite"], ""),
    (["benchmark", "{c}/nowhere.tflite"], ""),
    (["benchmark", "{c}/notes.txt"], ""),
    (["benchmark", "v9-1.00-224"], ""),
    (["benchmark", "v1-0.25-32", "--threads", "two"], ""),
    (["benchmark", "v1-0.25-32", "--threads", "0"], ""),
    (["benchmark", "v1-0.25-32", "--out", "{c}/notes.txt/b.csv"], "is a file, not a folder"),
    # serve: refused before the port is bound
    (["serve", "{m}/model.tflite"], ""),
    (["serve", "{m}/empty.tflite"], ""),
    (["serve", "{m}/model.keras"], ""),
    (["serve", "{c}/nowhere.tflite"], "no such model file"),
    (["serve", "{r}/no_config"], "not a run directory"),
    (["serve", "{r}/text_model"], ""),
    (["serve", "{c}/notes.txt"], "unsupported model file"),
    (["serve", "{r}/text_model", "--port", "70000"], "--port: must be a port number"),
    (["serve", "{r}/text_model", "--max-upload-mb", "0"], "--max-upload-mb: must be a number > 0"),
    # compare
    (["compare"], "give candidates"),
    (["compare", "v9-1.00-224"], ""),
    (["compare", "--grid", "v1:abc:224"], "bad --grid"),
    (["compare", "v1-0.25-32", "--threads", "x"], ""),
    (["compare", "v1-0.25-32", "--data", "{c}/empty"], "no class folders"),
    (["compare", "v1-0.25-32", "--data", "{c}/notes.txt"], ""),
    (["compare", "v1-0.25-32", "--budget-threads", "4"], ""),
    (["compare", "v1-0.25-32", "--out", "{c}/notes.txt"], "must be a folder, not a file"),
    # demo
    (["demo", "--runs-dir", "{c}/notes.txt"], "must be a folder, not a file"),
    # no command, unknown command, unknown flag
    (["frobnicate"], "invalid choice"),
    (["zoo", "--no-such-flag"], "unrecognized arguments"),
]


def test_the_good_folder_is_good(corpus):
    """Its greyscale, RGBA, 16-bit and EXIF-rotated images decode: the errors below are the others'."""
    from mobilenets.data import open_dataset

    good = open_dataset(corpus / "good")
    good.verify()
    assert good.classes == ["blue", "red"] and good.skipped == []
    assert sum(good.split_sizes().values()) == 12


def test_every_command_is_in_the_corpus():
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    assert set(sub.choices) <= {argv[0] for argv, _ in CASES}


@pytest.mark.parametrize("argv, fragment", CASES, ids=[" ".join(a) for a, _ in CASES])
def test_bad_input_is_one_line_exit_2_and_writes_nothing(argv, fragment, corpus, repo_before, tmp_path,
                                                         monkeypatch, capfd):
    work, home = tmp_path / "work", tmp_path / "home"
    work.mkdir()
    home.mkdir()
    monkeypatch.chdir(work)
    for var in ("HOME", "KERAS_HOME", "XDG_CACHE_HOME", "MOBILENETS_CACHE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CACHE_HOME", str(home / ".cache"))
    monkeypatch.setenv("KERAS_HOME", str(home / ".keras"))
    before = _tree(corpus)
    argv = [a.format(c=corpus, m=corpus / "models", r=corpus / "runs") for a in argv]
    capfd.readouterr()
    try:
        code = main(argv)
    except SystemExit as e:
        code = e.code
    out, err = capfd.readouterr()
    lines = [line for line in err.splitlines() if line.strip() and not NOISE.match(line)]
    assert code == 2, (code, out[-500:], err[-2000:])
    assert "Traceback" not in err, err
    assert len(lines) == 1 and re.match(r"mobilenets( [a-z]+)?: error: ", lines[0]), err
    assert fragment.format(c=corpus) in lines[0]
    assert _tree(corpus) == before  # the inputs are untouched
    assert not any(work.iterdir()), sorted(os.listdir(work))  # a refused command makes nothing
    # HOME may gain settings (~/.keras, ~/.config/matplotlib) and caches (decoded images): it is
    # inside tmp_path; what must not happen is a write anywhere else (the repo: see the last test).


def test_nothing_was_written_in_the_repo(repo_before):
    after = _tree(REPO)
    assert sorted(after.keys() ^ repo_before.keys()) == []
