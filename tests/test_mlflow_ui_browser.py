"""The MLflow UI, in a real headless Chromium, opens a vsr_lab experiment on its runs.

A tiny fit through our code fills a sqlite store; `mlflow ui` serves it on a loopback port. The
address the fit prints shows, in a fresh browser and without a click, the run with its config,
`val/psnr` and the bicubic `val/psnr` (MLflow 3.17 would otherwise open a GenAI traces overview
and a runs table without metrics); the clicks given for the experiments list reach the same view.
Debian's chromium and chromium-driver, driven by selenium (no browser download). The screenshot of
the runs view is what docs/images/mlflow_runs.png shows.
"""

from __future__ import annotations

import shutil

import pytest
from mlflow import MlflowClient

from vsr_lab.config import load_config
from vsr_lab.tracking.mlflow_ui import VIEW_ID, runs_address
from vsr_lab.training.runner import fit

from helpers.common import REPO, TINY_OVERRIDES
from helpers.servers import missing, start_mlflow_server

pytestmark = pytest.mark.browser

CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--window-size=1600,900")
WAIT_S = 120  # a deadline for the page to render, not a speed check
# The text of the element `selector` picks if a user sees it: on screen and not covered (the
# element itself, or something inside it, is what the browser hit-tests at its middle-left).
SEEN = """
const el = document.querySelector(arguments[0]);
if (!el) return null;
const r = el.getBoundingClientRect();
const x = r.left + Math.min(r.width / 2, 20), y = r.top + r.height / 2;
if (r.width === 0 || r.height === 0 || x < 0 || y < 0 || x >= innerWidth || y >= innerHeight) return null;
const top = document.elementFromPoint(x, y);
return top && (top === el || el.contains(top)) ? el.innerText.trim() : null;
"""


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """A tiny fit in a fresh store, and `mlflow ui` on it (stopped at the end)."""
    folder = tmp_path_factory.mktemp("mlflow_ui")
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    cfg = load_config(REPO / "ablations" / "no_gan.yaml", TINY_OVERRIDES + [
        f"tracking.tracking_uri={uri}", f"tracking.artifact_location={folder / 'mlartifacts'}",
        f"output_dir={folder / 'runs'}"])
    _, info = fit(cfg, "ablations/no_gan.yaml")
    run = MlflowClient(uri).get_run(info.mlflow_run_id)
    server = start_mlflow_server(uri, folder / "ui", command="ui")
    try:
        yield server, run, cfg.tracking.experiment, info.summary
    finally:
        server.stop()


@pytest.fixture
def browser(tmp_path):
    """A fresh headless Chromium (its own profile: nothing remembered from an earlier visit).
    selenium is imported here and in the helpers, not at the top, so that a plain `pytest` (which
    collects this file but deselects it) needs no selenium."""
    chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if not (chromium and driver):
        missing("chromium and chromium-driver not installed (Debian packages chromium, chromium-driver)")
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        missing("selenium not installed (pip install -e '.[dev]')")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}"):
        options.add_argument(flag)
    session = webdriver.Chrome(options=options, service=Service(driver))  # a driver path: no Selenium Manager
    try:
        yield session
    finally:
        session.quit()


def cell(run_id: str, column: str) -> str:
    return f'[row-id="{run_id}"] [role="gridcell"][col-id="{column}"]'


def wait(browser, until, what: str):
    from selenium.webdriver.support.ui import WebDriverWait  # see `browser` for the late imports

    return WebDriverWait(browser, WAIT_S).until(until, f"{what} on {browser.current_url}")


def seen(browser, selector: str) -> str:
    """The text of `selector` once a user can see it (an error naming it after WAIT_S)."""
    return wait(browser, lambda b: b.execute_script(SEEN, selector), f"{selector} not visible")


def click(browser, by: str, target: str) -> None:
    from selenium.webdriver.support import expected_conditions as shown

    wait(browser, shown.element_to_be_clickable((by, target)), f"{target} not clickable").click()


def check_scores_shown(browser, run) -> None:
    run_id, metrics = run.info.run_id, run.data.metrics
    assert seen(browser, cell(run_id, "attributes.`Run Name`")).endswith(run.info.run_name)
    assert seen(browser, cell(run_id, "tags.`vsr_lab.config`")) == "no_gan"
    assert float(seen(browser, cell(run_id, "metrics.`val/psnr`"))) == pytest.approx(metrics["val/psnr"])
    assert float(seen(browser, cell(run_id, "metrics.`val/bicubic_psnr`"))) == pytest.approx(
        metrics["val/bicubic_psnr"])
    assert seen(browser, '[role="columnheader"][col-id="metrics.`val/psnr`"]') == "val/psnr"


def test_the_address_a_fit_prints_shows_the_run_and_its_psnr_without_a_click(store, browser, tmp_path):
    server, run, _, summary = store
    experiment = run.info.experiment_id
    assert runs_address(experiment) in summary  # what the user copies; here served on another port
    browser.get(runs_address(experiment, server.url))
    check_scores_shown(browser, run)
    assert "/runs" in browser.current_url and "workflowType=machine_learning" in browser.current_url
    shot = tmp_path / "mlflow_runs.png"
    assert browser.save_screenshot(str(shot))
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_clicks_from_the_home_page_reach_the_same_view(store, browser):
    from selenium.webdriver.common.by import By

    server, run, experiment, _ = store
    browser.get(server.url + "/")
    click(browser, By.XPATH, "//*[normalize-space(text())='Model training']")  # the sidebar switch
    click(browser, By.LINK_TEXT, experiment)  # under Recent Experiments
    assert seen(browser, cell(run.info.run_id, "attributes.`Run Name`")).endswith(run.info.run_name)
    click(browser, By.CSS_SELECTOR, '[data-testid="saved-views-trigger"]')  # "Views"
    click(browser, By.CSS_SELECTOR, f'[data-testid="saved-views-item-{VIEW_ID}"]')
    check_scores_shown(browser, run)
