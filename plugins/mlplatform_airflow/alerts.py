"""Alert delivery as an Airflow notifier.

The pipeline (Airflow-free) writes every breach to ``s3://<bucket>/<use case>/alerts/``; this notifier
delivers it: always to the task log at WARNING (visible in the UI), and to a webhook when
``MLPLATFORM_ALERT_WEBHOOK`` is set (Slack/Teams/PagerDuty-style JSON POST). The webhook URL is a secret
and never logged.
"""

from __future__ import annotations

import json
import logging
import os
import urllib.request
from typing import Any

from airflow.sdk import BaseNotifier

log = logging.getLogger(__name__)

ENV_WEBHOOK = "MLPLATFORM_ALERT_WEBHOOK"


class AccuracyAlertNotifier(BaseNotifier):
    """Announce that a use case's realised accuracy decayed past its spec's threshold."""

    template_fields = ("use_case",)

    def __init__(self, use_case: str, summary: dict[str, Any]) -> None:
        super().__init__()
        self.use_case = use_case
        self.summary = summary

    def message(self, context: Any) -> dict[str, Any]:
        run = context.get("dag_run")
        return {"alert": "accuracy_decay", "use_case": self.use_case,
                "run_id": getattr(run, "run_id", None), "reason": self.summary.get("breach_reason"),
                "summary_uri": self.summary.get("summary_uri")}

    def notify(self, context: Any) -> None:
        payload = self.message(context)
        log.warning("ALERT %s: %s (%s)", self.use_case, payload["reason"], payload["summary_uri"])
        url = os.environ.get(ENV_WEBHOOK)
        if not url:
            return
        request = urllib.request.Request(url, data=json.dumps(payload).encode(), method="POST",
                                         headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=10):  # noqa: S310 - operator-configured URL
                pass
        except OSError as exc:  # delivery failure must not fail the pipeline; the S3 record stays
            log.error("alert webhook delivery failed: %s", type(exc).__name__)
