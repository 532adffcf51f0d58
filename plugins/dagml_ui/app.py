"""The dagml FastAPI app the api-server mounts under ``/dagml``: HTML pages and their JSON twins.

Airflow mounts a plugin's app without authentication, so every route here depends on Airflow's
own: ``get_user`` (the Bearer token, else the ``_token`` cookie the UI's login sets) and, for a
dataset's routes, ``requires_access_dag("GET")`` on the ``dag_id`` in the path. The datasets
list shows only DAGs the caller may read. No token: 401; a token of a user who may not read
that DAG: 403; an unknown dataset or run: 404; anything else: 500 with its message.
"""

from __future__ import annotations

import logging
from pathlib import Path

from fastapi import Depends, FastAPI, Request
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse
from starlette.exceptions import HTTPException

from airflow.api_fastapi.core_api.security import GetUserDep, requires_access_dag

log = logging.getLogger(__name__)
ReadDag = Depends(requires_access_dag("GET"))


def readable(user, dag_ids: list[str]) -> list[str]:
    """The DAG ids among ``dag_ids`` that ``user`` may read, as Airflow's auth manager decides."""
    from airflow.api_fastapi.app import get_auth_manager
    from airflow.api_fastapi.auth.managers.models.resource_details import DagDetails
    from airflow.models.dag import DagModel

    if not dag_ids:
        return []
    teams = DagModel.get_dag_id_to_team_name_mapping(dag_ids)
    manager = get_auth_manager()
    return [d for d in dag_ids if manager.is_authorized_dag(
        method="GET", details=DagDetails(id=d, team_name=teams.get(d)), user=user)]


def _wants_html(request: Request) -> bool:
    return not request.url.path.startswith(f"{request.scope.get('root_path', '')}/api/")


def create_app() -> FastAPI:
    from . import data, pages

    app = FastAPI(title="dagml", description="dagml's leaderboards and runs, behind Airflow's login",
                  docs_url=None, redoc_url=None)

    @app.exception_handler(data.NotFound)
    async def not_found(request: Request, exc: data.NotFound):
        if _wants_html(request):
            return HTMLResponse(pages.message(request, "Not found", str(exc)), status_code=404)
        return JSONResponse({"detail": str(exc)}, status_code=404)

    @app.exception_handler(HTTPException)
    async def refused(request: Request, exc: HTTPException):
        if _wants_html(request):
            text = "Log in to Airflow first." if exc.status_code == 401 else f"{exc.detail}: you may not read this."
            return HTMLResponse(pages.message(request, exc.detail, text), status_code=exc.status_code)
        return JSONResponse({"detail": exc.detail}, status_code=exc.status_code)

    @app.middleware("http")
    async def failed(request: Request, call_next):
        try:
            return await call_next(request)
        except Exception as exc:  # a 500 that says what went wrong (a DB that does not answer, a bad row)
            log.exception("dagml page %s failed", request.url.path)
            text = f"dagml could not answer {request.url.path}: {type(exc).__name__}: {exc}"
            if _wants_html(request):
                return HTMLResponse(pages.message(request, "Error", text), status_code=500)
            return JSONResponse({"detail": text}, status_code=500)

    # JSON
    @app.get("/api/datasets")
    def api_datasets(user: GetUserDep):
        return {"datasets": data.datasets(readable(user, data.dataset_ids()))}

    @app.get("/api/datasets/{dag_id}", dependencies=[ReadDag])
    def api_dataset(dag_id: str):
        return data.dataset(dag_id)

    @app.get("/api/datasets/{dag_id}/runs/{run_id}", dependencies=[ReadDag])
    def api_run(dag_id: str, run_id: str):
        return data.run(dag_id, run_id)

    @app.get("/api/datasets/{dag_id}/runs/{run_id}/progress", dependencies=[ReadDag])
    def api_progress(dag_id: str, run_id: str):
        return data.progress(dag_id, run_id)

    # pages
    @app.get("/", response_class=HTMLResponse)
    def datasets_page(request: Request, user: GetUserDep):
        return pages.datasets(request, data.datasets(readable(user, data.dataset_ids())))

    @app.get("/datasets/{dag_id}", response_class=HTMLResponse, dependencies=[ReadDag])
    def dataset_page(request: Request, dag_id: str):
        return pages.dataset(request, data.dataset(dag_id))

    @app.get("/datasets/{dag_id}/runs/{run_id}", response_class=HTMLResponse, dependencies=[ReadDag])
    def run_page(request: Request, dag_id: str, run_id: str):
        run = data.run(dag_id, run_id)
        progress = data.progress(dag_id, run_id) if run["state"] == "running" else None
        return pages.run(request, run, progress)

    @app.get("/datasets/{dag_id}/runs/{run_id}/report", response_class=HTMLResponse, dependencies=[ReadDag])
    def report_page(dag_id: str, run_id: str):
        return HTMLResponse(data.report(dag_id, run_id))

    @app.get("/static/plotly.min.js", include_in_schema=False)
    def plotly_js(user: GetUserDep):
        import plotly

        return FileResponse(Path(plotly.__file__).parent / "package_data" / "plotly.min.js",
                            media_type="text/javascript", headers={"Cache-Control": "private, max-age=86400"})

    return app

