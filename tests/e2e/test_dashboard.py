"""The operators' dashboard in a real browser (Debian's headless Chromium, through
Selenium) against a whole running system: signing in (and being refused), the tasks list
with its filters, pages and live refresh, a task started and watched to its end, a
cancel, the api's refusal shown, a condition holding markup shown as text, the services
page with an open breaker, the keyboard, contrast and a phone's width. Each page's
screenshot lands in .local/screenshots (the README's are copies of them).

The browser runs in Asia/Tokyo so that "times in the user's zone" cannot pass by luck in
a UTC machine. Tests share one system and run in file order: the last opens the `slow`
service's breaker.
"""

from __future__ import annotations

import re
import secrets
import time
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta

import pymongo
import pytest
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.select import Select

from taskmill.errors import ApiError
from taskmill.token_config import digest
from tests.browser import Page, chromium, close
from tests.servers import Servers
from tests.system import System, launch

pytestmark = pytest.mark.e2e

ZONE, ZONE_OFFSET = "Asia/Tokyo", timedelta(hours=9)
PAGE_SIZE = 20  # the tasks page's
OPS = secrets.token_hex(16)  # a client token, for the operator
WORKER = secrets.token_hex(16)  # a worker token: not for the dashboard
TOKENS = [{"name": "ops", "role": "client", "sha256": digest(OPS)},
          {"name": "worker-aaa", "role": "worker", "services": ["aaa"], "sha256": digest(WORKER)}]
PROBE = "<script>window.__xss = 1</script><img src=x onerror=\"window.__xss = 2\">"
KEY_PROBE = "<img src=x onerror=alert(1)>"  # a key may not hold a dot


@pytest.fixture(scope="module")
def system(tmp_path_factory, kafka_servers, mongo_uri, mysql_settings) -> Iterator[System]:
    unique = uuid.uuid4().hex[:10]
    servers = Servers(kafka_servers, mongo_uri, mongo_uri, mysql_settings)
    system = launch(tmp_path_factory.mktemp("dashboard"), servers, f"t_{unique}", unique,
                    workers=("aaa", "bbb", "slow"), lifecycle={"cancel_grace_s": 5},
                    settings={"tokens": TOKENS, "breaker": {"failures": 2, "cooldown_s": 600}})
    yield system
    system.shutdown()
    with pymongo.MongoClient(mongo_uri) as client:
        client.drop_database(f"t_{unique}")


@pytest.fixture
def page(system: System, browser: None) -> Iterator[Page]:
    driver = chromium(zone=ZONE)
    try:
        yield Page(driver, f"http://127.0.0.1:{system.api_port}")
    finally:
        close(driver)


def signed_in(page: Page, hash_: str = "") -> Page:
    page.open(hash_)
    page.sign_in(OPS)
    page.wait("the navigation", lambda: page.find("#nav").is_displayed())
    return page


def rows(page: Page) -> list[tuple[str, str, str]]:
    """The tasks table: (task_id, service, status) of each row, top to bottom."""
    return [tuple(cell.text for cell in row.find_elements("css selector", "td")[:3])
            for row in page.all("#tasks tbody tr")]


def test_a_wrong_token_and_a_worker_token_are_refused_with_the_apis_reason(system, page):
    page.open()
    page.sign_in("not-a-token")
    page.wait_text("#login-status", "unauthorized: missing or wrong token")
    page.screenshot("sign-in-refused")
    page.sign_in(WORKER)
    page.wait_text("#login-status", "token worker-aaa may not call service_task: it is a worker token")
    assert not page.find("#nav").is_displayed()
    assert page.driver.execute_script("return sessionStorage.length") == 0  # nothing kept
    page.sign_in(OPS)
    page.wait_css("#tasks-body")
    # The token is kept in the tab's session only: never in an address, never in a log.
    assert page.driver.execute_script("return sessionStorage.getItem('taskmill.token')") == OPS
    assert OPS not in page.driver.current_url
    assert OPS not in system.logs() and WORKER not in system.logs()
    assert page.refused() == []


def created_apart(system: System, count: int) -> list[str]:
    """`count` tasks of `aaa`, each sent after the clock's millisecond turned past the last
    one's answer, so each is stored a millisecond later (the store keeps milliseconds, and
    tasks of one millisecond are listed in their random task_id order)."""
    created = []
    for i in range(count):
        created.append(system.api.create_task("aaa", {"n": i}))
        answered = time.time_ns() // 1_000_000
        while time.time_ns() // 1_000_000 == answered:  # less than a millisecond
            pass
    return created


