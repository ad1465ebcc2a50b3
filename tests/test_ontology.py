import pytest

from engine.errors import LabelloopError
from engine.learning.class_prompts import default_templates, parse_class_list, prompts_for, read_prompts_file


def test_parse_class_list_strips_and_keeps_order():
    assert parse_class_list(" cat, dog ,bird") == ["cat", "dog", "bird"]


@pytest.mark.parametrize("text, fragment", [
    ("", "no classes"), ("cat,,dog", "empty name at position 2"), ("cat,Cat", "appears twice"),
    ("cat", "only one class"),
])
def test_parse_class_list_refuses_bad_lists(text, fragment):
    with pytest.raises(LabelloopError, match=fragment):
        parse_class_list(text)


@pytest.mark.parametrize("hidden, named", [
    ("\x1b", "U+001B a control character"), ("\n", "U+000A a control character"),
    ("\u202e", "U+202E RIGHT-TO-LEFT OVERRIDE"), ("\u2067", "U+2067 RIGHT-TO-LEFT ISOLATE"),
    ("\u200b", "U+200B ZERO WIDTH SPACE"), ("\u200d", "U+200D ZERO WIDTH JOINER"), ("\u2060", "U+2060 WORD JOINER"),
    ("\ufeff", "U+FEFF ZERO WIDTH NO-BREAK SPACE"), ("\u00a0", "U+00A0 NO-BREAK SPACE"),
])
def test_a_class_name_that_does_not_show_as_itself_is_refused_naming_the_character(hidden, named):
    with pytest.raises(LabelloopError) as refused:
        parse_class_list(f"cat,d{hidden}og")
    message = str(refused.value)
    assert named in message and "type the name without it" in message
    assert message.isprintable()  # one line, the character itself shown escaped


def test_class_names_that_print_as_themselves_are_kept():
    names = ["<img src=x>", "[a](http://b)", "chat noir", "猫", "ünï"]
    assert parse_class_list(",".join(names)) == names


def test_default_templates_each_have_one_placeholder():
    templates = default_templates()
    assert len(templates) >= 5 and all(t.count("{}") == 1 for t in templates)


def test_prompts_file_templates_and_overrides(tmp_path):
    path = tmp_path / "prompts.txt"
    path.write_text("# comment\na sketch of a {}.\ndog: a photo of a puppy.\nDog: a {} on grass\n\n")
    templates, overrides = read_prompts_file(path, ["cat", "dog"])
    assert templates == ["a sketch of a {}."]
    assert overrides == {"dog": ["a photo of a puppy.", "a {} on grass"]}
    assert prompts_for("dog", templates, overrides["dog"]) == ["a photo of a puppy.", "a dog on grass"]
    assert prompts_for("cat", templates, None) == ["a sketch of a cat."]


def test_prompts_file_refuses_a_line_without_placeholder(tmp_path):
    path = tmp_path / "prompts.txt"
    path.write_text("a photo of a {}.\na photo\n")
    with pytest.raises(LabelloopError, match="line 2"):
        read_prompts_file(path, ["cat", "dog"])
