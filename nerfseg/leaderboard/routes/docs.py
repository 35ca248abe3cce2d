"""``/docs`` loading nothing from the network: the Swagger UI files come from the fastapi-offline package and
are routed by fixed name, so the API page works on an offline server (there is still no static mount).

Why: FastAPI's default page loads Swagger UI from a CDN, so on a server without internet access (or a reader
behind a strict proxy) the API page is blank. Without the package, /docs says how to get it and points at
/openapi.json instead of loading anything remote.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Callable

from fastapi import APIRouter, HTTPException, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, Response

from nerfseg.leaderboard.routes.context import Context
from nerfseg.leaderboard.routes.html_parts import html_page

#: the Swagger UI files /docs needs, served from the fastapi-offline package (the ``server`` extra), which
#: ships a Swagger UI 5 build: FastAPI writes OpenAPI 3.1, which Swagger UI 4 cannot draw
SWAGGER_ASSETS: dict[str, str] = {"swagger-ui-bundle.js": "text/javascript; charset=utf-8",
                                  "swagger-ui.css": "text/css; charset=utf-8", "favicon.png": "image/png"}
SWAGGER_ASSET_PREFIX = "/docs/assets/"

docs_router = APIRouter()


def swagger_asset_dir() -> Path | None:
    """The folder of the Swagger UI files that fastapi-offline installs, or None without it."""
    found = importlib.util.find_spec("fastapi_offline")
    if found is None or not found.submodule_search_locations:
        return None
    folder = Path(next(iter(found.submodule_search_locations))) / "static"
    return folder if all((folder / name).is_file() for name in SWAGGER_ASSETS) else None


def _asset_endpoint(name: str, media_type: str) -> Callable[[Request], Response]:
    """The route of one asset file, read once per app (``app.state.swagger_cache``) and cached by browsers."""
    def asset(request: Request) -> Response:
        folder: Path | None = request.app.state.swagger_dir
        if folder is None:
            raise HTTPException(404, "Swagger UI assets are not installed (pip install fastapi-offline)")
        cache: dict[str, bytes] = request.app.state.swagger_cache
        if name not in cache:
            cache[name] = (folder / name).read_bytes()
        return Response(cache[name], media_type=media_type, headers={"Cache-Control": "public, max-age=86400"})

    return asset


def _add_asset_routes(router: APIRouter) -> None:
    """Only the files the page loads, by fixed name: a path cannot reach anything else in the folder."""
    for name, media_type in SWAGGER_ASSETS.items():
        router.add_api_route(SWAGGER_ASSET_PREFIX + name, _asset_endpoint(name, media_type), methods=["GET"],
                             include_in_schema=False)


_add_asset_routes(docs_router)


@docs_router.get("/docs", include_in_schema=False)
def docs(request: Request, ctx: Context) -> HTMLResponse:
    if request.app.state.swagger_dir is None:
        return html_page("API", '<p>The interactive API page needs the <code>fastapi-offline</code> package '
                                '(<code>pip install "nerfseg[server]"</code>). The API schema is at '
                                '<a href="/openapi.json">/openapi.json</a>.</p>')
    return get_swagger_ui_html(openapi_url=request.app.openapi_url or "/openapi.json",
                               title=f"{ctx.settings.title} - API",
                               swagger_js_url=SWAGGER_ASSET_PREFIX + "swagger-ui-bundle.js",
                               swagger_css_url=SWAGGER_ASSET_PREFIX + "swagger-ui.css",
                               swagger_favicon_url=SWAGGER_ASSET_PREFIX + "favicon.png")
