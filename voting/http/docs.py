"""The API docs at ``/schema``: Swagger UI from our own static files, under the CSP.

Litestar's :class:`SwaggerRenderPlugin` loads Swagger UI from a CDN and starts it with an
inline script holding the schema; :class:`SwaggerDocs` points it at the copy vendored by
``scripts/vendor_swagger.sh`` (``/static/vendor/swagger-ui/``) and starts it from
``/static/docs/swagger-init.js``, which fetches the schema from ``/schema/openapi.json``: no
request leaves the origin and no inline script or style is needed.
"""

from __future__ import annotations

import html
from typing import Any

from litestar import Request
from litestar.openapi.plugins import SwaggerRenderPlugin

VENDOR = "/static/vendor/swagger-ui"
INIT_JS = "/static/docs/swagger-init.js"


class SwaggerDocs(SwaggerRenderPlugin):
    """Swagger UI served from ``/static`` (see the module)."""

    def __init__(self) -> None:
        super().__init__(
            js_url=f"{VENDOR}/swagger-ui-bundle.js",
            css_url=f"{VENDOR}/swagger-ui.css",
            standalone_preset_js_url=f"{VENDOR}/swagger-ui-standalone-preset.js",
            favicon="<link rel='icon' href='data:,'>",
            style="",
        )

    def render(self, request: Request[Any, Any, Any], openapi_schema: dict[str, Any]) -> bytes:
        """The docs page: the vendored assets, then the initialiser with the schema's URL."""
        title = html.escape(str(openapi_schema["info"]["title"]))
        spec_url = html.escape(self.get_openapi_json_route(request))
        return f"""<!DOCTYPE html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <title>{title}</title>
  {self.favicon}
  <link rel="stylesheet" href="{self.css_url}">
  <link rel="stylesheet" href="/static/docs/swagger.css">
  <script src="{self.js_url}"></script>
  <script src="{self.standalone_preset_js_url}"></script>
  <script src="{INIT_JS}" defer></script>
</head>
<body>
  <div id="swagger-ui" data-spec-url="{spec_url}"></div>
</body>
</html>
""".encode()
