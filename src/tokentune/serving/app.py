"""The HTTP service: ``create_app`` builds a FastAPI app around a Tagger. The CLI runs it with uvicorn.

Endpoints: ``POST /predict``, ``GET /health``, ``GET /model``, the page at ``/`` (with ``/static``),
an offline API description at ``/docs`` and the OpenAPI document at ``/openapi.json`` (behind the
API key when there is one: it names the entity types). Run it with :func:`.server.run_server`, which
adds the slow-client timeouts that uvicorn lacks.
"""
from __future__ import annotations

import json
import logging
import os
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Optional

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException

from ..errors import ConfigError
from .microbatch import Closed, MicroBatcher, Overloaded
from .middleware import BearerAuthMiddleware, BodyTimeoutMiddleware, RequestLogMiddleware, ShutdownMiddleware
from .validation import ApiError, Limits, parse_request, read_body

log = logging.getLogger("tokentune.serving")
STATIC = Path(__file__).parent / "static"
RETRY_AFTER_S = 1  # a full queue drains in well under a second at the default limits


# -- schemas: they shape the OpenAPI document; the handlers build plain dicts --------------------
class PredictRequest(BaseModel):
    """Exactly one of the two fields."""

    texts: Optional[list[str]] = Field(None, description="texts to tag (at most --max-texts)",
                                       examples=[["Alice visited Paris.", "Acme hired Bob."]])
    text: Optional[str] = Field(None, description="one text to tag", examples=["Alice visited Paris."])
    min_score: Optional[float] = Field(None, ge=0, le=1, examples=[0.5],
                                       description="drop entities whose score is below this (0 to 1); "
                                                   "default: the server's --min-score (0 unless set)")


class EntityOut(BaseModel):
    label: str = Field(description="entity type, e.g. PER")
    start: int = Field(description="offset of the first character in the text (Unicode code points)")
    end: int = Field(description="offset after the last character (end-exclusive)")
    text: str = Field(description="text[start:end]")
    score: float = Field(description="mean probability of the entity's words' labels")


class ResultOut(BaseModel):
    text: str
    entities: list[EntityOut]


class PredictResponse(BaseModel):
    results: list[ResultOut] = Field(description="one per input text, in order")


class ErrorOut(BaseModel):
    detail: str = Field(description="what was expected, what was found, and the fix")
    limit: Optional[str] = Field(None, description="the limit that was crossed, e.g. max_texts")
    value: Optional[float] = Field(None, description="that limit's value")


ERRORS = {
    401: {"model": ErrorOut, "description": "missing or wrong API key (only when the server has one)"},
    408: {"model": ErrorOut, "description": "the body did not arrive within --body-timeout"},
    413: {"model": ErrorOut, "description": "too many texts, a text too long, or a body too large"},
    422: {"model": ErrorOut, "description": "malformed JSON, the wrong shape, or min_score not from 0 to 1"},
    503: {"model": ErrorOut, "description": "the queue is full, or the server is stopping; see Retry-After"},
}


