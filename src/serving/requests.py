"""What ``POST /predict`` accepts, checked in an ASGI middleware in front of LitServe: a PNG/JPEG body, a multipart
upload or JSON pixels become the 28x28 pixels the network sees, passed on as JSON ``{"pixels": ...}``, or a 4xx with a
one-line ``{"detail": ...}`` as FastAPI's own 404 and 405. In front, because LitServe 0.2.19 turns a body that is not
JSON into a 500, and decodes a batch in one ``try``: one bad request would fail every request batched with it."""

import json
from typing import Annotated

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers, MutableHeaders, UploadFile
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from src.data.datasets import DataSet
from src.data.images import SIDE, ImageError, ImageTooLarge, open_image, to_mnist

WHAT_TO_SEND = 'send a PNG or JPEG body, a multipart upload or JSON {"pixels": 28 rows of 28 numbers in 0..1}'

Row = Annotated[list[Annotated[float, Field(ge=0, le=1)]], Field(min_length=SIDE, max_length=SIDE)]


class Pixels(BaseModel):
    """JSON pixels: light digit on dark as MNIST stores it, used as they are (no centring)."""

    model_config = ConfigDict(extra="forbid", strict=True)
    pixels: Annotated[list[Row], Field(min_length=SIDE, max_length=SIDE)]


class PredictRequests:
    """The middleware (``LitServer(middlewares=[(PredictRequests, {...})])``): other routes pass through untouched."""

    def __init__(self, app: ASGIApp, *, path: str, data_set: DataSet, max_bytes: int, max_pixels: int) -> None:
        self.app, self.path, self.data_set = app, path, data_set
        self.max_bytes, self.max_pixels = max_bytes, max_pixels

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != self.path or scope["method"] != "POST":
            return await self.app(scope, receive, send)
        try:
            body = await self.read_body(scope, receive)
            pixels = await self.pixels(scope, body, receive)
        except HTTPException as error:
            return await JSONResponse({"detail": error.detail}, status_code=error.status_code)(scope, receive, send)
        checked = json.dumps({"pixels": pixels.tolist()}).encode()
        MutableHeaders(scope=scope).update({"content-type": "application/json", "content-length": str(len(checked))})
        await self.app(scope, replaying(checked, receive), send)

    async def read_body(self, scope: Scope, receive: Receive) -> bytes:
        """The body, refused as soon as it grows over ``max_bytes``."""
        body, too_large = bytearray(), f"the body is over {self.max_bytes:,} bytes; send a smaller image (max_bytes= sets it)"
        try:
            async for chunk in Request(scope, receive).stream():
                body += chunk
                if len(body) > self.max_bytes:
                    raise HTTPException(413, too_large)
        except ClientDisconnect:
            raise HTTPException(400, "the client went away before the body arrived") from None
        if not body:
            raise HTTPException(400, f"the body is empty; {WHAT_TO_SEND}")
        return bytes(body)

    async def pixels(self, scope: Scope, body: bytes, receive: Receive) -> np.ndarray:
        """The pixels in ``[0, 1]``, ``(28, 28)``: JSON's as given, an image's prepared as its data set's were."""
        media = Headers(scope=scope).get("content-type", "").partition(";")[0].strip().lower()
        if media == "application/json":
            try:
                return np.asarray(Pixels.model_validate_json(body).pixels, dtype=np.float32)
            except ValidationError as error:
                first = error.errors(include_url=False)[0]
                where = ".".join(map(str, first["loc"])) or "body"
                raise HTTPException(422, f"{where}: {first['msg']}; {WHAT_TO_SEND}") from None
        if media == "multipart/form-data":
            try:
                form = await Request(scope, replaying(body, receive)).form(max_files=1, max_fields=10)
            except Exception as error:  # python-multipart's parse errors, and Starlette's own limits
                raise HTTPException(400, f"a broken multipart body ({' '.join(str(error).split())}); {WHAT_TO_SEND}") from None
            if not (files := [value for value in form.values() if isinstance(value, UploadFile)]):
                raise HTTPException(422, f"the multipart body holds no file; {WHAT_TO_SEND}")
            body = await files[0].read()
        try:
            image = await run_in_threadpool(lambda: to_mnist(open_image(body, self.max_pixels), self.data_set))
        except ImageError as error:
            raise HTTPException(413 if isinstance(error, ImageTooLarge) else 415, str(error)) from None
        return image.astype(np.float32) / 255


def replaying(body: bytes, receive: Receive) -> Receive:
    """An ASGI ``receive`` that gives ``body`` whole, then the client's own messages (a disconnect)."""
    messages: list[Message] = [{"type": "http.request", "body": body, "more_body": False}]

    async def replay() -> Message:
        return messages.pop() if messages else await receive()

    return replay
