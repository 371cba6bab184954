"""The front door's public routes (surveys.front_door): /join/<trial>/ and the steps after it."""

from django.urls import path

from surveys import front_door

app_name = "join"
urlpatterns = [
    path("<slug:slug>/", front_door.landing, name="landing"),
    path("<slug:slug>/screening", front_door.screening, name="screening"),
    path("<slug:slug>/consent", front_door.consent, name="consent"),
    path("<slug:slug>/confirm/<str:token>/", front_door.confirm, name="confirm"),
    # Per community or site: the person's community is their stratum.
    path("<slug:slug>/<slug:community>/", front_door.landing, name="landing_community"),
]
