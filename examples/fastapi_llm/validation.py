"""422 answers that can always be sent, whatever the body held.

Python's JSON parser (which FastAPI uses) reads ``NaN``, ``Infinity`` and ``-Infinity``, and
``1e400`` as an infinity. FastAPI's own 422 handler echoes the bad value in the error's
``input``, and its JSON encoder refuses non-finite numbers, so the client of
``{"prompt": NaN}`` got a 500 and the server log a traceback. This handler answers the same 422
body, with each non-finite number written as the text ``"NaN"``, ``"Infinity"`` or
``"-Infinity"``.
"""

from __future__ import annotations

import math
from typing import Any

from fastapi import Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse


def finite_json(value: Any) -> Any:
    """``value`` (jsonable: dicts, lists, scalars) with every NaN or infinity as its name."""
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, dict):
        return {key: finite_json(item) for key, item in value.items()}
    if isinstance(value, list):
        return [finite_json(item) for item in value]
    return value


async def validation_error_handler(request: Request, exc: RequestValidationError
                                   ) -> JSONResponse:
    """FastAPI's 422 (``{"detail": [errors]}``) for any input, NaN and infinities included."""
    return JSONResponse(status_code=422,
                        content={"detail": finite_json(jsonable_encoder(exc.errors()))})
