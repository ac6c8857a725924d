"""Surface invalid use-case specs in the Airflow UI (as this file's import error), naming file and field.

The DAGs of valid use cases are built by use_case_pipelines.py and keep loading; this module defines no
DAG. It exists so that a rejected spec is visible to operators, not only in the dag-processor log.
"""

from mlplatform.errors import SpecError
from mlplatform.spec import load_all_specs

_, _errors = load_all_specs()
if _errors:
    raise SpecError("invalid use-case spec(s); their DAGs are not built:\n\n" + "\n\n".join(_errors.values()))
