"""The demo page at ``/``, clicked through in headless Chromium (Debian's ``chromium``, driven by playwright).

Never downloads a browser: skips with the reason when ``chromium`` or playwright is missing.
"""

from __future__ import annotations

from pathlib import Path

import httpx


def _ids(page, selector: str) -> list[str]:
    return page.eval_on_selector_all(selector, "els => els.map(e => e.dataset.itemId)")


def _served(server, path: str) -> list[str]:
    return [it["item_id"] for it in httpx.get(server.url + path).json()["items"]]


def test_page_flow(browser_page, server):
    page = browser_page
    page.goto(server.url + "/")
    page.wait_for_selector("body[data-ready='1']")
    assert "model lm" in page.text_content("#model-info")

    # pick a user: history and recommendations with explanations
    page.select_option("#user-select", "u9")
    page.wait_for_function("document.getElementById('rec-user').textContent === 'u9'")
    page.wait_for_function("document.querySelectorAll('#recs li').length === 10")
    assert page.text_content("#path") == "model"
    history = _ids(page, "#history li")
    recs = _ids(page, "#recs li")
    assert history and not set(history) & set(recs)
    assert page.text_content("#recs li .why").startswith("because you liked ")

    # an event (the "interact" button of the last recommendation) changes the list
    target = recs[-1]
    page.click(f"#recs li[data-item-id='{target}'] button:has-text('interact')")
    page.wait_for_function("document.getElementById('path').textContent.startsWith('history')")
    page.wait_for_function(f"document.querySelector('#history li').dataset.itemId === '{target}'")
    assert target not in _ids(page, "#recs li")

    # a new item with the text of the user's best recommendation is recommended at once
    top = _ids(page, "#recs li")[0]
    info = httpx.get(f"{server.url}/v1/items/{top}").json()
    page.fill("#new-item-id", "page-new")
    page.fill("#new-item-title", info["title"])
    page.fill("#new-item-genres", ", ".join(info["attributes"]["genres"]))
    page.click("#add-item")
    page.wait_for_function("document.getElementById('item-status').textContent.includes('added page-new')")
    page.wait_for_selector("#recs li[data-item-id='page-new']")

    # and found by search, with its nearest neighbour the item whose text it copies
    page.fill("#search-q", "page-new")
    page.click("#search-btn")
    page.wait_for_selector("#search-results li[data-item-id='page-new']")
    page.click("#search-results li[data-item-id='page-new'] button")
    page.wait_for_function("document.getElementById('similar-of').textContent === 'page-new'")
    assert _ids(page, "#similar li")[0] == top

    # an event typed into the form
    page.fill("#event-item", "page-new")
    page.click("#add-event")
    page.wait_for_function("document.querySelector('#history li').dataset.itemId === 'page-new'")
    assert "page-new" not in _ids(page, "#recs li")

    # an error is shown, and the page keeps working
    page.fill("#event-item", "no-such-item")
    page.click("#add-event")
    page.wait_for_function("document.getElementById('status').textContent.includes('unknown item')")
    assert Path(server.run_dir).is_dir() and httpx.get(server.url + "/v1/health").status_code == 200


def test_a_late_answer_for_the_previous_user_is_not_drawn(browser_page, server):
    """Switching users while the first user's answers are still on their way: the page shows the
    second user's history and list under the second user's name, and drops the late answers."""
    page = browser_page
    page.goto(server.url + "/")
    page.wait_for_selector("body[data-ready='1']")
    held = []
    # u4's history and recommendations wait here
    page.route("**/v1/users/u4/**", lambda route: held.append(route))
    page.select_option("#user-select", "u4")
    page.wait_for_function("true")  # let playwright dispatch the held requests
    while len(held) < 2:
        page.wait_for_timeout(50)
    assert page.text_content("#rec-user") != "u4"  # nothing of u4 is drawn yet, not even the name

    page.select_option("#user-select", "u6")
    page.wait_for_function("document.getElementById('rec-user').textContent === 'u6'")
    expected = _served(server, "/v1/users/u6/recommendations?k=10")
    assert _ids(page, "#recs li") == expected

    for route in held:  # u4's answers arrive late
        with page.expect_response(lambda r, url=route.request.url: r.url == url):
            route.continue_()
    page.wait_for_timeout(300)
    assert page.text_content("#rec-user") == "u6"
    assert _ids(page, "#recs li") == expected
    assert _ids(page, "#history li") == _served(server, "/v1/users/u6/history?limit=50")
