"""The web app: the page, its static files, and the JSON API it calls.

    app = create_app(Registry("runs/pets"), max_upload_bytes=20 * 2**20, queue=16)

    GET  /                  the page (static/index.html)
    GET  /static/<file>     its script and style, from the package's static/ folder only
    GET  /api/models        {"models": [{"name", "kind", "bytes", "default", ...}], "default", "target"}
    POST /api/predict       multipart `image` (+ optional `model`, `top_k`) ->
                            {"predictions": [{"label", "index", "score"}], "model", "ms", "decode_ms"}
    GET  /api/evaluations   {"evaluations": [...]}: metrics, confusion matrix, misclassified gallery

Every error is a 4xx/5xx with a one-line JSON body `{"error": "..."}`: 400 for
an empty upload, a missing field or a bad `top_k`, 404 for an unknown model
or route, 413 for an upload over the size bound or an image over the pixel
bound (a decompression bomb), 415 for a file that is not an image, 503 when
`queue` predictions are already waiting. Decoding and inference run in worker
threads, so the server keeps answering while a model works.
"""

from __future__ import annotations

from pathlib import Path

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from mobilenets.data import BadImage, ImageTooLarge
from mobilenets.env import first_line
from mobilenets.errors import MobilenetsError
from mobilenets.results import one_line
from mobilenets.serve.registry import Registry

STATIC = Path(__file__).resolve().parent / "static"
MAX_UPLOAD_BYTES = 20 * 2**20
QUEUE = 16
# A refused upload's body is still read (and dropped) up to this much, so the client, still
# sending, gets the 413 instead of a reset connection.
_DRAIN_BYTES = 64 * 2**20


def create_app(registry: Registry, max_upload_bytes: int = MAX_UPLOAD_BYTES, queue: int = QUEUE) -> Starlette:
    """The ASGI app serving `registry`'s models.

    Args:
        registry: the models (and evaluations) to offer.
        max_upload_bytes: the largest request body `POST /api/predict` takes.
        queue: predictions in progress or waiting at most; more get 503.
    """
    waiting = 0

    async def index(request: Request):
        return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})

    async def models(request: Request):
        return JSONResponse({"models": registry.models(), "default": registry.default,
                             "target": str(registry.target)})

    async def evaluations(request: Request):
        return JSONResponse({"evaluations": await run_in_threadpool(registry.evaluations)})

    async def predict(request: Request):
        nonlocal waiting
        if waiting >= queue:
            raise HTTPException(503, f"busy: {waiting} predictions are waiting; try again shortly")
        waiting += 1
        try:
            body = await _bounded_body(request, max_upload_bytes)
            form = await _replayed(request, body).form(max_files=1, max_fields=8)
            upload = form.get("image")
            if not isinstance(upload, UploadFile):
                raise HTTPException(400, "no image: send the file as the multipart field 'image'")
            data = await upload.read()
            if not data:
                raise HTTPException(400, "empty upload (0 bytes)")
            field = form.get("top_k") or request.query_params.get("top_k") or "5"
            try:
                k = int(str(field))
            except ValueError:
                raise HTTPException(400, f"top_k must be a whole number >= 1. Received {str(field)!r}") from None
            model = str(form.get("model") or request.query_params.get("model") or "") or None
            if model is not None and model not in registry.names:
                raise HTTPException(404, f"no model {model!r} here; choose one of {', '.join(registry.names)}")
            try:
                result = await run_in_threadpool(registry.predict, data, model, k)
            except ImageTooLarge as e:
                raise HTTPException(413, f"{upload.filename or 'upload'}: {e.reason}") from None
            except BadImage as e:
                raise HTTPException(415, f"{upload.filename or 'upload'}: {e.reason}") from None
            except MobilenetsError as e:
                raise HTTPException(400, str(e)) from None
            return JSONResponse(result)
        finally:
            waiting -= 1

    async def http_error(request: Request, exc: HTTPException):
        detail = exc.detail if exc.status_code != 404 or exc.detail != "Not Found" else \
            f"not found: {request.url.path}"
        return JSONResponse({"error": one_line(str(detail))}, status_code=exc.status_code, headers=exc.headers)

    async def server_error(request: Request, exc: Exception):
        return JSONResponse({"error": f"internal error: {type(exc).__name__}: {one_line(first_line(exc))}"},
                            status_code=500)

    routes = [
        Route("/", index),
        Route("/api/models", models),
        Route("/api/predict", predict, methods=["POST"]),
        Route("/api/evaluations", evaluations),
        # StaticFiles resolves every path and refuses one that leaves the folder (or follows a link out).
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ]
    return Starlette(routes=routes, exception_handlers={HTTPException: http_error, Exception: server_error})


async def _bounded_body(request: Request, limit: int) -> bytes:
    """The request body, or a 413 once it passes `limit` bytes (the rest read and dropped)."""
    declared = request.headers.get("content-length", "")
    too_big = HTTPException(413, f"upload too large: over the limit of {limit / 2**20:g} MB")
    if declared.isdigit() and int(declared) > max(limit, _DRAIN_BYTES):
        raise too_big
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size <= limit:
            chunks.append(chunk)
        elif size > _DRAIN_BYTES:
            break
    if size > limit:
        raise too_big
    return b"".join(chunks)


def _replayed(request: Request, body: bytes) -> Request:
    """A request that reads `body` again: the form parser gets the bytes already counted."""
    sent = False

    async def receive():
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return Request(request.scope, receive)
