"""The dead-letter API's answer to a request it cannot take: one sentence, and each problem."""

from __future__ import annotations

from typing import Any, cast

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from sambung.delivery.dlq import DeadLetters, add_dead_letter_routes


@pytest.mark.parametrize(
    ("method", "url", "body", "message", "problems"),
    [
        pytest.param(
            "GET",
            "/api/v1/dead-letters?limit=lots",
            None,
            "The request is not valid: limit must be a whole number, not the text 'lots'.",
            [{"path": "limit", "message": "must be a whole number, not the text 'lots'"}],
            id="query-not-a-number",
        ),
        pytest.param(
            "GET",
            "/api/v1/dead-letters?stage=ingest&stauts=open",
            None,
            "The request is not valid: stauts is not a known setting; did you mean 'status'?",
            [{"path": "stauts", "message": "is not a known setting; did you mean 'status'?"}],
            id="query-unknown-filter",
        ),
        pytest.param(
            "POST",
            "/api/v1/dead-letters/replay",
            b'{"ids": "7", "filters": {"stage": "nowhere"}}',
            "The request is not valid: ids must be a list, not the text '7'; filters.stage "
            "must be one of 'ingest', 'row' or 'delivery', not 'nowhere'.",
            [
                {"path": "ids", "message": "must be a list, not the text '7'"},
                {
                    "path": "filters.stage",
                    "message": "must be one of 'ingest', 'row' or 'delivery', not 'nowhere'",
                },
            ],
            id="body-two-problems",
        ),
        pytest.param(
            "POST",
            "/api/v1/dead-letters/discard",
            b"{ids: [1]",
            "The request is not valid: the body is not valid JSON (key must be a string at "
            "line 1 column 2).",
            [
                {
                    "path": "",
                    "message": "is not valid JSON (key must be a string at line 1 column 2)",
                }
            ],
            id="body-not-json",
        ),
        pytest.param(
            "POST",
            "/api/v1/dead-letters/replay",
            b"{}",
            "The request is not valid: give ids, or all: true with optional filters.",
            [{"path": "", "message": "give ids, or all: true with optional filters"}],
            id="nothing-to-replay",
        ),
    ],
)
async def test_a_bad_request_is_answered_in_words(
    method: str, url: str, body: bytes | None, message: str, problems: list[dict[str, str]]
) -> None:
    app = web.Application()
    # Every request here is refused before the service is asked anything.
    add_dead_letter_routes(app, cast(DeadLetters, object()))
    async with TestClient(TestServer(app)) as client:
        response = await client.request(method, url, data=body)
        answer: dict[str, Any] = await response.json()
    assert response.status == 400
    assert answer == {
        "success": False,
        "error": "invalid_request",
        "message": message,
        "problems": problems,
    }
