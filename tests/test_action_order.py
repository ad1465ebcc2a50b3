"""The order of a page's selection actions (app/action_order.py): the newest action's selection holds."""

from app.action_order import ActionOrder


def test_a_late_action_leaves_the_newer_actions_selection():
    order = ActionOrder()
    assert order.selection("tab", 2, 20) == 20  # the key, applied first
    assert order.selection("tab", 1, 10) == 20  # the click sent before it, arriving late
    assert order.selection("tab", 3, 30) == 30
    assert order.selection("tab", None, 40) == 40  # an action without a number counts as the newest
    assert order.selection("tab", 2, 50) == 40  # and keeps the newest number seen


def test_each_session_keeps_its_own_order():
    order = ActionOrder()
    assert order.selection("a", 5, 50) == 50
    assert order.selection("b", 1, 10) == 10
    assert order.selection("a", 4, 40) == 50
    assert order.selection("b", 2, 20) == 20


def test_answers_list_every_action_answered_lately_refusals_too():
    order = ActionOrder()
    order.selection("tab", 2, 20)
    order.refused("tab", 3, 20)
    order.selection("tab", 1, 10)  # late
    order.selection("other", 9, 90)
    assert order.answered("tab") == "2,3,1" and order.answered("other") == "9"
    for number in range(4, 200):
        order.selection("tab", number, number)
    assert order.answered("tab").split(",")[-1] == "199" and len(order.answered("tab").split(",")) == 64


def test_a_refused_action_counts_as_newer_than_the_actions_sent_before_it():
    # the page shows an older action still on its way without its move once a newer one is answered (GALLERY_JS
    # `show`): a refusal is answered too, so the server must leave the selection where the refusal left it
    order = ActionOrder()
    assert order.selection("tab", 1, 10) == 10
    order.refused("tab", 3, 10)  # a click on an image since gone, say
    assert order.selection("tab", 2, 20) == 10  # sent before the refusal, arriving after it
    order.refused("tab", 2, 99)  # an older refusal changes nothing
    assert order.selection("tab", None, 30) == 30
