"""A randomized driver of the real page, shared by tests/test_page_random.py (a short run in CI) and
benchmarks/bench_page_random.py (a long one): two tabs of one project in Chromium, driven with clicks, keys typed
ahead, ← and → across page ends, page turns, sort and filter changes, undo, tiles picked with Shift- and Ctrl-click,
and a round that finishes meanwhile. It records, in each tab, what the detail view named when each key was pressed
(a listener of its own, ahead of the page's), every label action the page sent, and every label call the server
made; then checks them against each other:

- every label went to the image the detail view named when its key was pressed (a key pressed while the detail
  view said it was waiting goes to an image it named after), or to the tiles picked then;
- nothing was dropped: as many label sends as label keys, as many server calls as sends, in each tab;
- every tab's tiles and detail view equal the database soon after the last action, or after a round's end
  (`sync_seconds` and `round_sync_seconds` say how long it took, each time it was checked).
"""

from __future__ import annotations

import json
import random
import statistics
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from playwright.sync_api import TimeoutError as PlaywrightTimeout

from engine.views.gallery import GalleryQuery
from engine.learning.selftrain.config import RoundConfig
from storage.gallery import GALLERY_SORTS, GALLERY_STATUSES
from tests.browser import open_page

SORT_NAMES = {"queue": "review queue", "confidence_up": "confidence ↑", "confidence_down": "confidence ↓",
              "name": "file name", "match": "best match"}

# What a person does, and how often (weights): mostly labels, often typed ahead, and every kind of move between.
ACTIONS = {"click": 14, "key": 26, "burst": 10, "step": 14, "page": 5, "sort": 3, "status": 3, "undo": 5,
           "pick": 4, "switch": 6, "pause": 6, "wait": 4}

# Installed in each tab before the page's own scripts: a capture listener sees a key before the page acts on it.
INSTRUMENT = """
window.__presses = [];
window.__named = [];
const named = () => {
  const view = document.querySelector('#detail-view .detail-view');
  const title = view && view.dataset.imageId && view.querySelector('.detail-title strong');
  return title ? title.textContent : null;
};
document.addEventListener('keydown', (event) => {
  const target = event.target, tag = target && target.tagName;
  window.__presses.push({key: event.key, shown: named(), namedSoFar: window.__named.length,
                         typing: tag === 'INPUT' || tag === 'TEXTAREA',
                         debug: named() ? '' : document.querySelector('#detail-view').innerHTML.slice(-900),
                         picked: [...document.querySelectorAll('#gallery .tile.picked')].map(t => t.dataset.path)});
  // a key pressed while "waiting" acts on the image named next, also the one named before the wait: mutation records
  // come in batches, so the observer may never see the waiting state between two namings of one image
  if (!named()) last = null;
}, true);
let last = null;  // a name again after "waiting" counts again
const note = () => {
  const now = named();
  if (now !== last) { last = now; if (now) window.__named.push(now); }
};
// the page moves the detail view ahead through labelloop.detailAhead: what it named just before counts as shown (a
// key that waited acts on it and moves on in one go, between two mutation records)
const moveAhead = window.labelloop.detailAhead;
window.labelloop.detailAhead = (tile) => { note(); moveAhead(tile); note(); };
new MutationObserver(note).observe(document, {childList: true, subtree: true, characterData: true, attributes: true,
                      attributeFilter: ['data-image-id']});
"""

LABEL_KINDS = ("class", "none", "accept")


@dataclass
class Tab:
    page: object
    sends: list = field(default_factory=list)  # the page's label and undo sends, in order: event data + session
    session: str | None = None


@dataclass
class FuzzReport:
    actions: int
    by_kind: dict
    label_keys: int
    label_sends: int
    server_calls: int
    mismatches: list
    sync_seconds: list  # after the last action
    round_sync_seconds: list  # after a round's end
    wall_seconds: float
    round_finished: bool
    stalls: list = field(default_factory=list)  # actions the page did not let the driver do in time

    def summary(self) -> dict:
        sync = self.sync_seconds or [0.0]
        return {"actions": self.actions, "by_kind": self.by_kind, "label_keys": self.label_keys,
                "label_sends": self.label_sends, "server_calls": self.server_calls,
                "mismatches": len(self.mismatches), "first_mismatches": self.mismatches[:5],
                "sync_checks": len(self.sync_seconds), "sync_seconds_median": round(statistics.median(sync), 2),
                "sync_seconds_p95": round(_percentile(sync, 95), 2), "sync_seconds_max": round(max(sync), 2),
                "round_end_sync_seconds": [round(s, 2) for s in self.round_sync_seconds],
                "wall_seconds": round(self.wall_seconds, 1),
                "actions_per_second": round(self.actions / max(self.wall_seconds, 1e-9), 2),
                "round_finished": self.round_finished, "stalls": len(self.stalls), "first_stalls": self.stalls[:5]}


