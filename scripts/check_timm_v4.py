"""Check our V4 against timm itself: the same checkpoint, the same images, both models' logits.

    python3 -m venv /tmp/timm-venv && /tmp/timm-venv/bin/pip install torch timm safetensors   # ~3 GB, not a project dependency
    /tmp/timm-venv/bin/python scripts/check_timm_v4.py make /tmp/timm-check          # timm: checkpoints, images, logits
    PYTHONPATH=src .venv/bin/python scripts/check_timm_v4.py compare /tmp/timm-check  # ours: the same, printed side by side

`make` builds each timm MobileNetV4 (pretrained=False, then random BatchNorm
statistics so no BatchNorm is the identity), saves its state_dict as
safetensors with the config.json timm's own hub writer gives it, and
records timm's logits on random inputs: [-1, 1] tensors, and raw pixels
normalized with the checkpoint's mean and std. `compare` loads each
checkpoint through `build_model(..., weights=PATH)` and prints the largest
logit difference, absolute and as a share of the largest logit.
"""

import sys
from pathlib import Path

MODELS = {"mobilenetv4_conv_small.e2400_r224_in1k": "v4-conv-s-224",
          "mobilenetv4_conv_medium.e500_r224_in1k": "v4-conv-m-224",
          "mobilenetv4_conv_large.e500_r256_in1k": "v4-conv-l-256"}


def make(out: Path) -> None:
    import numpy as np
    import timm
    import torch
    from safetensors.torch import save_file
    from timm.models._hub import save_config_for_hf

    torch.manual_seed(0)
    for name, spec in MODELS.items():
        folder = out / name
        folder.mkdir(parents=True, exist_ok=True)
        model = timm.create_model(name, pretrained=False)
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.normal_(0, 0.1)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.data.uniform_(0.5, 1.5)
                m.bias.data.normal_(0, 0.1)
        model.eval()
        save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(folder / "model.safetensors"))
        save_config_for_hf(model, folder / "config.json")
        cfg = timm.data.resolve_data_config({}, model=model)
        size = int(spec.rsplit("-", 1)[1])
        rng = np.random.default_rng(0)
        x = rng.uniform(-1, 1, (2, size, size, 3)).astype(np.float32)
        pixels = rng.integers(0, 256, (2, size, size, 3)).astype(np.float32)
        normalized = ((pixels / 255 - np.array(cfg["mean"])) / np.array(cfg["std"])).astype(np.float32)
        with torch.no_grad():
            for tag, images in (("x", x), ("pixels", normalized)):
                logits = model(torch.from_numpy(images.transpose(0, 3, 1, 2).copy())).numpy()
                np.save(folder / f"{tag}_logits.npy", logits)
        np.save(folder / "x.npy", x)
        np.save(folder / "pixels.npy", pixels)
        print(f"{name}: {sum(v.numel() for v in model.state_dict().values()):,} values -> {folder}")


def compare(out: Path) -> None:
    import keras
    import numpy as np

    from mobilenets.models import build_model

    for name, spec in MODELS.items():
        folder = out / name
        for tag, preprocessing in (("x", False), ("pixels", True)):
            model = build_model(spec, classes=1000, weights=folder / "model.safetensors", head="keras",
                                preprocessing=preprocessing)
            feats = keras.Model(model.input, model.get_layer("flatten").output)(
                np.load(folder / f"{tag}.npy"), training=False).numpy()
            kernel, bias = model.get_layer("predictions").get_weights()
            ours, theirs = feats @ kernel + bias, np.load(folder / f"{tag}_logits.npy")
            diff = float(np.abs(ours - theirs).max())
            print(f"{name} as {spec}, {'pixels + config.json' if preprocessing else '[-1, 1] input'}: "
                  f"max |diff| {diff:.3g} of max |logit| {float(np.abs(theirs).max()):.3g} "
                  f"({diff / float(np.abs(theirs).max()):.1e}); top-1 agrees: "
                  f"{bool((ours.argmax(1) == theirs.argmax(1)).all())}")


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] not in ("make", "compare"):
        sys.exit("usage: check_timm_v4.py make|compare FOLDER")
    (make if sys.argv[1] == "make" else compare)(Path(sys.argv[2]))
