"""A run's shareable report (dashboards.report): made from the golden run, it answers the
pre-registered question and carries the integrity record, is one valid HTML file that loads
nothing from anywhere, is downloaded only by those who may read the trial's results, and is
written by ``analyze_trial --report`` whole or not at all."""

import base64
import hashlib
import json
import re
from html import escape, unescape
from html.parser import HTMLParser

import pytest
from django.contrib.auth.models import Group, User
from django.core.management import CommandError, call_command
from django.utils import timezone

from analytics.management.commands import analyze_trial
from analytics.models import AnalysisRun
from analytics.services import analysis_run_create
from dashboards.answer import run_answers
from dashboards.report import integrity_tables, render_report
from dashboards.selectors import dashboard_data
from tests.dashboards.conftest import golden_document, render_dashboard
from trials.models import OversightBody, TrialMember
from trials.services import member_add, oversight_assign, trial_create

pytestmark = pytest.mark.django_db

# HTML's void elements (WHATWG HTML, 13.1.2): they have no end tag.
VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source",
        "track", "wbr"}  # fmt: skip


class Document(HTMLParser):
    """The report parsed: its elements must nest properly and its ids be unique; collects the
    attributes that could load something and each script's text."""

    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.open: list[str] = []
        self.problems: list[str] = []
        self.ids: list[str] = []
        self.links: list[tuple[str, str, str]] = []
        self.scripts: list[tuple[dict, str]] = []
        self.metas: list[dict] = []
        self.doctype = ""
        self._script: dict | None = None
        self.feed(html)
        self.close()
        if self.open:
            self.problems.append(f"never closed: {self.open}")

    def handle_decl(self, decl: str) -> None:
        self.doctype = decl

    def handle_starttag(self, tag: str, attrs: list) -> None:
        attributes = dict(attrs)
        if "id" in attributes:
            self.ids.append(attributes["id"])
        for name in ("src", "href", "action", "srcset", "poster", "data"):
            if name in attributes:
                self.links.append((tag, name, attributes[name] or ""))
        if tag == "meta":
            self.metas.append(attributes)
        if tag == "script":
            self._script = attributes
            self.scripts.append((attributes, ""))
        if tag not in VOID:
            self.open.append(tag)

    def handle_startendtag(self, tag: str, attrs: list) -> None:
        if tag not in VOID:
            self.problems.append(f"<{tag}/> is not a void element")
        self.handle_starttag(tag, attrs)
        if tag not in VOID:
            self.open.pop()

    def handle_endtag(self, tag: str) -> None:
        if tag in VOID:
            self.problems.append(f"</{tag}> closes a void element")
        elif not self.open or self.open[-1] != tag:
            self.problems.append(f"</{tag}> closes {self.open[-1:] or 'nothing'}")
        else:
            self.open.pop()

    def handle_data(self, data: str) -> None:
        if self.open and self.open[-1] == "script":
            attributes, text = self.scripts[-1]
            self.scripts[-1] = (attributes, text + data)


def _sha256_source(text: str) -> str:
    return f"'sha256-{base64.b64encode(hashlib.sha256(text.encode()).digest()).decode()}'"


@pytest.fixture
def golden_run(analysed_trial) -> AnalysisRun:
    return AnalysisRun.objects.get(trial=analysed_trial)


def _assert_valid_and_self_contained(report: str) -> None:
    document = Document(report)
    assert document.doctype.lower() == "doctype html"
    assert not document.problems, document.problems
    assert len(document.ids) == len(set(document.ids)), "duplicate ids"
    # Nothing to fetch: links are to the report's own sections only.
    assert document.links and all(
        tag == "a" and name == "href" and value.startswith("#")
        for tag, name, value in document.links
    ), [link for link in document.links if not link[2].startswith("#")]
    assert not re.search(r"<(script|link|img|iframe|object|embed)[^>]*\s(src|href)=", report)
    assert "@import" not in report and not re.search(r"url\(\s*['\"]?(https?:)?//", report)
    # Its policy lets only its own two scripts run (by their hashes) and fetch nothing.
    (policy,) = [
        meta["content"]
        for meta in document.metas
        if meta.get("http-equiv") == "Content-Security-Policy"
    ]
    directives = dict(d.strip().split(" ", 1) for d in policy.split(";"))
    assert directives["default-src"] == "'none'"
    code = [text for attributes, text in document.scripts if "type" not in attributes]
    assert len(code) == 2
    assert directives["script-src"].split() == [_sha256_source(text) for text in code]
    # Each figure's place holds its specification in the data block.
    (data,) = [text for attributes, text in document.scripts if attributes.get("id") == "figures"]
    figures = json.loads(unescape(data))
    places = set(re.findall(r'<div class="figure" id="([^"]+)"', report))
    assert figures and places == set(figures)
    assert all(figure["data"] or figure["layout"]["shapes"] for figure in figures.values())


