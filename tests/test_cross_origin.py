"""Another web page in the same browser as a person on the page (signed in, or on a server without a login) tries
to read the page's API and to add a class through it: a page served on a second local port, opened in the same
browser context, calls the labelloop server with fetch(..., {credentials: 'include'}). It must read nothing and
change nothing, while the page's own origin, in the same context, does both (the control).

A rebinding Host is refused in test_serve_security.py (a plain HTTP client says what a browser would send).
"""

import functools
import http.server
import json
import threading

import pytest

from tests.browser import copy_project, free_port, served, skip_without_chromium, wait_for

skip_without_chromium()

# What the other page runs: read the API description, then add a class as the REST API and as Gradio's own client
# do, with a preflighted JSON post and with a "simple" text/plain post that needs no preflight.
ATTACK = """
async ([base, name]) => {
  const results = {};
  const attempt = async (label, url, options) => {
    try {
      const response = await fetch(url, {credentials: 'include', ...options});
      results[label] = response.status + ' ' + (await response.text()).slice(0, 2000);
    } catch (error) {
      results[label] = 'blocked: ' + error;
    }
  };
  const body = JSON.stringify({data: [name]});
  await attempt('info', base + '/gradio_api/info', {});
  await attempt('config', base + '/config', {});
  await attempt('post', base + '/gradio_api/call/add_classes',
                {method: 'POST', headers: {'Content-Type': 'application/json'}, body});
  const event = (results.post.match(/"event_id":\\s*"([^"]+)"/) || [])[1];
  if (event) await attempt('stream', base + '/gradio_api/call/add_classes/' + event, {});
  await attempt('simple', base + '/gradio_api/call/add_classes',
                {method: 'POST', mode: 'no-cors', headers: {'Content-Type': 'text/plain'}, body});
  return results;
}
"""
ACCOUNT = ("ann", "s3cret")


@pytest.fixture(scope="module")
def other_site(tmp_path_factory):
    """A page on another local port (its own origin): http://127.0.0.1:PORT/ serving an empty page."""
    folder = tmp_path_factory.mktemp("other-site")
    (folder / "index.html").write_text("<!doctype html><title>another site</title><p>nothing to see</p>")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize("login", [True, False], ids=["with --auth", "without --auth"])
def test_another_local_page_cannot_read_or_drive_the_page(demo_template, tmp_path, browser, other_site, login):
    root = copy_project(demo_template, tmp_path / "project")
    with served(root, **({"auth": [ACCOUNT]} if login else {})) as (url, workspace):
        base = url.rstrip("/")
        context = browser.new_context()
        try:
            own = context.new_page()
            own.goto(url, wait_until="load")
            if login:
                own.get_by_label("username").fill(ACCOUNT[0])
                own.get_by_label("password").fill(ACCOUNT[1])
                own.get_by_role("button", name="Login").click()
            own.wait_for_selector("#gallery img", timeout=60_000)
            names = set(workspace.view.class_names())

            other = context.new_page()
            other.goto(other_site, wait_until="load")
            stolen = other.evaluate(ATTACK, [base, "intruder"])
            # the control: the same calls from the page's own origin, in the same browser context
            allowed = own.evaluate(ATTACK, [base, "ownclass"])
            assert allowed["info"].startswith("200") and "named_endpoints" in allowed["info"], allowed["info"]
            assert wait_for(lambda: "ownclass" in workspace.view.class_names(), timeout=30)

            for label, answer in stolen.items():
                assert not answer.startswith("2") and "named_endpoints" not in answer, (label, answer)
            assert "event_id" not in json.dumps(stolen)
            assert not wait_for(lambda: "intruder" in workspace.view.class_names(), timeout=3)
            assert set(workspace.view.class_names()) == names | {"ownclass"}
        finally:
            context.close()
