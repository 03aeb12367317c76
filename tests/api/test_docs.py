"""GET /docs: the interactive reference, served whole by this app (no CDN, no key, no limit)."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from html.parser import HTMLParser
from urllib.parse import urlsplit

import httpx
import pytest
from swagger_ui_bundle import swagger_ui_path

from app.main import create_app
from app.resources import Resources
from app.settings import Settings, load_settings
from tests.conftest import SECRET

CONTENT_TYPES = {".css": "text/css", ".js": "javascript", ".png": "image/png"}


class References(HTMLParser):
    """Every URL the page makes the browser load: src and href attributes."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.urls += [value for name, value in attrs if name in ("src", "href") and value]


@pytest.fixture
async def strict_client(
    settings: Settings, resources: Resources
) -> AsyncIterator[httpx.AsyncClient]:
    """The app with the smallest rate limits, so a limit on /docs would show at once."""
    strict = load_settings(
        {},
        database_url=settings.database_url,
        redis_url=settings.redis_url,
        secret_key=SECRET,
        rate_limit_per_minute=1,
        rate_limit_public_per_minute=1,
    )
    transport = httpx.ASGITransport(app=create_app(strict, resources))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield client


async def test_docs_page_and_every_asset_come_from_this_server(
    strict_client: httpx.AsyncClient,
) -> None:
    for _ in range(3):  # public, keyless and never rate-limited
        page = await strict_client.get("/docs")
        assert page.status_code == 200, page.text
        assert page.headers["content-type"].startswith("text/html")
    html = page.text
    # Nothing absolute or protocol-relative anywhere in the page, scripts included.
    assert not re.search(r"(https?:)?//", html), html
    parser = References()
    parser.feed(html)
    spec_urls = re.findall(r'url:\s*"([^"]+)"', html)
    assert spec_urls == ["/v1/openapi.json"]
    assert len(parser.urls) >= 3
    for url in [*parser.urls, *spec_urls]:
        parts = urlsplit(url)
        assert not parts.scheme and not parts.netloc and url.startswith("/"), url
        for _ in range(2):
            response = await strict_client.get(url)
            assert response.status_code == 200, url
            assert response.content, url
        suffix = parts.path[parts.path.rfind(".") :]
        expected = CONTENT_TYPES.get(suffix, "application/json")
        assert expected in response.headers["content-type"], (url, response.headers)
    document = (await strict_client.get("/v1/openapi.json")).json()
    assert document["openapi"].startswith("3.1")


def test_bundled_swagger_ui_renders_openapi_3_1() -> None:
    # Swagger UI before 5.0 refuses 3.1 documents ("Unable to render this definition").
    version = re.search(r"swagger-ui-(\d+)\.\d+\.\d+$", str(swagger_ui_path))
    assert version is not None, swagger_ui_path
    assert int(version.group(1)) >= 5


async def test_unknown_asset_is_a_404(client: httpx.AsyncClient) -> None:
    response = await client.get("/docs/assets/no-such-file.js")
    assert response.status_code == 404
