from django.urls import path
from drf_spectacular.views import SpectacularAPIView
from rest_framework.authtoken.views import ObtainAuthToken
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.routers import DefaultRouter

from lab.accounts.throttling import FailedLoginThrottle
from lab.api import views
from lab.api.uploads import UploadViewSet
from lab.feedback.api import CampaignViewSet
from lab.parsers import JSONParser

router = DefaultRouter()
router.register("datasets", views.DatasetViewSet, basename="api-dataset")
router.register("notebooks", views.NotebookViewSet, basename="api-notebook")
router.register("cells", views.CellViewSet, basename="api-cell")
router.register("runs", views.RunViewSet, basename="api-run")
router.register("artifacts", views.ArtifactViewSet, basename="api-artifact")
router.register("uploads", UploadViewSet, basename="api-upload")
router.register("campaigns", CampaignViewSet, basename="api-campaign")

urlpatterns = [
    # DRF's token view names its own parsers; it takes the depth-limited JSON parser like every view.
    path("token/", ObtainAuthToken.as_view(parser_classes=[JSONParser, FormParser, MultiPartParser],
                                           throttle_classes=[FailedLoginThrottle]), name="api-token"),
    path("schema/", SpectacularAPIView.as_view(), name="api-schema"),
    *router.urls,
]
