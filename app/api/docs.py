"""HTTP: /docs, the interactive API reference (Swagger UI over /v1/openapi.json).

The UI's files come from the swagger-ui-bundle package and are served by this app, so the
reference works offline and never loads anything from another host.
"""

from __future__ import annotations

from pathlib import Path

from litestar import MediaType, get
from litestar.static_files import create_static_files_router
from litestar.types import ControllerRouterHandler
from swagger_ui_bundle import swagger_ui_path  # type: ignore[import-untyped]  # no py.typed

ASSETS = "/docs/assets"

# validatorUrl null: Swagger UI would otherwise send the document to validator.swagger.io.
PAGE = f"""<!DOCTYPE html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <title>Astrocal API reference</title>
  <link rel="stylesheet" href="{ASSETS}/swagger-ui.css">
  <link rel="icon" type="image/png" href="{ASSETS}/favicon-32x32.png">
</head>
<body>
  <div id="swagger-ui"></div>
  <script src="{ASSETS}/swagger-ui-bundle.js"></script>
  <script>
    window.ui = SwaggerUIBundle({{
      url: "/v1/openapi.json",
      dom_id: "#swagger-ui",
      deepLinking: true,
      persistAuthorization: true,
      tryItOutEnabled: true,
      validatorUrl: null,
    }});
  </script>
</body>
</html>
"""


@get("/docs", media_type=MediaType.HTML, include_in_schema=False, sync_to_thread=False)
def reference() -> str:
    """The interactive API reference: public, no key, nothing fetched from elsewhere."""
    return PAGE


assets = create_static_files_router(
    path=ASSETS, directories=[Path(str(swagger_ui_path))], name="docs-assets"
)

HANDLERS: list[ControllerRouterHandler] = [reference, assets]
