from django.urls import path

from dashboards import views

app_name = "dashboards"
urlpatterns = [
    path("", views.trial_list, name="trial_list"),
    path("<slug:slug>/", views.trial_detail, name="trial_detail"),
]
