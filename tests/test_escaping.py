"""Names shown as themselves: the escaping rules of app/escaping.py, and the CLI printing file, folder and class names
with escape sequences and newlines escaped (issue 25: they reached the terminal raw)."""

import html
import re

import cv2
import numpy as np
import pytest

from app.escaping import html_text, markdown_text, terminal_text
from tests.imagegen import random_image, write_images

HOSTILE = "red\x1b[31m\nline"  # colours a terminal red and breaks the line it is printed on
HOSTILE_SHOWN = "red\\x1b[31m\\nline"


@pytest.mark.parametrize("text, shown", [
    ("plain name.png", "plain name.png"), ("猫 ünï", "猫 ünï"), (HOSTILE, HOSTILE_SHOWN), ("tab\there", "tab\\there"),
    ("\u202egnp.exe", "\\u202egnp.exe"), ("zero\u200bwidth", "zero\\u200bwidth"), ("bom\ufeff", "bom\\ufeff"),
    ("del\x7f", "del\\x7f"), ("nbsp\u00a0", "nbsp\\xa0"), (7, "7"),
])
def test_terminal_text_shows_every_character_that_does_not_print_as_itself_escaped(text, shown):
    assert terminal_text(text) == shown
    assert terminal_text(text).isprintable()


def _rendered_as_text(markdown: str) -> str:
    """What a CommonMark renderer shows of `markdown` that holds only backslash escapes and HTML entities: each
    escape is the character after it, each entity its character."""
    shown, index = [], 0
    while index < len(markdown):
        if markdown[index] == "\\":
            index += 1
        shown.append(markdown[index])
        index += 1
    return html.unescape("".join(shown))


@pytest.mark.parametrize("text", [
    "<img src=http://127.0.0.1:9/x>", "[Session expired: sign in again](http://127.0.0.1:9/)", "<script>x</script>",
    "![alt](http://127.0.0.1:9/i.png)", "www.example.com", "http://127.0.0.1:9/", "someone@example.com",
    "**bold** _it_ `code` # heading | table | ~~gone~~", "a &amp; b &lt;c&gt;", "back\\slash \\*", HOSTILE,
    "\"quoted\" 'single'", "$$x$$",
])
def test_markdown_text_holds_no_markup_and_reads_as_the_text(text):
    shown = markdown_text(text)
    assert not set("<>") & set(shown)  # no tag can open
    bare = re.sub(r"\\.|&#?\w+;", "", shown)  # what is neither escaped nor an entity
    assert not set("[]()!*_`#|~:@.$&\\") & set(bare), bare  # no Markdown rule or autolink can start
    assert _rendered_as_text(shown) == terminal_text(text)


def test_html_text_opens_no_tag_or_attribute_and_shows_controls_escaped():
    assert html_text("class '<img src=x>' \"q\" & \u202e\n") == \
        "class &#39;&lt;img src=x&gt;&#39; &#34;q&#34; &amp; \\u202e\\n"


def test_init_status_queue_and_errors_print_escape_sequences_and_newlines_escaped(tmp_path, tiny_model, cli):
    images = tmp_path / f"images {HOSTILE}"
    write_images(images, 6)
    assert cv2.imwrite(str(images / f"{HOSTILE}.png"), random_image(np.random.default_rng(1)))
    root = tmp_path / f"project {HOSTILE}"
    created = cli("init", root, "--images", images, "--classes", "circle,square", "--model", tiny_model)
    printed = {"init": created, "ingest": cli("ingest", root, "--workers", "0"), "status": cli("status", root),
               "queue": cli("queue", root, "--k", "50")}
    for command, (code, out, err) in printed.items():
        assert code == 0, err
        assert "\x1b" not in out + err, command
    assert f"project {HOSTILE_SHOWN}" in printed["init"][1] and f"images {HOSTILE_SHOWN}" in printed["init"][1]
    status = printed["status"][1].splitlines()
    assert status[0].startswith("project") and status[0].endswith(f"project {HOSTILE_SHOWN}")
    assert status[1].startswith("images") and status[1].endswith(f"images {HOSTILE_SHOWN}")
    assert any(f" {HOSTILE_SHOWN}.png  " in line for line in printed["queue"][1].splitlines())

    code, _, err = cli("init", tmp_path / "other", "--images", images, "--classes", "circle,square",
                       "--prompts", tmp_path / f"missing {HOSTILE}.txt")
    assert code == 1 and err.count("\n") == 1 and "\x1b" not in err and f"missing {HOSTILE_SHOWN}.txt" in err


def test_init_refuses_a_right_to_left_class_name_in_one_line(tmp_path, images, cli):
    code, out, err = cli("init", tmp_path / "project", "--images", images, "--classes", "cat,\u202etod")
    assert code == 1 and not out and err.count("\n") == 1
    assert "U+202E RIGHT-TO-LEFT OVERRIDE" in err and "\\u202etod" in err and "\u202e" not in err
    assert not (tmp_path / "project").exists()
