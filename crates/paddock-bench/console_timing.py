"""The approvals benchmark's browser: Debian's headless Chromium through
Selenium, on commands from stdin, one JSON answer per line on stdout.

  open URL      follows a console link; waits until the page is live; from
                then on records when each pending card enters the DOM
                (a MutationObserver, epoch milliseconds)
  shown ID      waits for card ID; answers when it entered the DOM
  load PATH N   navigates to PATH; waits for N cards; answers the ms from
                navigation start to the console's first usable list
                (its "paddock:snapshot-rendered" mark)
"""

import json
import os
import sys
import tempfile

from selenium.webdriver.support.ui import WebDriverWait

# The tests' own Chromium set-up (fixtures/browser.py).
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "../paddock/tests/fixtures"))
import browser  # noqa: E402

OBSERVE = """
window.__shown = {};
const list = document.getElementById('pending');
new MutationObserver((records) => {
  const at = performance.timeOrigin + performance.now();
  for (const r of records) for (const n of r.addedNodes) {
    if (n.dataset && n.dataset.request && !(n.dataset.request in window.__shown)) {
      window.__shown[n.dataset.request] = at;
    }
  }
}).observe(list, {childList: true});
"""


def main():
    profile = tempfile.TemporaryDirectory()
    driver = browser.chromium(profile.name)
    wait = WebDriverWait(driver, 60, poll_frequency=0.005)
    live = "return document.getElementById('status')?.textContent === 'live'"
    print(json.dumps({"ok": "ready"}), flush=True)
    try:
        for line in sys.stdin:
            words = line.split()
            if not words:
                continue
            if words[0] == "open":
                driver.get(words[1])
                wait.until(lambda d: d.execute_script(live))
                driver.execute_script(OBSERVE)
                answer = True
            elif words[0] == "shown":
                key = json.dumps(words[1])
                answer = wait.until(
                    lambda d: d.execute_script(f"return window.__shown[{key}]"))
            elif words[0] == "load":
                base = driver.current_url.split("/console")[0]
                driver.get(base + words[1])
                count = int(words[2])
                wait.until(lambda d: d.execute_script(
                    live + f" && document.querySelectorAll('#pending .card').length === {count}"))
                answer = driver.execute_script(
                    "return performance.getEntriesByName('paddock:snapshot-rendered')[0].startTime")
                driver.execute_script(OBSERVE)
            else:
                answer = None
            print(json.dumps({"ok": answer}), flush=True)
    finally:
        driver.quit()
        profile.cleanup()


if __name__ == "__main__":
    main()
