from django.urls import path

from alerts import views

urlpatterns = [
    path("status/", views.StatusView.as_view(), name="status"),
]