def test_the_golden_runs_report_answers_first_carries_the_integrity_record_and_loads_nothing(
    golden_run,
):
    report = render_report(golden_run)
    _assert_valid_and_self_contained(report)
    answers = run_answers(golden_run)
    assert answers, "the golden run has a primary outcome"
    prereg = golden_run.preregistration
    record = prereg.frozen_record
    # The answer comes before everything else the report shows.
    answer_at = report.index('id="answer"')
    assert answer_at < report.index('id="integrity"') < report.index('id="panel-consort"')
    for answer in answers:
        assert report.index(escape(answer.sentence)) > answer_at
    for hypothesis in record.plan.hypotheses:
        assert escape(hypothesis) in report
    assert "multiplicity correction: Holm;" in report
    integrity = report[report.index('id="integrity"') : report.index('id="panel-consort"')]
    for value in (
        f"{prereg.sha256} (matches)",
        golden_run.data_snapshot_sha256,
        golden_run.code_version,
        str(golden_run.seed),
        record.allocation_sequence_sha256,
        *record.arms.values(),
        *(arm["model_version"] for arm in record.arm_configs.values()),
        *(approval.body.name for approval in prereg.approvals.all()),
        dashboard_data(golden_run.trial).record.audit_chain_head,
    ):
        assert escape(value) in integrity, value
    # The results the dashboard shows, with the golden run's numbers.
    for estimate in golden_document()["results"]["estimates"]:
        assert f"<td>{round(estimate['estimate'], 4)}</td>" in report
    assert 'data-label="confirmatory"' in report and 'data-label="exploratory"' in report
    # A frozen record altered after the run (here in memory) shows as not matching.
    prereg.record["plan"]["alpha"] = 0.5
    run_table, *_ = integrity_tables(golden_run, dashboard_data(golden_run.trial), generator="")
    (recomputed,) = [value for item, value in run_table.rows if "recomputed" in item]
    assert "DOES NOT MATCH" in recomputed


def _person(username: str, group: str) -> User:
    user = User.objects.create_user(username, password="pw", is_staff=True)
    user.groups.add(Group.objects.get(name=group))
    return user


def test_the_dashboard_links_the_report_which_only_the_trials_results_readers_download(
    client, analyst, golden_run
):
    trial = golden_run.trial
    url = f"/dashboards/small/runs/{golden_run.pk}/report.html"
    client.force_login(analyst)
    # Dash's JSON writes "/" as "\u002f": read it back before looking for the link.
    assert url in json.dumps(json.loads(render_dashboard(client, "small").content))
    response = client.get(url)
    assert response.status_code == 200
    assert response["Content-Type"] == "text/html; charset=utf-8"
    assert response["Content-Disposition"] == (
        f'attachment; filename="small-run-{golden_run.pk}-report.html"'
    )
    assert all(escape(a.sentence) in response.content.decode() for a in run_answers(golden_run))
    # Not found: a run not finished, a run of another trial, no such run or trial.
    queued = analysis_run_create(trial=trial, enqueue=False)
    other = trial_create(slug="other", title="Other")
    member_add(trial=other, user=analyst, role=TrialMember.Role.ANALYST)
    for missing in (
        f"/dashboards/small/runs/{queued.pk}/report.html",
        f"/dashboards/other/runs/{golden_run.pk}/report.html",
        f"/dashboards/small/runs/{golden_run.pk + 1000}/report.html",
        f"/dashboards/nope/runs/{golden_run.pk}/report.html",
    ):
        assert client.get(missing).status_code == 404, missing
    coordinator = _person("cora", "Coordinators")
    member_add(trial=trial, user=coordinator, role=TrialMember.Role.COORDINATOR)
    client.force_login(coordinator)
    assert client.get(url).status_code == 200
    # Refused: a blinded body's member, a monitoring committee's too (the dashboard's rule),
    # and another trial's analyst.
    ethics = _person("erik", "Oversight members")
    OversightBody.objects.get(name="Ethics board").members.add(ethics)
    dmc = OversightBody.objects.create(
        name="Data monitoring committee", kind=OversightBody.Kind.DATA_MONITORING_COMMITTEE
    )
    dora = _person("dora", "Oversight members")
    dmc.members.add(dora)
    oversight_assign(trial=trial, body=dmc, required=False)
    other_analyst = _person("olga", "Analysts")
    member_add(trial=other, user=other_analyst, role=TrialMember.Role.ANALYST)
    for user in (ethics, dora, other_analyst):
        client.force_login(user)
        response = client.get(url)
        assert response.status_code == 403, user
        assert trial.preregistrations.get().sha256 not in response.content.decode()
    client.logout()
    response = client.get(url)
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]


