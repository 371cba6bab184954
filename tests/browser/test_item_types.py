"""A wave with every item type (yes/no, bounded number, 0–10 row, Likert follow-up shown on a
condition) answered in a browser with JavaScript off: the out-of-range number is refused with
its message and every other answer kept. axe-core (which needs JavaScript to run) finds nothing
on the same two pages drawn with JavaScript on; the markup does not depend on it."""

import pytest

from tests.surveys.test_item_types import mixed_wave_link

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def _answer_with_too_many_hours(page) -> None:
    page.get_by_role("group", name="Used it?").get_by_label("Yes").check()
    page.get_by_role("spinbutton", name="For how many hours?").fill("30")
    page.get_by_role("group", name="Tense?").get_by_label("8", exact=True).check()
    page.get_by_role("button", name="Submit answers").click()
    page.get_by_role("alert").wait_for()


def test_every_item_type_is_answered_without_javascript(live_server, chromium, axe, artifacts_dir):
    link, participant = mixed_wave_link("nojs")
    checked = chromium.new_context(viewport={"width": 360, "height": 640})
    page = checked.new_page()
    page.goto(live_server.url + link)
    axe.check(page, "every item type")
    _answer_with_too_many_hours(page)
    axe.check(page, "every item type, a number refused")
    checked.close()
    assert not any(axe.pages.values()), "axe-core violations:\n" + axe.report()

    context = chromium.new_context(
        viewport={"width": 360, "height": 640}, java_script_enabled=False
    )
    page = context.new_page()
    page.goto(live_server.url + link)
    assert page.evaluate("document.documentElement.scrollWidth") <= 360
    _answer_with_too_many_hours(page)
    page.screenshot(path=artifacts_dir / "item-types-nojs-refused.png", full_page=True)
    assert page.get_by_text("Enter a whole number from 0 to 24.").is_visible()
    assert page.get_by_role("group", name="Tense?").get_by_label("8", exact=True).is_checked()
    assert page.get_by_role("spinbutton", name="For how many hours?").input_value() == "30"

    page.get_by_role("spinbutton", name="For how many hours?").fill("5")
    work = page.get_by_role("group", name="How much did work cause it?")
    work.get_by_label("3", exact=True).check()
    page.get_by_role("button", name="Submit answers").click()
    page.get_by_role("heading", name="Thank you!").wait_for()
    context.close()
    assert participant.responses.get().answers == {
        "mixed": {"used": 1, "hours": 5, "calm": 8, "why": 3}
    }
