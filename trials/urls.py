from django.urls import path

from trials import views

app_name = "trials"
urlpatterns = [
    path("v1/assignment/<str:token>/", views.assignment, name="assignment"),
]
