import pytest
from django.contrib.auth.models import Group, User

from analytics.services import analysis_run_create, analysis_run_execute
from dashboards.views import headline
from trials.models import TrialMember
from trials.services import member_add, trial_create

pytestmark = pytest.mark.django_db


@pytest.fixture
def analyst(db):
    user = User.objects.create_user("ana", password="pw")
    user.groups.add(Group.objects.get(name="Analysts"))
    return user


def test_anonymous_users_are_sent_to_login(client, small_trial):
    response = client.get("/dashboards/small/")
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]


def test_users_without_permission_get_403(client, small_trial):
    client.force_login(User.objects.create_user("participant", password="pw"))
    assert client.get("/dashboards/").status_code == 403
    assert client.get("/dashboards/small/").status_code == 403


def test_analyst_sees_the_stored_result_with_its_label(client, analyst, small_trial):
    member_add(trial=small_trial, user=analyst, role=TrialMember.Role.ANALYST)
    run = analysis_run_execute(run_id=analysis_run_create(trial=small_trial, enqueue=False).pk)
    client.force_login(analyst)
    page = client.get("/dashboards/small/").content.decode()
    primary = headline(run)
    assert "confirmatory" in page
    assert f"{primary['estimate']:.2f}" in page
    assert small_trial.preregistrations.get().sha256 in page
    listing = client.get("/dashboards/").content.decode()
    assert "Synthetic trial small" in listing and f"{primary['estimate']:.2f}" in listing


def test_analysts_of_another_trial_get_403_and_do_not_see_it_listed(client, analyst, small_trial):
    other = trial_create(slug="other", title="Other trial")
    member_add(trial=other, user=analyst, role=TrialMember.Role.ANALYST)
    client.force_login(analyst)
    assert client.get("/dashboards/small/").status_code == 403
    assert "Synthetic trial small" not in client.get("/dashboards/").content.decode()
