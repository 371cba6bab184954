from django.urls import path, re_path

from dashboards import oversight, report, views

app_name = "dashboards"
urlpatterns = [
    path("", oversight.home, name="trial_list"),
    # The oversight bodies' own pages, matched before the trial pages.
    path("oversight/", oversight.oversight_list, name="oversight_list"),
    path("oversight/<slug:slug>/", oversight.oversight_report, name="oversight_report"),
    path("oversight/<slug:slug>/plan/", oversight.oversight_plan, name="oversight_plan"),
    # Dash's own routes (starting with "_", and its assets) are matched before the trial pages.
    re_path(r"^(?P<resource>_dash-.+|_reload-hash|_favicon\.ico|assets/.+)$", views.dash_resource),
    path("<slug:slug>/", views.trial_detail, name="trial_detail"),
    path("<slug:slug>/runs/<int:run_id>/report.html", report.report_download, name="run_report"),
]
