"""/docs and /redoc work with no internet: every script, style and icon they load is
served by the app."""

from __future__ import annotations

import re

import pytest

from tests.api.conftest import Api


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_the_api_docs_load_everything_from_the_app(api: Api, page: str) -> None:
    html = api.client.get(page)
    assert html.status_code == 200
    loaded = re.findall(r"""(?:src|href)=["']([^"']+)["']""", html.text)
    loaded += re.findall(r"""url: ?["']([^"']+)["']""", html.text)
    assert loaded, "the page loads its assets"
    assert not [url for url in loaded if re.match(r"(https?:)?//", url)], loaded
    assert "googleapis" not in html.text and "cdn." not in html.text
    for url in loaded:
        asset = api.client.get(url)
        assert asset.status_code == 200, url
        assert len(asset.content) > 100, url


def test_the_assets_carry_their_licences(api: Api) -> None:
    for name in ("swagger-ui.LICENSE", "redoc.LICENSE"):
        licence = api.client.get(f"/static/docs/{name}")
        assert licence.status_code == 200 and "License" in licence.text


def test_the_docs_pages_stay_out_of_the_api_description(api: Api) -> None:
    paths = api.client.get("/openapi.json").json()["paths"]
    assert not [path for path in paths if path in ("/docs", "/redoc") or "static" in path]