def create_app(tagger_or_model_dir, *, limits: Limits | None = None, api_key: str | None = None,
               model_dir: str | os.PathLike | None = None, backend: str = "torch",
               tagger_options: dict | None = None, min_score: float = 0.0):
    """A FastAPI app serving a model.

    ``tagger_or_model_dir`` is a model directory (loaded with :meth:`Tagger.from_pretrained` and
    ``backend``/``tagger_options``) or an object with ``predict_texts(list[str])`` and ``labels``
    (e.g. a :class:`~tokentune.inference.Tagger`; pass ``model_dir`` too so ``/model`` can show its
    metrics). With ``api_key`` every request but the page, static files and the offline ``/docs``
    page needs ``Authorization: Bearer API_KEY``. ``min_score``: entities scoring below it are left out
    of answers, unless a request gives its own ``min_score`` (a tagger passed in with its own
    ``min_score`` has dropped the entities below that already, whatever a request asks).
    """
    from ..inference.tagger import check_min_score

    limits = limits or Limits()
    min_score = check_min_score(min_score)
    if api_key is not None and not api_key:
        raise ConfigError("the API key is empty", fix="pass a non-empty key, or none to serve without one")
    tagger, model_dir = _load(tagger_or_model_dir, model_dir, backend, tagger_options or {})
    info = {**model_info(tagger, model_dir), "min_score": min_score}
    alone = getattr(tagger, "batch_dependent", False)
    batcher = MicroBatcher(each_text_alone(tagger.predict_texts) if alone else tagger.predict_texts, limits)

    @asynccontextmanager
    async def lifespan(app):
        await batcher.start()
        try:
            yield
        finally:
            await batcher.stop()

    app = FastAPI(title="tokentune", version=_version(), lifespan=lifespan, docs_url=None, redoc_url=None,
                  description=f"Token classification with {info['name'] or 'a model'}: "
                              f"{', '.join(info['entity_types']) or 'no entity types'}.")
    app.state.batcher, app.state.limits, app.state.model_info = batcher, limits, info
    app.state.texts_alone = alone
    _add_error_handlers(app)
    _add_routes(app, batcher, limits, info, min_score)
    _add_static(app)
    if api_key:
        app.add_middleware(BearerAuthMiddleware, api_key=api_key)
        _document_bearer(app)
    app.add_middleware(BodyTimeoutMiddleware, seconds=limits.body_timeout_s)
    app.add_middleware(ShutdownMiddleware, retry_after_s=RETRY_AFTER_S)
    app.add_middleware(RequestLogMiddleware)  # added last: outermost, so it logs 401s and 503s too
    return app


def each_text_alone(predict_texts):
    """``predict_texts`` called once per text, for a model whose answers depend on their batch: an int8
    ONNX file quantized elsewhere with one activation scale for a whole call (onnxruntime's
    ``quantize_dynamic``, and tokentune's exports before per-token scales). Batched with other clients'
    texts, a text's entities could change from one request to the next (40 of 600 CoNLL-2003 sentences
    did); alone, each text gets the same answer every time."""
    def predict(texts: list[str]) -> list:
        return [predict_texts([text])[0] for text in texts]

    return predict


def _load(tagger_or_model_dir, model_dir, backend, options):
    if isinstance(tagger_or_model_dir, (str, os.PathLike)):
        from ..inference.tagger import Tagger

        path = os.fspath(tagger_or_model_dir)
        return Tagger.from_pretrained(path, backend=backend, **options), path
    tagger = tagger_or_model_dir
    if not callable(getattr(tagger, "predict_texts", None)) or not hasattr(tagger, "labels"):
        raise ConfigError(f"cannot serve a {type(tagger).__name__}",
                          fix="pass a model directory or a tokentune Tagger")
    return tagger, (os.fspath(model_dir) if model_dir is not None else None)


def _add_routes(app, batcher: MicroBatcher, limits: Limits, info: dict, min_score: float) -> None:
    body_schema = {"required": True, "content": {"application/json": {"schema": PredictRequest.model_json_schema()}}}

    @app.post("/predict", response_model=PredictResponse, responses=ERRORS, openapi_extra={"requestBody": body_schema},
              summary="Tag texts", description="Entities of each text, as `tokentune predict` writes them. "
              f"Limits: {limits.max_texts} texts, {limits.max_chars} characters each, {limits.max_body_bytes} bytes. "
              f"Entities scoring below `min_score` (default {min_score:g}) are left out.")
    async def predict(request: Request):
        texts, _, asked = parse_request(await read_body(request, limits.max_body_bytes), limits)
        entities = await batcher.submit(texts)
        threshold = min_score if asked is None else asked
        results = [[e.to_dict() for e in found] for found in entities]
        if threshold:
            results = [[e for e in found if e["score"] >= threshold] for found in results]
        return {"results": [{"text": text, "entities": found} for text, found in zip(texts, results)]}

    @app.get("/health", summary="Liveness, queue depth and batching counters")
    async def health():
        stats = batcher.stats
        return {"status": "ok" if batcher.running else "stopping", "queue": batcher.pending,
                "max_queue": limits.max_queue, "requests": stats.requests, "texts": stats.texts,
                "batches": stats.batches, "largest_batch": stats.largest_batch}

    @app.get("/model", summary="Labels, entity types, base model, metrics and limits")
    async def model():
        return {**info, "limits": {"max_texts": limits.max_texts, "max_chars": limits.max_chars,
                                   "max_body_bytes": limits.max_body_bytes}}

    @app.get("/", include_in_schema=False)
    async def page():
        return FileResponse(STATIC / "index.html")

    @app.get("/docs", include_in_schema=False)
    async def docs():  # FastAPI's own /docs pulls Swagger UI from a CDN; this page works offline
        return FileResponse(STATIC / "docs.html")

    for path, endpoint in (("/", page), ("/health", health), ("/model", model), ("/docs", docs)):
        # HEAD as GET (health and link checkers use it), out of the OpenAPI document: one operation a path
        app.add_api_route(path, endpoint, methods=["HEAD"], include_in_schema=False)


