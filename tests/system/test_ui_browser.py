"""The Airflow UI in a real headless browser (Debian's Chromium through playwright) on the Celery stack.

The stack is the one the backfill tests used (session fixture), so its backfill runs exist; if this
module runs alone, the backfill is run first. The browser logs in through the login form with the stack's
own random password, finds the use-case DAG in the DAG list, opens its runs and finds the three backfill
runs (their run ids, type and state), and saves a screenshot to test-artifacts/system/airflow_ui.png.
A wrong password leaves the browser on the login page with the login error.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import backfill_support as bs
import pytest
from airflow_stack import ADMIN, USE_CASE

pytestmark = [pytest.mark.system, pytest.mark.timeout(900)]

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
SCREENSHOT = bs.ARTIFACTS_DIR / "airflow_ui.png"
TIMEOUT_MS = 30_000


def chromium_path() -> str:
    found = str(CHROMIUM) if CHROMIUM.exists() else shutil.which("chromium")
    if not found:
        pytest.fail("Chromium is not installed (/usr/bin/chromium): apt-get install -y chromium "
                    "(the tests never download a browser)")
    return found


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        instance = p.chromium.launch(executable_path=chromium_path(), headless=True, args=CHROMIUM_ARGS)
        try:
            yield instance
        finally:
            instance.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    context.set_default_timeout(TIMEOUT_MS)
    try:
        yield context.new_page()
    finally:
        context.close()


def submit_login(page, base_url: str, password: str) -> None:
    page.goto(base_url + "/", wait_until="domcontentloaded")
    page.wait_for_url(re.compile(r"/auth/login"))  # the UI sends an anonymous visitor to the login form
    page.get_by_label("Username").fill(ADMIN)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()


def test_wrong_password_shows_the_login_error(celery_stack, page):
    from playwright.sync_api import expect

    submit_login(page, celery_stack.base_url, "admin")
    expect(page.get_by_text("Invalid credentials")).to_be_visible()
    assert "/auth/login" in page.url
    expect(page.get_by_role("button", name="Sign in")).to_be_visible()


def test_ui_shows_the_backfill_runs_of_the_use_case(celery_stack, backfills, page):
    from playwright.sync_api import expect

    outcome = bs.ensure_backfill(celery_stack, backfills)
    submit_login(page, celery_stack.base_url, celery_stack.password)
    page.wait_for_url(lambda url: "/auth/login" not in url)

    # The DAG list, then the use case's page through its link, then its Runs tab.
    page.goto(celery_stack.base_url + "/dags", wait_until="domcontentloaded")
    dag_link = page.get_by_role("link", name=USE_CASE, exact=True).first
    expect(dag_link).to_be_visible()
    expect(page.get_by_text("mlplatform_model_rollback", exact=True).first).to_be_visible()
    dag_link.click()
    page.wait_for_url(re.compile(rf"/dags/{USE_CASE}"))
    page.get_by_role("tab", name="Runs").or_(page.get_by_role("link", name="Runs", exact=True)).first.click()
    page.wait_for_url(re.compile(rf"/dags/{USE_CASE}/runs"))

    expect(page.get_by_text(f"{len(outcome.runs)} Dag Runs")).to_be_visible()
    for run in outcome.runs.values():
        expect(page.get_by_text(run["dag_run_id"], exact=True)).to_be_visible()
    rows = page.get_by_role("row").filter(has_text="backfill__")
    expect(rows).to_have_count(len(outcome.runs))
    for index in range(len(outcome.runs)):
        expect(rows.nth(index)).to_contain_text("Backfill")
        expect(rows.nth(index)).to_contain_text("Success")

    bs.ARTIFACTS_DIR.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOT), full_page=True)
    assert SCREENSHOT.stat().st_size > 10_000
