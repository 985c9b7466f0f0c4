"""The Starlette application of `medsam2 serve` (JSON API + the page); see docs/serve.md.

Model work runs in worker threads, one operation at a time (`Annotator.lock`); a propagation
runs in its own thread and streams its progress as server-sent events. Errors are JSON
``{"error": "..."}`` without tracebacks. `Guard` (security.py) wraps everything.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

from anyio import to_thread
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from medsam2.errors import MedSam2Error, PromptError
from medsam2.io.writers import write_mask
from medsam2.web.annotator import Annotator, BusyError, UnknownObjectError
from medsam2.web.files import nifti_bytes, static_file
from medsam2.web.schemas import RequestError, parse_body, parse_object, parse_options, parse_prompt
from medsam2.web.security import Guard
from medsam2.web.sidecar import read_sidecar, restore, sidecar_path, write_sidecar

__all__ = ["ServeState", "create_app"]

log = logging.getLogger(__name__)
DIRECTIONS = ("both", "forward", "backward")


class ServeState:
    """The served annotator, where to save, and the autosave bookkeeping."""

    def __init__(
        self, annotator: Annotator, output: Path, output_format: str | None = None, autosave: bool = True
    ) -> None:
        self.annotator = annotator
        self.output = output
        self.format = output_format
        self.sidecar = sidecar_path(output)
        self.autosave = autosave
        self.resume = read_sidecar(self.sidecar, annotator.volume) if autosave else None
        self.image: bytes | None = None
        self.saved_change = -1

    def autosave_now(self) -> None:
        """Write the sidecar if something changed (not while an older session awaits a decision)."""
        a = self.annotator
        if not self.autosave or self.resume is not None:
            return
        with a.lock:
            if a.changed != self.saved_change:
                write_sidecar(a, self.sidecar)
                self.saved_change = a.changed

    def resume_info(self) -> dict[str, Any] | None:
        if self.resume is None:
            return None
        state = self.resume[0]
        return {
            "objects": len(state["objects"]),
            "saved_at": state.get("saved_at"),
            "propagated": state.get("propagated"),
        }


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:500]


async def _in_worker(state: ServeState, fn: Callable[..., Any], *args: Any) -> Any:
    """Run an annotator operation off the event loop, one at a time; refused while propagating."""
    a = state.annotator
    if a.propagating.is_set():
        raise BusyError("a propagation is running: wait for it or cancel it first")

    def locked() -> Any:
        with a.lock:
            return fn(*args)

    return await to_thread.run_sync(locked)


def _ok(state: ServeState, data: Any, status: int = 200) -> JSONResponse:
    """A JSON answer to a change; the autosave runs after it is sent."""
    return JSONResponse(data, status, background=BackgroundTask(state.autosave_now))


async def _body(request: Request) -> dict[str, Any]:
    return parse_body(await request.body())


class Api:
    """The route handlers; each parses its body strictly, then calls the annotator."""

    def __init__(self, state: ServeState) -> None:
        self.state = state
        self.a = state.annotator

    async def page(self, request: Request) -> Response:
        return _static("index.html")

    async def static(self, request: Request) -> Response:
        return _static(request.path_params["name"])

    async def health(self, request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def volume(self, request: Request) -> Response:
        info = self.a.info()
        return JSONResponse({**info, "output": self.state.output.name, "resume": self.state.resume_info()})

    async def image(self, request: Request) -> Response:
        if self.state.image is None:
            self.state.image = await to_thread.run_sync(nifti_bytes, self.a.display, self.a.volume)
        return Response(self.state.image, media_type="application/octet-stream")

    async def labels(self, request: Request) -> Response:
        data = await to_thread.run_sync(lambda: nifti_bytes(self.a.label_volume(), self.a.volume))
        return Response(data, media_type="application/octet-stream")

    async def list_objects(self, request: Request) -> Response:
        return JSONResponse([o.to_json() for o in self.a.objects.values()])

    async def new_object(self, request: Request) -> Response:
        name, color = parse_object(await _body(request))
        info = await _in_worker(self.state, self.a.add_object, name, color)
        return _ok(self.state, info.to_json(), 201)

    async def patch_object(self, request: Request) -> Response:
        name, color = parse_object(await _body(request))
        info = await _in_worker(self.state, self.a.update_object, request.path_params["obj_id"], name, color)
        return _ok(self.state, info.to_json())

    async def delete_object(self, request: Request) -> Response:
        parse_options(await _body(request), {})
        await _in_worker(self.state, self.a.delete_object, request.path_params["obj_id"])
        return _ok(self.state, {"deleted": request.path_params["obj_id"]})

    async def prompt(self, request: Request) -> Response:
        world = parse_prompt(await _body(request))
        result = await _in_worker(self.state, self.a.add_prompt, request.path_params["obj_id"], world)
        return _ok(self.state, result)

    async def undo(self, request: Request) -> Response:
        data = parse_options(await _body(request), {"object": (int, ())})
        if "object" not in data:
            raise RequestError("object: which object's last prompt to undo")
        return _ok(self.state, await _in_worker(self.state, self.a.undo, data["object"]))

    async def reset(self, request: Request) -> Response:
        parse_options(await _body(request), {})
        await _in_worker(self.state, self.a.reset)
        return _ok(self.state, {"reset": True})

    async def save(self, request: Request) -> Response:
        parse_options(await _body(request), {})
        st, a = self.state, self.a
        path = await _in_worker(
            st, lambda: write_mask(a.label_volume(), a.volume, st.output, format=st.format)
        )
        return JSONResponse({"saved": Path(path).name, "objects": [o.to_json() for o in a.objects.values()]})

    async def resume(self, request: Request) -> Response:
        data = parse_options(await _body(request), {"continue": (bool, ())})
        if self.state.resume is None:
            raise RequestError("there is no autosaved session to continue", 409)
        if data.get("continue", True):
            await _in_worker(self.state, restore, self.a, *self.state.resume)
        self.state.resume = None
        return _ok(self.state, self.a.info())

    async def cancel(self, request: Request) -> Response:
        parse_options(await _body(request), {})
        running = self.a.propagating.is_set()
        if running:
            self.a.cancel_requested.set()
        return JSONResponse({"cancelling": running})

    async def propagate(self, request: Request) -> Response:
        data = parse_options(await _body(request), {"direction": (str, DIRECTIONS)})
        return _start_propagation(self.state, data.get("direction", "both"))

    def routes(self) -> list[Route]:
        get, post = ["GET"], ["POST"]
        return [
            Route("/", self.page, methods=get),
            Route("/healthz", self.health, methods=get),
            Route("/static/{name:str}", self.static, methods=get),
            Route("/api/volume", self.volume, methods=get),
            Route("/api/image.nii.gz", self.image, methods=get),
            Route("/api/labels.nii.gz", self.labels, methods=get),
            Route("/api/objects", self.list_objects, methods=get),
            Route("/api/objects", self.new_object, methods=post),
            Route("/api/objects/{obj_id:int}", self.patch_object, methods=["PATCH"]),
            Route("/api/objects/{obj_id:int}", self.delete_object, methods=["DELETE"]),
            Route("/api/objects/{obj_id:int}/prompts", self.prompt, methods=post),
            Route("/api/undo", self.undo, methods=post),
            Route("/api/reset", self.reset, methods=post),
            Route("/api/propagate", self.propagate, methods=post),
            Route("/api/cancel", self.cancel, methods=post),
            Route("/api/save", self.save, methods=post),
            Route("/api/resume", self.resume, methods=post),
        ]


def _static(name: str) -> Response:
    found = static_file(name)
    if found is None:
        raise HTTPException(404, "not found")
    return Response(found[0], media_type=found[1])


def _start_propagation(state: ServeState, direction: str) -> Response:
    """Start propagating in a thread; the response streams one SSE event per slice."""
    a = state.annotator
    if a.propagating.is_set():
        raise BusyError("a propagation is already running")
    if not a.session.prompted_frames():
        raise PromptError("no prompts yet: draw a box or click on a slice first")
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

    def emit(message: dict[str, Any]) -> None:
        loop.call_soon_threadsafe(queue.put_nowait, message)

    def on_slice(frame: int, done: int, total: int) -> None:
        emit({"type": "slice", "slice": frame, "done": done, "total": total, "patch": a.slice_patch(frame)})

    def job() -> None:
        message: dict[str, Any]
        try:
            with a.lock:
                message = {"type": "done", **a.propagate(direction, on_slice)}  # type: ignore[arg-type]
        except MedSam2Error as exc:
            message = {"type": "error", "error": _one_line(exc)}
        except Exception:
            log.exception("propagation failed")
            message = {"type": "error", "error": "internal error during propagation"}
        finally:
            a.propagating.clear()
        try:
            state.autosave_now()
        except MedSam2Error as exc:
            log.warning("autosave failed: %s", exc)
        emit(message)

    a.propagating.set()
    threading.Thread(target=job, name="medsam2-propagate", daemon=True).start()

    async def events() -> AsyncIterator[str]:
        while True:
            message = await queue.get()
            yield f"event: {message['type']}\ndata: {json.dumps(message)}\n\n"
            if message["type"] in ("done", "error"):
                return

    return StreamingResponse(events(), media_type="text/event-stream")


async def _error(request: Request, exc: Exception) -> Response:
    if isinstance(exc, HTTPException):
        return JSONResponse({"error": str(exc.detail)}, exc.status_code)
    if isinstance(exc, RequestError):
        return JSONResponse({"error": _one_line(exc)}, exc.status)
    if isinstance(exc, UnknownObjectError):
        return JSONResponse({"error": _one_line(exc)}, 404)
    if isinstance(exc, BusyError):
        return JSONResponse({"error": _one_line(exc)}, 409)
    if isinstance(exc, MedSam2Error):
        return JSONResponse({"error": _one_line(exc)}, 422)
    log.error(
        "internal error on %s %s: %s", request.method, request.url.path, type(exc).__name__, exc_info=exc
    )
    return JSONResponse({"error": "internal server error"}, 500)


def create_app(
    state: ServeState, *, token: str, port: int, hosts: tuple[str, ...] | None = None, any_host: bool = False,
    body_limit: int = 64 * 1024,
) -> Guard:  # fmt: skip
    """The ASGI app: routes behind the `Guard` (token, Host, Origin, body limit, headers)."""
    handlers: dict[Any, Any] = {Exception: _error, HTTPException: _error, MedSam2Error: _error}
    app = Starlette(debug=False, routes=Api(state).routes(), exception_handlers=handlers)
    kwargs: dict[str, Any] = {} if hosts is None else {"hosts": hosts}
    return Guard(app, token=token, port=port, any_host=any_host, body_limit=body_limit, **kwargs)
