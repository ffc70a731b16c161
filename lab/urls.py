from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.http import JsonResponse
from django.urls import include, path
from django.views.generic import RedirectView

from lab.accounts import views as accounts
from lab.datasets import views as datasets
from lab.evaluations import views as evaluations
from lab.hub import downloads, exports, inference, playground, tokenizer_views
from lab.hub import views as hub
from lab.notebooks import views as notebooks
from lab.runs import compare
from lab.runs import views as runs


def healthz(request):
    return JsonResponse({"ok": True})


urlpatterns = [
    path("", RedirectView.as_view(pattern_name="notebook-list"), name="home"),
    path("healthz", healthz, name="healthz"),
    path("admin/", admin.site.urls),
    path("accounts/login/", accounts.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("notebooks/", notebooks.notebook_list, name="notebook-list"),
    path("notebooks/<int:pk>/", notebooks.notebook_detail, name="notebook-detail"),
    path("notebooks/<int:pk>/cells/", notebooks.cell_add, name="cell-add"),
    path("cells/<int:pk>/save/", notebooks.cell_save, name="cell-save"),
    path("cells/<int:pk>/run/", notebooks.cell_run, name="cell-run"),
    path("cells/<int:pk>/delete/", notebooks.cell_delete, name="cell-delete"),
    path("cells/<int:pk>/move/", notebooks.cell_move, name="cell-move"),
    path("cells/<int:pk>/use-run/", notebooks.cell_use_run, name="cell-use-run"),
    path("cells/<int:pk>/estimate/", notebooks.cell_estimate, name="cell-estimate"),
    path("datasets/", datasets.dataset_list, name="dataset-list"),
    path("datasets/<int:pk>/", datasets.dataset_detail, name="dataset-detail"),
    path("datasets/<int:pk>/edit/", datasets.dataset_edit, name="dataset-edit"),
    path("datasets/<int:pk>/download/", datasets.dataset_download, name="dataset-download"),
    path("datasets/<int:pk>/delete/", datasets.dataset_delete, name="dataset-delete"),
    path("models/", hub.model_list, name="model-list"),
    path("models/<int:pk>/", hub.model_detail, name="model-detail"),
    path("models/<int:pk>/classify/", inference.classify, name="model-classify"),
    path("models/<int:pk>/export/", exports.model_export, name="model-export"),
    path("models/<int:pk>/playground/", playground.playground, name="model-playground"),
    path("playground/", playground.playground, name="playground"),
    path("playground/pairs/", playground.send_pair, name="playground-pair"),
    path("models/<int:pk>/score/", inference.score, name="model-score"),
    path("runs/compare/", compare.compare_runs, name="run-compare"),
    path("runs/<int:pk>/", runs.run_detail, name="run-detail"),
    path("runs/<int:pk>/cancel/", runs.run_cancel, name="run-cancel"),
    path("runs/<int:pk>/pause/", runs.run_pause, name="run-pause"),
    path("runs/<int:pk>/resume/", runs.run_resume, name="run-resume"),
    path("runs/<int:pk>/events/", runs.run_events, name="run-events"),
    path("evaluations/<int:pk>/", evaluations.evaluation_report, name="evaluation-report"),
    path("artifacts/<int:pk>/download/", downloads.artifact_download, name="artifact-download"),
    path("artifacts/<int:pk>/encode/", tokenizer_views.tokenizer_encode, name="tokenizer-encode"),
    path("artifacts/<int:pk>/compare-options/", tokenizer_views.tokenizer_compare_options, name="tokenizer-compare-options"),
    path("campaigns/", include("lab.feedback.urls")),
    path("fleet/", include("lab.fleet.urls")),
    path("api/", include("lab.api.urls")),
    path("v1/", include("lab.hub.openai_api")),  # OpenAI-compatible: the team's models for the openai client
]
