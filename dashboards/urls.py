from django.urls import path, re_path

from dashboards import views

app_name = "dashboards"
urlpatterns = [
    path("", views.trial_list, name="trial_list"),
    # Dash's own routes (starting with "_", and its assets) are matched before the trial pages.
    re_path(r"^(?P<resource>_dash-.+|_reload-hash|_favicon\.ico|assets/.+)$", views.dash_resource),
    path("<slug:slug>/", views.trial_detail, name="trial_detail"),
]
