"""The accuracy alert notifier delivers to a real HTTP endpoint, and a dead endpoint never fails the task."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

from mlplatform_airflow.alerts import ENV_WEBHOOK, AccuracyAlertNotifier

SUMMARY = {"breach": True, "breach_reason": "realised wape 0.61 vs backtest 0.44",
           "summary_uri": "s3://mlplatform/demand_forecast/accuracy/run_date=2025-06-30/summary.json"}


class _Run:
    run_id = "scheduled__2025-06-30"


def test_the_alert_is_posted_to_the_webhook(monkeypatch):
    received = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 - http.server API
            received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.handle_request, daemon=True).start()
    monkeypatch.setenv(ENV_WEBHOOK, f"http://127.0.0.1:{server.server_port}/hook")
    AccuracyAlertNotifier(use_case="demand_forecast", summary=SUMMARY).notify({"dag_run": _Run()})
    server.server_close()
    assert received == [{"alert": "accuracy_decay", "use_case": "demand_forecast", "run_id": _Run.run_id,
                         "reason": SUMMARY["breach_reason"], "summary_uri": SUMMARY["summary_uri"]}]


def test_an_unreachable_webhook_is_logged_without_the_url_and_does_not_raise(monkeypatch, caplog):
    monkeypatch.setenv(ENV_WEBHOOK, "http://127.0.0.1:9/secret-token-in-path")
    AccuracyAlertNotifier(use_case="demand_forecast", summary=SUMMARY).notify({"dag_run": _Run()})
    assert "ALERT demand_forecast" in caplog.text and "delivery failed" in caplog.text
    assert "secret-token-in-path" not in caplog.text
