"""The HTTP face of `Backend`: a FastAPI app with the endpoints Label Studio calls.

    GET  /health, /        {"status": "UP", ..., "encodes": n, "decodes": n}  (counters for tests)
    POST /setup            {"model_version": ...}; the project's label config is checked
    POST /predict          {"results": [{"result": [brushlabels region], "score", "model_version"}]}
    POST /webhook          {"status": "ok"}: this model does not train on annotations
    GET  /versions         {"versions": [model_version]}

Bad requests answer 4xx with {"error": "<one line>", "status": code}; anything unexpected answers
500 with its first line, and the process keeps serving. Handlers are plain functions, so the
server runs them in its thread pool: requests for different tasks are answered concurrently.
"""

import json
import logging

from ois_jax.errors import first_line
from ois_jax.label_studio.backend import Backend, BadRequest

log = logging.getLogger("ois_jax.label_studio")


def create_app(backend: Backend):
  from fastapi import FastAPI, Request
  from fastapi.responses import JSONResponse

  app = FastAPI(title="ois-jax Label Studio ML backend", docs_url=None, redoc_url=None, openapi_url=None)

  def error(status: int, message: str):
    return JSONResponse({"error": message, "status": status}, status_code=status)

  async def body(request: Request):
    raw = await request.body()
    if not raw:
      raise BadRequest("empty request body; expected a JSON object")
    try:
      return json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
      raise BadRequest(f"the request body is not JSON ({e})") from None

  @app.exception_handler(BadRequest)
  async def bad_request(request, e: BadRequest):
    log.info("%s %s -> %d: %s", request.method, request.url.path, e.status, e)
    return error(e.status, str(e))

  @app.exception_handler(Exception)
  async def unexpected(request, e: Exception):
    log.exception("%s %s failed", request.method, request.url.path)
    return error(500, f"internal error: {type(e).__name__}: {first_line(e)}")

  @app.get("/")
  @app.get("/health")
  def health():
    return backend.health()

  @app.get("/versions")
  def versions():
    return {"versions": [backend.model_version], "message": ""}

  @app.get("/metrics")
  def metrics():
    return {}

  @app.post("/setup")
  async def setup(request: Request):
    return backend.setup(await body(request))

  @app.post("/predict")
  async def predict(request: Request):
    payload = await body(request)
    from starlette.concurrency import run_in_threadpool
    return await run_in_threadpool(backend.predict, payload)

  @app.post("/webhook")
  async def webhook(request: Request):
    payload = await body(request)
    action = payload.get("action") if isinstance(payload, dict) else None
    return {"status": "ok", "action": action, "message": "this model does not train on annotations"}

  return app
