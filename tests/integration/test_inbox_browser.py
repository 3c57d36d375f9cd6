"""The CSM inbox in a real browser: sign in, a worker's alerts show up, filter, and acknowledge end to end.

Real everything: the embedded broker, a worker process alerting deterministically (policy thresholds of
1e-9, escalation off), the inbox app following the topics in-process behind the shared token, and
headless Chromium driven by Selenium typing into the sign-in form and clicking the page's own buttons
(so the page's script sends the session's CSRF token). The acknowledgement must land on the outcomes
topic as a contract-valid ``alert_ack`` naming who signed in, and be counted by the worker, which is what
closes the loop.
"""

from __future__ import annotations

import json
import os
import time
import urllib.request
from pathlib import Path
from typing import Any, Iterator

import pytest
from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select, WebDriverWait

from apps.inbox.page import risk_text, sentence
from apps.inbox.server import InboxServer, create_app
from apps.inbox.view import ACK_NOTE
from pipeline.config.settings import Settings
from pipeline.core.contract import DAY_MS, parse_ts, validate
from tests.integration.conftest import read_topic, wait_for
from tests.integration.scenarios import healthy

pytestmark = pytest.mark.integration

CHROMIUM = "/usr/bin/chromium"
TOKEN = "browser-test-token-5d1e0b7a"
CSM_NAME = "Alice Liddell"
CHROMEDRIVER = "/usr/bin/chromedriver"

POLICY = """
# every model score alerts once (deterministic), no escalation, no repeats within the test
[thresholds]
vip = 1e-9
standard = 1e-9

[alerts]
escalate_delta = 1.0
cooldown_days = 60
"""

#: customer -> (tier, CSM); globex stops logging in and using features half-way, so its risk is the highest
CUSTOMERS = {"acme-vip": ("vip", "alice"), "globex-vip": ("vip", "bob"), "initech-std": ("standard", "alice")}


def _history(cid: str, tier: str, csm: str, start_ms: int) -> list[tuple[str, dict[str, Any]]]:
    out = []
    for src, v in healthy(cid, start_ms, 30):
        if src == "customers":
            v = {**v, "tier": tier, "csm": csm}
        if cid.startswith("globex") and v["type"] in ("feature_use", "login") and parse_ts(v["ts"]) > start_ms + 12 * DAY_MS:
            continue  # still browsing daily (so its history keeps growing), but no longer logging in or using features
        out.append((src, v))
    return out


@pytest.fixture
def chrome(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[webdriver.Chrome]:
    """Headless Chromium through the distribution's chromedriver (never a download: the paths are explicit)."""
    if not os.path.exists(CHROMIUM):
        pytest.skip(f"{CHROMIUM} is missing: install Debian's chromium and chromium-driver "
                    "(scripts/ensure-debian-packages.sh chromium chromium-driver, as `make test` does)")
    monkeypatch.setenv("SE_OFFLINE", "true")  # Selenium Manager, if ever consulted, must not go online
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                f"--user-data-dir={tmp_path / 'chromium-profile'}", "--window-size=1500,900"):
        opts.add_argument(arg)
    service = Service(CHROMEDRIVER, log_output=str(tmp_path / "chromedriver.log"))
    driver = webdriver.Chrome(options=opts, service=service)
    driver.set_page_load_timeout(20)
    try:
        yield driver
    finally:
        driver.quit()  # stops chromium and the chromedriver process selenium started (by pid)


def _api(url: str) -> list[dict[str, Any]]:
    req = urllib.request.Request(url, headers={"Authorization": f"Bearer {TOKEN}"})  # an API client
    with urllib.request.urlopen(req, timeout=5) as r:
        return json.loads(r.read())


def _wait(driver: Any) -> WebDriverWait:
    """A wait that retries when the page re-renders its rows under the condition being checked."""
    return WebDriverWait(driver, 10, ignored_exceptions=(StaleElementReferenceException,))


def _rows(driver: webdriver.Chrome) -> dict[str, Any]:
    return {tr.get_attribute("data-customer"): tr for tr in driver.find_elements(By.CSS_SELECTOR, "tbody tr[data-alert-id]")}


def _screenshot(driver: webdriver.Chrome, path: Path) -> None:
    """The whole page, not just the window: size the window to the document first."""
    height = driver.execute_script("return document.documentElement.scrollHeight")
    driver.set_window_size(1500, max(600, min(int(height) + 40, 3000)))
    assert driver.save_screenshot(str(path)), path