def _percentile(values: list[float], percent: float) -> float:
    """The nearest-rank percentile: the smallest value with at least `percent` % of the values at or below it."""
    ordered = sorted(values)
    return ordered[max(0, -(-len(ordered) * percent // 100) - 1)]


def _record_sends(tab: Tab):
    def seen(request):
        if "/queue/join" not in request.url or request.method != "POST":
            return
        try:
            body = json.loads(request.post_data or "{}")
        except ValueError:
            return
        data = body.get("event_data") or {}
        tab.session = body.get("session_hash") or tab.session
        if data.get("kind") in LABEL_KINDS or ("sequence" in data and set(data) == {"sequence"}):
            tab.sends.append(data)  # a label ({kind, ...}) or an undo ({sequence})
    tab.page.on("request", seen)


def _record_server_calls(workspace, monkeypatch) -> list:
    """Every label, accept and undo call the server made, with its page session."""
    calls = []
    for name in ("label", "accept", "undo"):
        real = getattr(workspace.labeling, name)

        def recorded(*args, _real=real, _name=name, **kwargs):
            calls.append((_name, kwargs.get("session")))
            return _real(*args, **kwargs)

        monkeypatch.setattr(workspace.labeling, name, recorded)
    return calls


def _choose(page, label: str, option: str) -> None:
    """Pick `option` in a dropdown, as a person scrolls up to the filters first; tried again when the list opened
    where the window no longer is (a key typed before it moved the selection into view meanwhile)."""
    for _ in range(3):
        page.evaluate("() => window.scrollTo(0, 0)")
        page.get_by_label(label, exact=True).click()
        try:
            page.get_by_role("option", name=option, exact=True).click(timeout=2_000)
            break
        except PlaywrightTimeout:
            page.keyboard.press("Escape")
    page.evaluate("() => document.activeElement && document.activeElement.blur()")


def _click_tile(page, index: int, modifiers=None) -> None:
    """Click the `index`-th tile, unless the gallery redrew without it meanwhile (a person's click that misses)."""
    try:
        page.locator("#gallery .tile").nth(index).click(modifiers=modifiers or [], timeout=2_000)
    except PlaywrightTimeout:
        pass


def _tiles(page) -> int:
    return page.locator("#gallery .tile").count()


def _act(kind: str, tab: Tab, rng: random.Random, label_keys: list[str]) -> None:
    page = tab.page
    if kind == "click" and (count := _tiles(page)):
        _click_tile(page, rng.randrange(count))
    elif kind == "key":
        page.keyboard.press(rng.choice(label_keys))
    elif kind == "burst":
        for _ in range(rng.randint(2, 5)):
            page.keyboard.press(rng.choice(label_keys))
    elif kind == "step":
        key = rng.choice(["ArrowRight", "ArrowRight", "ArrowLeft"])
        for _ in range(rng.randint(1, 4)):
            page.keyboard.press(key)
        if rng.random() < 0.5:
            page.keyboard.press(rng.choice(label_keys))
    elif kind == "page":
        page.keyboard.press(rng.choice(["]", "]", "["]))
    elif kind == "sort":
        _choose(page, "sort", SORT_NAMES[rng.choice([s for s in GALLERY_SORTS if s != "match"])])
    elif kind == "status":
        _choose(page, "status", rng.choice(list(GALLERY_STATUSES)))
    elif kind == "undo":
        page.keyboard.press("u")
    elif kind == "pick" and (count := _tiles(page)) > 3:
        first = rng.randrange(count)
        _click_tile(page, first)
        if rng.random() < 0.5:
            _click_tile(page, min(count - 1, first + rng.randint(1, 4)), ["Shift"])
        else:
            for index in rng.sample(range(count), 2):
                _click_tile(page, index, ["Control"])
        page.keyboard.press(rng.choice(label_keys))
    elif kind == "pause":
        time.sleep(rng.uniform(0.05, 0.4))
    elif kind == "wait":
        time.sleep(1.2)


def _view_matches(page, workspace) -> list[str]:
    """Where the tab's tiles or detail view differ from the database now (empty: none)."""
    shown = page.evaluate("""() => ({
        tiles: [...document.querySelectorAll('#gallery .tile')].map(t => [Number(t.dataset.imageId),
                                                                         t.querySelector('.badge').textContent,
                                                                         t.classList.contains('pending')]),
        detail: Number(document.querySelector('#detail-view .detail-view')?.dataset.imageId || 0),
        drawing: document.querySelector('#gallery .drawing')?.dataset.drawing,
        label: (document.querySelector('#detail-text')?.innerText.match(/label: (.*?) · predictions/) || [])[1]})""")
    truth = {item.image_id: item.caption for item in workspace.view.items([t[0] for t in shown["tiles"]])}
    wrong = [f"tile {image_id}: shows {caption!r}{' (pending)' if pending else ''}, database {truth.get(image_id)!r}"
             f" drawing {shown['drawing']}"
             for image_id, caption, pending in shown["tiles"] if pending or truth.get(image_id) != caption]
    if shown["detail"] and shown["label"] is not None:
        label = workspace.view.detail(shown["detail"]).label or "none yet"
        if shown["label"] != label:
            wrong.append(f"detail {shown['detail']}: shows label {shown['label']!r}, database {label!r}")
    return wrong


def _synced(tabs: list[Tab], workspace, limit: float = 8.0) -> tuple[float, bool, list[str]]:
    """Seconds until every tab equals the database (at most `limit`), whether they are counted from the end of a
    round that was running at the last action (its end changes every tile; else from the last action), and what
    still differed then."""
    job = workspace.view.header()["job"]
    after_round = job is not None and job["status"] in ("queued", "running")
    if after_round:
        workspace.runner.wait(timeout=600)
    start = time.monotonic()
    while True:
        wrong = [f"tab {n}: {line}" for n, tab in enumerate(tabs) for line in _view_matches(tab.page, workspace)]
        if not wrong or time.monotonic() - start > limit:
            return time.monotonic() - start, after_round, wrong
        time.sleep(0.1)


def _check_labels(tabs: list[Tab], workspace, server_calls: list,
                  label_keys: list[str]) -> tuple[int, int, list[str]]:
    """(label keys, label sends, mismatches) over every tab: each send against the key that made it."""
    wrong, keys_total, sends_total = [], 0, 0
    paths = _paths_by_id(workspace)
    class_of_key = {key: name for name, key in workspace.view.class_keys() if key}
    for number, tab in enumerate(tabs):
        presses = [p for p in tab.page.evaluate("() => window.__presses") if not p["typing"]]
        named = tab.page.evaluate("() => window.__named")
        label_presses = [p for p in presses if p["key"].lower() in label_keys]
        label_sends = [s for s in tab.sends if s.get("kind") in LABEL_KINDS]
        undo_sends = [s for s in tab.sends if s.get("kind") is None]
        undo_presses = [p for p in presses if p["key"].lower() == "u"]
        keys_total += len(label_presses)
        sends_total += len(label_sends)
        if len(label_sends) != len(label_presses):
            wrong.append(f"tab {number}: {len(label_presses)} label keys, {len(label_sends)} label sends")
        if len(undo_sends) != len(undo_presses):
            wrong.append(f"tab {number}: {len(undo_presses)} undo keys, {len(undo_sends)} undo sends")
        calls = [call for call in server_calls if call[1] == tab.session]
        # a label key while the detail view names no image is refused with a message (the page's first key)
        acting = [s for s in tab.sends if s.get("image_id") is not None or s.get("image_ids") or "kind" not in s]
        if len(calls) != len(acting):
            wrong.append(f"tab {number}: {len(acting)} label and undo sends, {len(calls)} server calls")
        for index, (press, send) in enumerate(zip(label_presses, label_sends)):
            key = press["key"].lower()
            kind = "none" if key == "n" else "accept" if key == "a" else "class"
            if send["kind"] != kind or (kind == "class" and send.get("name") != class_of_key.get(key)):
                wrong.append(f"tab {number} key #{index} {key!r}: sent {send}")
                continue
            if press["picked"]:
                sent = sorted(paths.get(i) for i in send.get("image_ids") or [])
                wanted = sorted(press["picked"])
                if sent != wanted:
                    wrong.append(f"tab {number} key #{index} {key!r}: picked {press['picked']}, sent {sent}")
                continue
            path = paths.get(send["image_id"]) if send.get("image_id") is not None else None
            if press["shown"] is not None and path != press["shown"]:
                wrong.append(f"tab {number} key #{index} {key!r}: shown {press['shown']}, sent to {path}")
            elif press["shown"] is None and path is not None and path not in named[press["namedSoFar"]:]:
                wrong.append(f"tab {number} key #{index} {key!r}: pressed while waiting, sent to {path}, never "
                             "shown after" + press.get("debug", ""))
    return keys_total, sends_total, wrong


def _paths_by_id(workspace) -> dict[int, str]:
    return {item.image_id: item.relpath
            for item in workspace.view.gallery(GalleryQuery(sort="name", page_size=1_000_000)).items}


def run(browser, url: str, workspace, monkeypatch, *, actions: int, seed: int, checks: int = 6,
        round_at: float | None = 0.3, evidence: Path | None = None) -> FuzzReport:
    """`actions` random actions over two tabs of the page at `url`, with a sync check `checks` times along the way
    and a round started after `round_at` of them (None: no round). An action the page does not let the driver do
    within Playwright's timeout (a control hidden or covered) is a stall: recorded, with a screenshot of the first
    in `evidence`, and the run goes on, so that a long run reports what it found rather than ending without it."""
    rng = random.Random(seed)
    server_calls = _record_server_calls(workspace, monkeypatch)
    tabs = []
    for _ in range(2):
        page = open_page(browser, url)
        page.evaluate(INSTRUMENT)  # the page's own listeners were added at load: this one runs first (capture)
        tab = Tab(page)
        _record_sends(tab)
        tabs.append(tab)
    label_keys = [key for _, key in workspace.view.class_keys() if key] + ["n", "a"]
    kinds, weights = zip(*ACTIONS.items())
    done, sync_seconds, round_sync_seconds, mismatches, stalls = Counter(), [], [], [], []
    started, round_started = time.monotonic(), False
    active = 0
    for number in range(actions):
        if round_at is not None and not round_started and number >= actions * round_at:
            workspace.start_rounds(1, RoundConfig(share_step_without_prior=0.2))
            round_started = True
        kind = rng.choices(kinds, weights)[0]
        if kind == "switch":
            active = 1 - active
        else:
            try:
                _act(kind, tabs[active], rng, label_keys)
            except PlaywrightTimeout as error:
                if evidence is not None and not stalls:
                    tabs[active].page.screenshot(path=str(evidence / "first_stall.png"))
                stalls.append(f"action {number + 1} ({kind}): {str(error).splitlines()[0]}")
                tabs[active].page.keyboard.press("Escape")
        done[kind] += 1
        if checks and (number + 1) % max(1, actions // checks) == 0:
            seconds, after_round, wrong = _synced(tabs, workspace)
            (round_sync_seconds if after_round else sync_seconds).append(seconds)
            mismatches += [f"after action {number + 1}: {line}" for line in wrong]
    if round_started:
        workspace.runner.wait(timeout=600)
    seconds, after_round, wrong = _synced(tabs, workspace)
    (round_sync_seconds if after_round else sync_seconds).append(seconds)
    mismatches += [f"at the end: {line}" for line in wrong]
    keys, sends, wrong = _check_labels(tabs, workspace, server_calls, label_keys)
    mismatches += wrong
    wall = time.monotonic() - started
    for tab in tabs:
        tab.page.context.close()
    job = workspace.view.header()["job"]
    finished = round_started and job is not None and job["status"] == "done"
    return FuzzReport(actions=actions, by_kind=dict(done), label_keys=keys, label_sends=sends,
                      server_calls=len(server_calls), mismatches=mismatches, sync_seconds=sync_seconds,
                      round_sync_seconds=round_sync_seconds,
                      wall_seconds=wall, round_finished=bool(finished), stalls=stalls)