def test_an_operator_filters_pages_and_sees_new_tasks_live_newest_first(system, page):
    created = created_apart(system, PAGE_SIZE + 3)
    system.api.create_task("bbb", {"n": 0})
    signed_in(page)
    page.wait("a table of tasks", lambda: len(rows(page)) > 0)

    Select(page.find("#f-service")).select_by_value("aaa")
    page.wait("the service filter", lambda: "service=aaa" in page.driver.current_url)
    Select(page.find("#f-status")).select_by_value("ready")
    page.wait("both filters", lambda: page.driver.current_url.endswith("#/tasks?service=aaa&status=ready"))
    total = system.api.tasks(service="aaa", status="ready")["total"]
    assert total >= len(created)
    pages = -(-total // PAGE_SIZE)
    page.wait_text("#page-of", f"Page 1 of {pages} · {total} tasks")
    first = rows(page)
    assert len(first) == PAGE_SIZE
    assert {(service, status) for _, service, status in first} == {("aaa", "ready")}
    assert [task_id for task_id, _, _ in first] == created[:-PAGE_SIZE - 1:-1]  # newest first
    page.screenshot("tasks-filtered")

    page.find("a[rel=next]").click()
    page.wait_text("#page-of", f"Page 2 of {pages}")
    second = [task_id for task_id, _, _ in rows(page)]
    assert second and not set(second) & {task_id for task_id, _, _ in first}
    assert created[0] in second

    page.find("a[rel=prev]").click()
    page.wait_text("#page-of", "Page 1 of")
    newer = system.api.create_task("aaa", {"n": "live"})  # appears without a reload
    page.wait("the new task at the top", lambda: rows(page)[0][0] == newer)
    page.wait_text("#page-of", f"{total + 1} tasks")


def test_an_operator_starts_a_task_and_watches_it_run_to_its_result(system, page):
    task_id = system.api.create_task("slow", {"sleep_s": 4, "progress_every_s": 0.5})
    signed_in(page, f"#/task/{task_id}")
    page.wait_text("#f-status", "ready")
    assert page.find("#f-pending").text == "not started"
    assert page.find("#result").text == "Not finished yet."

    page.find("#start").click()
    page.wait_css("dialog[open] #confirm-yes").click()
    page.wait_text("#f-status", "running")
    page.wait("progress", lambda: 0 < int(page.find("#f-progress").get_attribute("value")) < 100)
    page.screenshot("task-running")
    page.wait_text("#f-status", "finished", timeout_s=30)
    page.wait_text("#result", '"pid"')
    events = [(item.find_element("css selector", ".chip").text,
               item.find_element("css selector", ".attempt").text) for item in page.all("#history li")]
    assert events[-2:] == [("running", "attempt 1"), ("finished", "attempt 1")]
    assert page.find("#start").get_attribute("disabled") is not None  # finished: not startable
    page.screenshot("task")

    # Times are shown in the browser's zone (Tokyo), the instant kept in `datetime`.
    created = page.find("#summary time")
    instant = datetime.fromisoformat(created.get_attribute("datetime").replace("Z", "+00:00"))
    shown = re.search(r"(\d\d):(\d\d):(\d\d)", created.text)
    assert shown and shown.group(0) == (instant + ZONE_OFFSET).strftime("%H:%M:%S")
    assert page.find("#zone").text == ZONE
    assert page.refused() == []


def test_a_cancel_asks_first_and_the_apis_refusal_is_shown(system, page):
    task_id = system.api.create_task("slow", {"sleep_s": 60}, start=True)
    system.wait_until("the task runs", lambda: system.statuses([task_id])[0]["status"] == "running")
    signed_in(page, f"#/task/{task_id}")
    page.wait_text("#f-status", "running")

    page.find("#cancel").click()
    page.wait_css("dialog[open] #confirm-no").click()  # thought better of it
    page.wait("the dialog gone", lambda: not page.all("dialog"))
    assert system.statuses([task_id])[0]["status"] == "running"

    page.find("#cancel").click()
    page.wait_css("dialog[open] #cancel-reason").send_keys("not needed")
    page.find("#confirm-yes").click()
    page.wait_text("#f-status", "failed (cancelled)", timeout_s=30)
    assert page.find("#f-message").text == "cancelled: not needed"

    # A page that is not live still shows a task as ready after someone else started it:
    # its Start is refused by the api, and the page says why.
    other = system.api.create_task("slow", {"sleep_s": 30})
    page.go(f"#/task/{other}")
    page.wait_text("#f-status", "ready")
    page.find("#live").click()
    system.api.start_task(other)
    system.wait_until("the other task runs", lambda: system.statuses([other])[0]["status"] == "running")
    page.find("#start").click()
    page.wait_css("dialog[open] #confirm-yes").click()
    shown = page.wait_text("#action-status [role=alert]", f"task {other} is").text
    with pytest.raises(ApiError) as refused:
        system.api.start_task(other)
    assert (refused.value.http_status, shown) == (409, refused.value.message)
    page.screenshot("task-refused")


def test_markup_in_a_condition_or_a_message_is_shown_as_text_and_never_runs(system, page):
    task_id = system.api.create_task("aaa", {"note": PROBE, KEY_PROBE: "as a key"})
    system.api.cancel_task(task_id, PROBE)
    signed_in(page, "#/tasks?service=aaa&status=failed")
    row = page.wait_css(f"tr[data-task='{task_id}']")
    as_json = PROBE.split('"')[0]  # JSON shows the quote escaped: compare up to it
    assert as_json in row.text
    page.go(f"#/task/{task_id}")
    page.wait_text("#f-message", f"cancelled: {PROBE}")
    assert as_json in page.find("#condition").text and KEY_PROBE in page.find("#condition").text
    assert page.all("#main img, #main script") == []
    assert page.driver.execute_script("return window.__xss") is None
    assert page.refused() == []


CONTRAST = """
const rgb = (c) => c.match(/[\\d.]+/g).slice(0, 3).map(Number);
const lum = ([r, g, b]) => [r, g, b].map((v) => { v /= 255;
  return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; })
  .reduce((sum, v, i) => sum + v * [0.2126, 0.7152, 0.0722][i], 0);
const background = (el) => { for (; el; el = el.parentElement) {
  const c = getComputedStyle(el).backgroundColor;
  if (!c.startsWith("rgba") || !c.endsWith(", 0)")) return c; } return "rgb(255, 255, 255)"; };
const ratio = (el) => { const [a, b] = [lum(rgb(getComputedStyle(el).color)), lum(rgb(background(el)))];
  return (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05); };
return [...document.querySelectorAll(
  ".chip, a, button:not([disabled]), td, dt, dd, label, h1, h2, .help, .updated, .foot, .notice")]
  .filter((el) => el.offsetParent !== null && el.textContent.trim())
  .map((el) => [el.tagName + "." + el.className + ": " + el.textContent.trim().slice(0, 30), ratio(el)])
  .filter(([, r]) => r < 4.5);
"""
UNLABELLED = """
return [...document.querySelectorAll("input, select, textarea, button")]
  .filter((el) => !(el.labels && el.labels.length) && !el.getAttribute("aria-label")
    && !el.textContent.trim())
  .map((el) => el.outerHTML);
"""


def test_every_page_works_by_keyboard_has_labels_and_contrast_and_fits_a_phone(system, page):
    task_id = system.api.create_task("bbb", {"n": "keyboard"})
    signed_in(page, "#/tasks?service=bbb")
    page.wait_css(f"tr[data-task='{task_id}']")
    for hash_, ready in (("#/tasks", "#tasks"), (f"#/task/{task_id}", "#f-status"),
                         ("#/services", ".service")):
        page.go(hash_)
        page.wait_css(ready)
        assert page.driver.execute_script(UNLABELLED) == [], hash_
        assert page.driver.execute_script(CONTRAST) == [], hash_
        if hash_ == "#/tasks":
            page.screenshot("tasks")  # every status the tests above left

    # Keyboard only: tab to the first task's link, Enter opens it.
    page.go("#/tasks?service=bbb")
    page.wait_css(f"tr[data-task='{task_id}']")
    keys = ActionChains(page.driver)
    for _ in range(40):
        keys.send_keys(Keys.TAB).perform()
        focused = page.driver.switch_to.active_element
        if focused.text == task_id:
            break
    else:
        pytest.fail("no task link took the keyboard's focus in 40 tabs")
    focused.send_keys(Keys.ENTER)
    page.wait_text("#task-id", task_id)

    page.driver.set_window_size(390, 844)  # a phone
    for hash_, ready, name in (("#/tasks?service=bbb", "#tasks", "tasks-phone"),
                               (f"#/task/{task_id}", "#f-status", "task-phone")):
        page.go(hash_)
        page.wait_css(ready)
        assert page.driver.execute_script(
            "return document.documentElement.scrollWidth <= window.innerWidth"), hash_
        page.screenshot(name)


def test_the_services_page_shows_counts_the_last_hour_and_an_open_breaker(system, page):
    failing = [system.api.create_task("slow", {"fail": "model diverged"}, start=True) for _ in range(2)]
    system.wait_final(failing)

    def stats(service: str) -> dict:
        return next(s for s in system.api.call("/api/service_stats")["data"] if s["service"] == service)

    signed_in(page, "#/services")
    page.wait_text("#svc-slow .breaker", "breaker open", timeout_s=30)
    page.wait_text("#svc-aaa .breaker", "breaker closed")
    page.wait_text("#svc-aaa [data-fact=workers]", "1", timeout_s=30)
    for service in ("aaa", "bbb", "slow"):
        def matches(service: str = service) -> bool:
            now = stats(service)
            cells = {c.get_attribute("data-status"): c.find_element("css selector", "a").text
                     for c in page.all(f"#svc-{service} li[data-status]")}
            return cells == {k: str(v) for k, v in now["counts"].items()} and \
                page.find(f"#svc-{service} [data-fact=failed]").text == str(now["last_hour"]["failed"])
        page.wait(f"{service}'s counts as the api has them", matches)
    slow = stats("slow")
    assert slow["last_hour"]["failed"] >= 2 and slow["breaker"]["state"] == "open"
    rate = slow["last_hour"]["failure_rate"]
    assert page.find("#svc-slow [data-fact=failure-rate]").text == f"{rate * 100:.1f} %"
    page.screenshot("services")
    page.find("#svc-slow li[data-status=failed] a").click()
    page.wait("the failed tasks of slow", lambda: page.driver.current_url.endswith(
        "#/tasks?service=slow&status=failed"))
    page.wait_css(f"tr[data-task='{failing[0]}']")
    assert page.refused() == []
