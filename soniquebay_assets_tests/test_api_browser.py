"""The web page in a real headless Chromium (Debian's chromium + chromium-driver through Selenium; no browser is
downloaded): covers load, search narrows the grid, signing in and Accept persist a decision that
`soniquebay albums --json` then shows. One browser session for the whole module."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

import pytest

from soniquebay_assets_tests.api_support import TOKEN, TWIN_B, ApiServer, build_catalog
from soniquebay_assets_tests.fake_artwork_server import json_reply, serve
from soniquebay_assets_tests.fake_music_services import release_lookup

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"


def _missing() -> str | None:
    if not (os.path.exists(CHROMIUM) and shutil.which("chromedriver")):
        return "chromium and chromium-driver are not installed (apt-get install chromium chromium-driver)"
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install -e .[dev])"
    return None


@pytest.fixture(scope="module")
def browser():
    reason = _missing()
    if reason:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(reason + " and CI=true forbids skipping")
        pytest.skip(reason)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="sb-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                     "--disable-component-update", "--disable-sync", f"--user-data-dir={profile}",
                     "--window-size=1280,1400"):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    downloads = tempfile.mkdtemp(prefix="sb-downloads-")
    options.add_experimental_option("prefs", {"download.default_directory": downloads,
                                              "download.prompt_for_download": False})
    driver = webdriver.Chrome(service=Service(shutil.which("chromedriver") or CHROMEDRIVER), options=options)
    driver.execute_cdp_cmd("Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": downloads})
    driver.implicitly_wait(0)
    driver.downloads = downloads
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)
        shutil.rmtree(downloads, ignore_errors=True)


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    library = build_catalog(tmp_path_factory.mktemp("browser"))
    for musicbrainz in serve():
        musicbrainz.set(f"/ws/2/release/{TWIN_B}", json_reply(release_lookup(
            TWIN_B, "Twin Album", "Twin Artist", "83d91898-7763-47d7-b03b-b92132375c47", [1000, 1000, 1000],
            date="2004-05-01", label="Reissue")))
        with ApiServer(library.data_root, env={"SONIQUEBAY_MUSICBRAINZ_URL": musicbrainz.base_url}) as server:
            yield library, server


def wait_for(driver, script: str, timeout_s: float = 20):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout_s, poll_frequency=0.1).until(lambda d: d.execute_script(script))


def cards(driver) -> list[str]:
    return driver.execute_script("return [...document.querySelectorAll('#grid .card .title')].map(e => e.textContent)")


def test_browse_search_decide_and_see_it_persist(site, browser, tmp_path):
    from selenium.webdriver.common.by import By

    library, server = site
    browser.get(server.base + "/")
    # every cover thumbnail of the grid is fetched and decoded (loading="lazy": the browser asks as they show)
    assert wait_for(browser, "const imgs = [...document.querySelectorAll('#grid img.thumb')];"
                             "return imgs.length === 5 && imgs.every(i => i.complete && i.naturalWidth === 150)")
    assert sorted(cards(browser)) == sorted(library.album_ids)
    assert browser.find_elements(By.CSS_SELECTOR, ".overview svg.wheel path.key")  # the library's picture
    browser.save_screenshot(str(tmp_path / "home.png"))

    search = browser.find_element(By.ID, "search")
    search.send_keys("desert")
    assert wait_for(browser, "return document.querySelectorAll('#grid .card').length === 1")
    assert cards(browser) == ["Red Desert"] and browser.current_url.endswith("/?q=desert")
    search.clear()
    search.send_keys("alpha")  # album artist too
    assert wait_for(browser, "return document.querySelectorAll('#grid .card').length === 2")

    twin = library.album_ids["Twin Album"]
    browser.get(f"{server.base}/albums/{twin}")
    buttons = browser.find_elements(By.CSS_SELECTOR, "#candidates button.accept")
    assert len(buttons) == 2 and all(not b.is_enabled() for b in buttons)  # not signed in: decisions need the token
    assert "sign in" in browser.find_element(By.ID, "candidates").text

    browser.get(f"{server.base}/login#token={TOKEN}")  # the link `soniquebay serve` prints signs in by itself
    wait_for(browser, "return location.pathname === '/' && !!document.querySelector('form[action=\"/logout\"]')")
    browser.get(f"{server.base}/albums/{twin}")
    browser.execute_script("window.beforeDecision = true")
    browser.find_element(By.CSS_SELECTOR, f"button.accept[data-release-id='{TWIN_B}']").click()
    wait_for(browser, "return document.getElementById('match-status').textContent === 'matched'")
    # the page reloads itself after a decision: wait for the new document, which shows the stored state
    wait_for(browser, "return window.beforeDecision === undefined && document.readyState === 'complete' && "
                      "document.getElementById('match-status').textContent === 'matched'")
    browser.save_screenshot(str(tmp_path / "album.png"))

    listed = subprocess.run([sys.executable, "-m", "soniquebay_assets.cli.main", "albums", "--json", "--data-dir",
                             str(library.data_root)], env=server.env, capture_output=True, text=True, timeout=60)
    albums = {a["title"]: a for a in map(json.loads, listed.stdout.splitlines())}
    assert albums["Twin Album"]["match_status"] == "matched"
    assert albums["Twin Album"]["musicbrainz_release_id"] == TWIN_B and albums["Twin Album"]["decided_by"] == "user"

    browser.get(f"{server.base}/tracks/{library.track_ids['Blue Horizon 1']}")
    similar = browser.find_elements(By.CSS_SELECTOR, "ol.similar li a")
    assert len(similar) == len(library.track_ids) - 1, browser.find_element(By.TAG_NAME, "main").text[:2000]
    assert similar[0].text.startswith("Blue Horizon")  # its album's other tracks are nearest
    # make a playlist of tracks like this one, save it, download it from the playlists page
    browser.find_element(By.CSS_SELECTOR, "#make-playlist button[type=submit]").click()
    made = wait_for(browser, "return document.querySelectorAll('#made-playlist ol.playlist li').length")
    assert made >= 5  # as many as the rules let in (one artist at most once in any three entries)
    name = browser.find_element(By.ID, "playlist-name")
    name.clear()
    name.send_keys("Blue evening")
    browser.find_element(By.CSS_SELECTOR, "#save-playlist button").click()
    wait_for(browser, "return document.getElementById('save-message').textContent.startsWith('Saved.')")
    browser.get(f"{server.base}/playlists")
    card = browser.find_element(By.CSS_SELECTOR, ".playlist-card[data-playlist-name='Blue evening']")
    titles = [li.text for li in card.find_elements(By.CSS_SELECTOR, "ol.playlist li a")]
    assert len(titles) == made and titles[0] == "Blue Horizon 1"
    browser.save_screenshot(str(tmp_path / "playlists.png"))
    card.find_element(By.LINK_TEXT, "M3U8").click()
    target = os.path.join(browser.downloads, "Blue evening.m3u8")
    deadline = time.monotonic() + 20
    while not os.path.exists(target) and time.monotonic() < deadline:
        time.sleep(0.1)
    import m3u8

    playlist = m3u8.load(target)
    paths = [s.uri for s in playlist.segments]
    assert len(paths) == made and paths[0].endswith("Blue Horizon/01.flac") and all(os.path.isfile(p) for p in paths)
    assert [s.title for s in playlist.segments][0].endswith("Blue Horizon 1")

    problems = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    assert not problems, problems
