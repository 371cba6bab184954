from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView

from config.health import healthz

urlpatterns = [
    path("", RedirectView.as_view(pattern_name="dashboards:trial_list", permanent=False)),
    path("healthz", healthz, name="healthz"),
    path("admin/", admin.site.urls),
    path("accounts/", include("django.contrib.auth.urls")),
    path("s/", include("surveys.urls")),
    path("join/", include("surveys.join_urls")),
    path("api/", include("trials.urls")),
    path("dashboards/", include("dashboards.urls")),
]
