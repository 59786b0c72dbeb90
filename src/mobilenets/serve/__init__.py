"""A local web page to try a model: drop, paste or snap a picture, see the top classes.

    mobilenets serve runs/pets                   # http://127.0.0.1:8000/
    mobilenets serve model_int8.tflite --port 0  # any free port

    with Server("runs/pets", port=0) as server:  # in Python, in a background thread
        requests.post(server.url + "api/predict", files={"image": open("cat.jpg", "rb")}).json()

The page (static/: plain HTML, JavaScript and CSS, nothing from the network)
classifies uploads through a small JSON API with the same decoding, labels
and top-k as `mobilenets predict`; for a run it switches between the Keras
model and every exported file, shows where they disagree, and shows what
`mobilenets evaluate` wrote. Built on Starlette and uvicorn.

The package, one module per concern, each importing only those above it here:

    registry   the models by name, each loaded once; an upload classified; a run's evaluations
    app        the Starlette app: the page, static files, the JSON API, bounds and errors
    server     `Server`: the bound socket, uvicorn, a clean Ctrl-C
"""

from mobilenets.serve.registry import MAX_PIXELS, Registry
from mobilenets.serve.app import MAX_UPLOAD_BYTES, QUEUE, STATIC, create_app
from mobilenets.serve.server import Server

__all__ = ["MAX_PIXELS", "MAX_UPLOAD_BYTES", "QUEUE", "STATIC", "Registry", "Server", "create_app"]
