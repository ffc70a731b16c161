from django.urls import path

from lab.feedback import views

urlpatterns = [
    path("", views.campaign_list, name="campaign-list"),
    path("<int:pk>/", views.campaign_detail, name="campaign-detail"),
    path("<int:pk>/items/", views.campaign_items, name="campaign-items"),
    path("<int:pk>/settings/", views.campaign_settings, name="campaign-settings"),
    path("<int:pk>/judge/", views.campaign_judge, name="campaign-judge"),
    path("<int:pk>/export/", views.campaign_export, name="campaign-export"),
    path("<int:pk>/export/both-bad.jsonl", views.campaign_bad_labels, name="campaign-bad-labels"),
    path("<int:pk>/annotate/", views.annotate, name="campaign-annotate"),
]