# --- analyze_trial --report -------------------------------------------------------------------


def test_analyze_trial_writes_the_report_whole_or_not_at_all(
    analysed_trial, tmp_path, monkeypatch, capsys
):
    """The whole command, with the fit replaced by the golden run's documents (no sampler);
    then a stored run's report again, with --json; then a write that fails."""

    def finish(*, run_id: int) -> AnalysisRun:
        document = golden_document()
        AnalysisRun.objects.filter(pk=run_id).update(
            status=AnalysisRun.Status.FINISHED,
            results=document["results"],
            diagnostics=document["diagnostics"],
            finished_at=timezone.now(),
        )
        return AnalysisRun.objects.get(pk=run_id)

    monkeypatch.setattr(analyze_trial, "analysis_run_execute", finish)
    target = tmp_path / "report.html"
    call_command("analyze_trial", "small", "--report", target)
    run = AnalysisRun.objects.filter(trial=analysed_trial).first()
    out, err = capsys.readouterr()
    assert f"Run {run.pk} (confirmatory)" in out
    assert f"Wrote the report of run {run.pk} to {target}" in err
    text = target.read_text(encoding="utf-8")
    assert f"analysis run {run.pk}" in text
    assert all(escape(a.sentence) in text for a in run_answers(run))
    assert [p.name for p in tmp_path.iterdir()] == ["report.html"]
    # A stored run, read again: --json keeps its output one JSON document.
    call_command("analyze_trial", "small", "--run", run.pk, "--json", "--report", target)
    assert json.loads(capsys.readouterr().out)["run"] == run.pk

    def full_disk(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(analyze_trial.os, "fsync", full_disk)
    target.write_text("the earlier report")
    with pytest.raises(OSError, match="No space left"):
        call_command("analyze_trial", "small", "--run", run.pk, "--report", target)
    assert target.read_text() == "the earlier report"
    assert [p.name for p in tmp_path.iterdir()] == ["report.html"]


def test_analyze_trial_refuses_what_it_cannot_report_and_analyses_nothing(golden_run, tmp_path):
    other = AnalysisRun.objects.create(
        trial=trial_create(slug="other", title="Other"),
        preregistration=golden_run.preregistration,
        kind="exploratory",
        seed=1,
        code_version="x",
    )
    missing = golden_run.pk + other.pk + 1000
    refused = [
        (["--run", missing], f"Trial 'small' has no analysis run {missing} (its latest runs: "),
        (["--run", other.pk], f"Trial 'small' has no analysis run {other.pk} "),
        (["--run", golden_run.pk, "--seed", 3], "--run reads a stored run; --seed only apply"),
        (["--report", tmp_path / "no" / "r.html"], f"the directory {tmp_path / 'no'} does not"),
        (["--report", tmp_path], "is a directory"),
        (["--enqueue", "--report", tmp_path / "r.html"], "--enqueue leaves it to a worker"),
    ]
    runs = AnalysisRun.objects.count()
    for arguments, message in refused:
        with pytest.raises(CommandError, match=re.escape(message)):
            call_command("analyze_trial", "small", *arguments)
    assert AnalysisRun.objects.count() == runs
    assert list(tmp_path.iterdir()) == []
