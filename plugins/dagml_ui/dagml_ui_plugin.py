"""The dagml plugin: the only file of plugins/dagml_ui that Airflow loads as a plugin
(plugins/.airflowignore leaves out the rest, which this file imports as the ``dagml_ui`` package).

It mounts the dagml app under ``/dagml`` and shows it inside Airflow's UI: an entry in the
navigation (every dataset), a tab on each DAG's page (that dataset) and one on each DAG run's
page (that run). Importing this file costs nothing beyond Airflow's plugin class: every process
that loads plugins imports it, and the app is built on its first request.
"""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin

URL_PREFIX = "/dagml"


class _LazyApp:
    """An ASGI app that builds the FastAPI app on its first request."""

    def __init__(self):
        self.app = None

    async def __call__(self, scope, receive, send):
        if self.app is None:
            from dagml_ui.app import create_app

            self.app = create_app()
        await self.app(scope, receive, send)


class DagmlUIPlugin(AirflowPlugin):
    name = "dagml_ui"
    fastapi_apps = [{"app": _LazyApp(), "url_prefix": URL_PREFIX, "name": "dagml"}]
    external_views = [
        {"name": "dagml", "href": f"{URL_PREFIX}/", "url_route": "dagml", "destination": "nav",
         "category": "browse"},
        {"name": "dagml leaderboard", "href": f"{URL_PREFIX}/datasets/{{DAG_ID}}", "url_route": "dagml-dataset",
         "destination": "dag"},
        {"name": "dagml run", "href": f"{URL_PREFIX}/datasets/{{DAG_ID}}/runs/{{RUN_ID}}",
         "url_route": "dagml-run", "destination": "dag_run"},
    ]
