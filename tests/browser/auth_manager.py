"""A test auth manager: Airflow's SimpleAuthManager, except that some users may not read some DAGs.

SimpleAuthManager grants by role alone (a viewer reads every DAG), so it cannot show that the
dagml pages refuse a DAG a user may not read. Auth managers are Airflow's extension point for
that decision; the test api-server is configured with this one
(``[core] auth_manager = tests.browser.auth_manager.DagDenyingAuthManager``) and
``DAGML_TEST_DENIED_DAGS="user:dag_id,..."`` names the refusals.
"""

from __future__ import annotations

import os

from airflow.api_fastapi.auth.managers.simple.simple_auth_manager import SimpleAuthManager


def _denied() -> set[tuple[str, str]]:
    pairs = (p.split(":", 1) for p in os.environ.get("DAGML_TEST_DENIED_DAGS", "").split(",") if ":" in p)
    return {(user, dag_id) for user, dag_id in pairs}


class DagDenyingAuthManager(SimpleAuthManager):
    def is_authorized_dag(self, *, method, user, access_entity=None, details=None) -> bool:
        if details is not None and details.id and (user.username, details.id) in _denied():
            return False
        return super().is_authorized_dag(method=method, user=user, access_entity=access_entity, details=details)
