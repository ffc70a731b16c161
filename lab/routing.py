from django.urls import path

from lab.feedback.consumers import AnnotatorConsumer, CampaignConsumer
from lab.fleet.consumers import FleetConsumer
from lab.hub.consumers import PlaygroundConsumer
from lab.runs.consumers import RunConsumer

websocket_urlpatterns = [
    path("ws/fleet/", FleetConsumer.as_asgi()),
    path("ws/runs/<int:run_id>/", RunConsumer.as_asgi()),
    path("ws/campaigns/<int:campaign_id>/", CampaignConsumer.as_asgi()),
    path("ws/campaigns/<int:campaign_id>/annotate/", AnnotatorConsumer.as_asgi()),
    path("ws/playground/", PlaygroundConsumer.as_asgi()),
]