def test_inbox_lists_filters_and_acknowledges_in_a_browser(settings: Settings, start_worker, sender, tmp_path: Path,
                                                           chrome: webdriver.Chrome) -> None:
    policy = tmp_path / "policy.toml"
    policy.write_text(POLICY)
    settings = settings.with_(policy_file=str(policy), inbox_token=TOKEN)
    worker = start_worker(settings)
    server = InboxServer(create_app(settings)).start()  # follows the topics live from before the first alert
    try:
        start = (int(time.time() * 1000) // DAY_MS - 40) * DAY_MS
        records = [r for cid, (tier, csm) in CUSTOMERS.items() for r in _history(cid, tier, csm, start)]
        records.sort(key=lambda r: parse_ts(r[1]["ts"]))
        sender.send_all(records)

        def alerts() -> dict[str, dict[str, Any]]:
            got = {a["customer_id"]: a for a in read_topic(settings, settings.alerts_topic)}
            return got if set(got) == set(CUSTOMERS) else {}

        on_topic = wait_for(alerts, 60, what="one alert per customer on the alert topic")
        listed = wait_for(lambda: len(_api(server.url + "/api/alerts")) == 3 and _api(server.url + "/api/alerts"), 15,
                          what="the inbox to list the three alerts")
        assert {a["alert_id"] for a in listed} == {a["alert_id"] for a in on_topic.values()}
        scores = [a["score"] for a in listed]
        assert scores == sorted(scores, reverse=True) and all(s is not None for s in scores)

        # -- not signed in: the page sends the browser to the sign-in form; a wrong token is refused there
        chrome.get(server.url + "/")
        _wait(chrome).until(lambda d: "/login" in d.current_url)
        assert not _rows(chrome)
        chrome.find_element(By.ID, "name").send_keys(CSM_NAME)
        chrome.find_element(By.ID, "token").send_keys("not-the-token-at-all")
        chrome.find_element(By.ID, "sign-in").click()
        _wait(chrome).until(lambda d: d.find_elements(By.ID, "login-error"))
        assert "Wrong token" in chrome.find_element(By.ID, "login-error").text
        _screenshot(chrome, tmp_path / "login.png")
        assert not chrome.get_cookies()
        chrome.find_element(By.ID, "token").send_keys(TOKEN)
        chrome.find_element(By.ID, "sign-in").click()
        _wait(chrome).until(lambda d: d.current_url.rstrip("/") == server.url and _rows(d))
        [cookie] = chrome.get_cookies()
        assert cookie["name"] == "churnwatch_session" and cookie["httpOnly"] and cookie["sameSite"] == "Strict"
        assert chrome.find_element(By.ID, "user").text == CSM_NAME

        # -- the page lists every open alert with its reasons and play
        rows = _rows(chrome)
        assert list(rows) == [a["customer_id"] for a in listed]  # riskiest first
        page = chrome.find_element(By.TAG_NAME, "main").text
        for cid, a in on_topic.items():
            row = rows[cid].text
            tier, csm = CUSTOMERS[cid]
            assert tier in row and csm in row and risk_text(a["score"]) in row, row
            assert a["reasons"], a
            for r in a["reasons"]:
                assert sentence(r["text"]) in row, (r["text"], row)
            assert a["play"] and a["play"] in row
        assert "3 open alerts" in chrome.find_element(By.ID, "count").text and page
        _screenshot(chrome, tmp_path / "inbox.png")

        # -- the tier filter (select box -> reload with ?tier=vip)
        Select(chrome.find_element(By.NAME, "tier")).select_by_value("vip")
        _wait(chrome).until(lambda d: "tier=vip" in d.current_url and len(_rows(d)) == 2)
        assert set(_rows(chrome)) == {"acme-vip", "globex-vip"}
        Select(chrome.find_element(By.NAME, "csm")).select_by_value("bob")
        _wait(chrome).until(lambda d: "csm=bob" in d.current_url and set(_rows(d)) == {"globex-vip"})

        # -- acknowledge globex: the row goes, an alert_ack with its id lands on the outcomes topic
        chrome.get(server.url + "/?tier=vip")
        target = on_topic["globex-vip"]
        _rows(chrome)["globex-vip"].find_element(By.CSS_SELECTOR, "button.ack").click()
        _wait(chrome).until(lambda d: set(_rows(d)) == {"acme-vip"})
        assert "Acknowledged the alert for globex-vip" in chrome.find_element(By.ID, "notice").text
        _screenshot(chrome, tmp_path / "inbox-after-ack.png")

        def acks() -> list[dict[str, Any]]:
            return [o for o in read_topic(settings, settings.topic("outcomes")) if o.get("type") == "alert_ack"]

        [ack] = wait_for(acks, 15, what="the alert_ack on the outcomes topic")
        assert ack["alert_id"] == target["alert_id"] and ack["customer_id"] == "globex-vip"
        assert ack["note"] == ACK_NOTE
        assert ack["acknowledged_by"] == CSM_NAME  # who signed in, from the session
        validate("outcomes", ack, now_ms=int(time.time() * 1000))  # a valid event under the contract
        # the worker reads it as any acknowledgement of an alert it raised
        wait_for(lambda: worker.metric('churnwatch_alerted_outcomes_total{type="alert_ack"}') >= 1, 30,
                 what="the worker to count the acknowledgement")

        # a fresh load (and the API) no longer shows it; the other alerts stay open
        chrome.get(server.url + "/")
        assert set(_rows(chrome)) == {"acme-vip", "initech-std"}
        assert {a["customer_id"] for a in _api(server.url + "/api/alerts")} == {"acme-vip", "initech-std"}
        with urllib.request.urlopen(server.url + "/healthz", timeout=5) as r:
            health = json.loads(r.read())
        assert health["status"] == "ok" and health["caught_up"] and health["open"] == 2

        # -- signing out: back to the sign-in form, and the page is closed to this browser again
        chrome.find_element(By.ID, "sign-out").click()
        _wait(chrome).until(lambda d: "/login" in d.current_url)
        chrome.get(server.url + "/")
        _wait(chrome).until(lambda d: "/login" in d.current_url)
        assert not _rows(chrome)
    finally:
        server.stop()
