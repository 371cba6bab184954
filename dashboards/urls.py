from django.urls import path, re_path

from dashboards import views

app_name = "dashboards"
urlpatterns = [
    path("", views.trial_list, name="trial_list"),
    # Dash's own routes (all starting with "_") are matched before the trial pages.
    re_path(r"^(?P<resource>_dash-.+|_reload-hash|_favicon\.ico)$", views.dash_resource),
    path("<slug:slug>/", views.trial_detail, name="trial_detail"),
]
