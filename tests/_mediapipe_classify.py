"""Classify images with MediaPipe Tasks' ImageClassifier (run by .venv-mediapipe's python).

    echo '{"models": ["model.tflite"], "images": ["a.png"]}' | .venv-mediapipe/bin/python tests/_mediapipe_classify.py

Reads `{"models": [...], "images": [...]}` on stdin and prints one JSON
object, `{model: [{"path", "index", "label", "score"}, ...]}`: the top
category of each image as MediaPipe reads the model's own metadata (labels,
normalization), or `{model: {"error": message}}` for a model MediaPipe
refuses. It imports nothing from the project: it is the client nobody
here wrote, fed our files. One process for every model, since importing
MediaPipe takes seconds.
"""

import json
import sys


def classify(model: str, images: list[str]) -> list[dict]:
    import mediapipe as mp
    from mediapipe.tasks.python import BaseOptions, vision

    options = vision.ImageClassifierOptions(base_options=BaseOptions(model_asset_path=model),
                                            max_results=1)
    out = []
    with vision.ImageClassifier.create_from_options(options) as classifier:
        for path in images:
            best = classifier.classify(mp.Image.create_from_file(path)).classifications[0].categories[0]
            out.append({"path": path, "index": best.index, "label": best.category_name,
                        "score": round(float(best.score), 5)})
    return out


def main() -> int:
    job = json.load(sys.stdin)
    out = {}
    for model in job["models"]:
        try:
            out[model] = classify(model, job["images"])
        except Exception as e:  # noqa: BLE001 - what MediaPipe says about the file is the result
            out[model] = {"error": f"{type(e).__name__}: {e}"}
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
