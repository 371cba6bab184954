from django.urls import path

from surveys import harm_reports, views

app_name = "surveys"
urlpatterns = [
    path("my-data/<str:token>/", views.my_data, name="my_data"),
    path("my-data/<str:token>/consent.pdf", views.my_consent_copy, name="consent_copy"),
    path("my-data/<str:token>/support/", views.support, name="support"),
    path("my-data/<str:token>/report/", harm_reports.data_report, name="data_report"),
    path("my-data/<str:token>/stop/", views.stream_stop, name="stream_stop"),
    path("my-data/<str:token>/resume/", views.stream_resume, name="stream_resume"),
    path("<str:token>/", views.survey, name="survey"),
    path("<str:token>/done/", views.survey_done, name="done"),
    path("<str:token>/report/", harm_reports.wave_report, name="wave_report"),
]
