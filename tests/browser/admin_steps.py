"""Steps the browser tests take in the admin, shared by the coordinator's journeys."""

from django.contrib.auth.models import Group, User

PASSWORD = "a-long-password"


def staff(username: str, group: str) -> User:
    user = User.objects.create_user(username, password=PASSWORD, is_staff=True)
    user.groups.add(Group.objects.get(name=group))
    return user


def sign_in(page, base: str, username: str) -> None:
    page.goto(f"{base}/admin/login/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.get_by_role("heading", name="Site administration").wait_for()


def action(page, base: str, changelist: str, row_text: str, action_label: str) -> None:
    """Select the row showing ``row_text`` and run an admin action on it."""
    page.goto(f"{base}/admin/trials/{changelist}/")
    page.get_by_role("row").filter(has_text=row_text).locator("input.action-select").check()
    page.locator("select[name=action]").select_option(label=action_label)
    page.get_by_role("button", name="Go").click()
