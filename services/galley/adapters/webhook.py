"""The validating webhook's HTTP route: ``POST /validate`` with an AdmissionReview v1.

Registers on a FastAPI app it is handed. Non-JSON bodies and malformed reviews get
HTTP 400 with ``{"error": ...}`` naming what was wrong; well-formed reviews get 200 and
the AdmissionReview response (allowed or denied) from the core.
"""

from __future__ import annotations

import json
import logging

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from opentelemetry import metrics

from services.galley.core.admission import MalformedReviewError, review

_log = logging.getLogger(__name__)
MAX_REVIEW_BYTES = 4 * 1024 * 1024


def register_webhook(app: FastAPI, *, default_namespace: str = "default") -> None:
    """Add ``POST /validate`` to ``app``."""
    reviews = metrics.get_meter("splitmesh.galley").create_counter(
        "galley_webhook_reviews", description="Admission reviews answered, by outcome"
    )

    @app.post("/validate")
    async def validate_review(request: Request) -> JSONResponse:
        raw = await request.body()
        if len(raw) > MAX_REVIEW_BYTES:
            reviews.add(1, {"outcome": "malformed"})
            return _bad_request(f"review is {len(raw)} bytes, over the {MAX_REVIEW_BYTES} limit")
        try:
            body = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            reviews.add(1, {"outcome": "malformed"})
            return _bad_request(f"body is not JSON: {exc}")
        try:
            answer = review(body, default_namespace=default_namespace)
        except MalformedReviewError as exc:
            reviews.add(1, {"outcome": "malformed"})
            return _bad_request(f"malformed AdmissionReview: {exc}")
        allowed = bool(answer["response"]["allowed"])
        reviews.add(1, {"outcome": "allowed" if allowed else "denied"})
        if not allowed:
            _log.info("admission denied: %s", answer["response"]["status"]["message"])
        return JSONResponse(answer)


def _bad_request(message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=400)