def _add_static(app) -> None:
    app.mount("/static", StaticFiles(directory=STATIC), name="static")


def _add_error_handlers(app) -> None:
    async def api_error(request, err: ApiError):
        return JSONResponse(err.body(), status_code=err.status, headers=err.headers)

    async def unavailable(request, err):
        return JSONResponse({"detail": str(err)}, status_code=503, headers={"Retry-After": str(RETRY_AFTER_S)})

    async def http_error(request, err: HTTPException):  # 404, 405: same shape as ours
        return JSONResponse({"detail": err.detail}, status_code=err.status_code, headers=err.headers)

    async def invalid(request, err: RequestValidationError):
        return JSONResponse({"detail": f"invalid request: {err.errors()[0].get('msg', err)}"}, status_code=422)

    async def internal(request, err: Exception):  # the model failed: not the client's fault, so no detail leaks
        return JSONResponse({"detail": "internal error while tagging; the server log has the traceback"},
                            status_code=500)

    app.add_exception_handler(Exception, internal)
    app.add_exception_handler(ApiError, api_error)
    app.add_exception_handler(Overloaded, unavailable)
    app.add_exception_handler(Closed, unavailable)
    app.add_exception_handler(HTTPException, http_error)
    app.add_exception_handler(RequestValidationError, invalid)


def _document_bearer(app) -> None:
    """Declare the bearer key in the OpenAPI document (the check itself is the middleware's)."""
    def openapi():
        if app.openapi_schema is None:
            schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
            schema.setdefault("components", {})["securitySchemes"] = {"bearer": {"type": "http", "scheme": "bearer"}}
            for operations in schema.get("paths", {}).values():
                for operation in operations.values():
                    operation["security"] = [{"bearer": []}]
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi


# -- /model -----------------------------------------------------------------------------------
def model_info(tagger, model_dir: str | None) -> dict:
    """What ``GET /model`` shows. Files a model dir may lack (metrics.json, model card) give null."""
    from ..schemes import scheme_of_labels, split_tag

    labels = list(tagger.labels)
    scheme = getattr(tagger, "scheme", None) or scheme_of_labels(labels)
    types = sorted({split_tag(label, scheme)[1] for label in labels} - {""})
    return {"name": os.path.basename(os.path.normpath(model_dir)) if model_dir else None,
            "labels": labels, "entity_types": types, "scheme": scheme.name,
            "word_splitter": getattr(tagger, "word_splitter", None), "precision": getattr(tagger, "precision", None),
            "base_model": _base_model(model_dir), "metrics": _read_json(model_dir, "metrics.json")}


def _read_json(model_dir: str | None, name: str):
    if not model_dir:
        return None
    try:
        with open(os.path.join(model_dir, name), encoding="utf-8") as handle:
            return json.load(handle)
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as err:  # the model still serves; say why the field is empty
        log.warning("%s: cannot read %s (%s); /model shows null for it", model_dir, name, err)
        return None


def _base_model(model_dir: str | None) -> str | None:
    """From the model card's front matter (``base_model:``), else the training config's ``model``."""
    if not model_dir:
        return None
    try:
        card = Path(model_dir, "README.md").read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        card = ""
    if card.startswith("---"):
        import yaml

        try:
            front = yaml.safe_load(card.split("---", 2)[1]) or {}
        except (yaml.YAMLError, IndexError):
            front = {}
        if isinstance(front, dict) and front.get("base_model"):
            return str(front["base_model"])
    config = _read_json(model_dir, "tokentune_config.json")
    return str(config["model"]) if isinstance(config, dict) and config.get("model") else None


def _version() -> str:
    from .. import __version__

    return __version__
