"""Managing a dataset after upload: rename and describe, download the original, delete, and recognise
the same file uploaded twice; by page and API alike, for the team's working members only."""

import html
import io
import tarfile

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from rest_framework.authtoken.models import Token

from lab.datasets.actions import create_dataset_from_path
from lab.datasets.models import Dataset
from lab.notebooks.models import Cell, Notebook
from lab.runs.models import Run

pytestmark = pytest.mark.django_db

POEMS = b"Shall I compare thee to a summer's day?\n\nThou art more lovely and more temperate.\n"


@pytest.fixture
def poems(cast, tmp_path) -> Dataset:
    path = tmp_path / "poems.txt"
    path.write_bytes(POEMS)
    return create_dataset_from_path(cast.team, cast.alice, path, name="poems")


def _page(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def _api(user) -> Client:
    return Client(headers={"Authorization": f"Token {Token.objects.get_or_create(user=user)[0].key}"})


def _files(data_dir) -> list:
    return [p for p in data_dir.rglob("*") if p.is_file()]


def _text(response) -> str:
    return html.unescape(response.content.decode())


def _run_reading(dataset: Dataset, status: str = "succeeded") -> Run:
    notebook = Notebook.objects.create(team=dataset.team, title="sonnets", created_by=dataset.created_by)
    cell = Cell.objects.create(notebook=notebook, kind=Cell.Kind.CORPUS, config={"corpus": dataset.pk})
    tokenizer = Cell.objects.create(notebook=notebook, position=1, kind=Cell.Kind.TOKENIZER,
                                    config={"corpus_cell": cell.pk})
    used = {"cell": cell.pk, "kind": "dataset", "id": dataset.pk, "sha256": dataset.sha256}
    return Run.objects.create(team=dataset.team, cell=tokenizer, stage="tokenizer", config={}, status=status,
                              inputs={"corpus_cell": used})


def test_it_renames_and_describes_a_dataset_on_its_page(cast, poems):
    response = _page(cast.carol).post(f"/datasets/{poems.pk}/edit/", {
        "name": "sonnets", "description": "From **Shakespeare**.<script>alert(1)</script>"}, follow=True)

    assert response.status_code == 200
    poems.refresh_from_db()
    assert (poems.name, poems.description) == ("sonnets", "From **Shakespeare**.<script>alert(1)</script>")
    page = response.content.decode()
    assert "<strong>Shakespeare</strong>" in page and "<script>alert(1)" not in page


@pytest.mark.parametrize("name, error", [("   ", "This field is required."), ("x" * 201, "at most 200 characters")])
def test_it_shows_what_is_wrong_with_a_name_on_the_form(cast, poems, name, error):
    response = _page(cast.alice).post(f"/datasets/{poems.pk}/edit/", {"name": name, "description": "new"})

    assert response.status_code == 400
    assert error in _text(response)
    poems.refresh_from_db()
    assert (poems.name, poems.description) == ("poems", "")
    assert "<h1>poems " in response.content.decode()


def test_it_renames_and_describes_through_the_api_and_nothing_else(cast, poems):
    changes = {"name": "sonnets", "description": "Two lines.", "sha256": "0" * 64, "n_records": 9}

    response = _api(cast.carol).patch(f"/api/datasets/{poems.pk}/", changes, content_type="application/json")

    assert response.status_code == 200, response.content
    assert (response.json()["name"], response.json()["description"]) == ("sonnets", "Two lines.")
    poems.refresh_from_db()
    assert (poems.name, poems.description, poems.n_records) == ("sonnets", "Two lines.", 2)
    assert poems.sha256 != "0" * 64


@pytest.mark.parametrize("body, field", [
    ({"name": ""}, "name"), ({"name": "x" * 201}, "name"), ({"name": None}, "name"),
    ({"description": None}, "description"),
    ([{"name": "list"}], "non_field_errors"),
])
def test_it_answers_a_bad_edit_with_400_naming_the_field(cast, poems, body, field):
    response = _api(cast.alice).patch(f"/api/datasets/{poems.pk}/", body, content_type="application/json")

    assert response.status_code == 400
    assert field in response.json()
    poems.refresh_from_db()
    assert poems.name == "poems"


@pytest.mark.parametrize("client", [_page, _api])
def test_it_streams_the_original_file_named_after_the_dataset(cast, sample_data, client):
    original = sample_data["classification/sms-spam-5k.tsv"]
    dataset = create_dataset_from_path(cast.team, cast.alice, original, name="spam")
    url = f"/datasets/{dataset.pk}/download/" if client is _page else f"/api/datasets/{dataset.pk}/download/"

    response = client(cast.carol).get(url)

    assert response.status_code == 200 and response.streaming
    assert response["Content-Disposition"] == 'attachment; filename="spam.tsv"'
    assert response.getvalue() == original.read_bytes()


def test_it_keeps_the_stored_double_suffix_of_an_archive(cast, tmp_path):
    archive = tmp_path / "letters.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for name, text in {"a.txt": b"Dear Anne,\nhello.\n", "b.txt": b"Dear Ben,\nbye.\n"}.items():
            info = tarfile.TarInfo(name)
            info.size = len(text)
            tar.addfile(info, io.BytesIO(text))
    dataset = create_dataset_from_path(cast.team, cast.alice, archive)

    response = _page(cast.alice).get(f"/datasets/{dataset.pk}/download/")

    assert response["Content-Disposition"] == 'attachment; filename="letters.tar.gz"'
    assert response.getvalue() == archive.read_bytes()


def test_it_answers_404_when_the_file_is_gone_from_disk(cast, poems):
    poems.absolute_path.unlink()

    assert _page(cast.alice).get(f"/datasets/{poems.pk}/download/").status_code == 404
    assert _api(cast.alice).get(f"/api/datasets/{poems.pk}/download/").status_code == 404


def test_it_asks_before_deleting(cast, poems):
    response = _page(cast.alice).get(f"/datasets/{poems.pk}/delete/")

    assert response.status_code == 200
    assert "Delete 'poems'?" in _text(response) and 'data-action="confirm-delete"' in response.content.decode()
    assert Dataset.objects.filter(pk=poems.pk).exists() and poems.absolute_path.exists()


def test_it_deletes_row_and_file_and_the_runs_that_used_it_say_the_data_is_gone(
    cast, poems, data_dir, django_capture_on_commit_callbacks
):
    run = _run_reading(poems)
    page = _page(cast.carol)

    with django_capture_on_commit_callbacks(execute=True):
        response = page.post(f"/datasets/{poems.pk}/delete/", follow=True)

    assert response.status_code == 200 and "Deleted 'poems'" in _text(response)
    assert not Dataset.objects.filter(pk=poems.pk).exists()
    assert _files(data_dir) == []
    run.refresh_from_db()
    assert run.inputs["corpus_cell"]["sha256"] == poems.sha256
    run_page = page.get(f"/runs/{run.pk}/")
    assert run_page.status_code == 200 and "the data is gone" in _text(run_page)
    notebook_page = page.get(f"/notebooks/{run.cell.notebook.pk}/")
    assert notebook_page.status_code == 200
    assert f"The data is gone: dataset {poems.pk} was deleted" in _text(notebook_page)


def test_a_clean_cell_says_its_cleaned_dataset_is_gone(cast, poems, django_capture_on_commit_callbacks):
    notebook = Notebook.objects.create(team=cast.team, title="cleaning", created_by=cast.alice)
    clean = Cell.objects.create(notebook=notebook, kind=Cell.Kind.CLEAN, config={})
    run = Run.objects.create(team=cast.team, cell=clean, stage="clean", config={}, status="succeeded")
    run.append_event("artifact", kind="corpus", metadata={"documents_in": 2, "documents_kept": 2, "removed": {}})
    clean.current_run = run
    clean.save()
    Dataset.objects.filter(pk=poems.pk).update(source_run=run)
    page = _page(cast.alice)
    assert f'/datasets/{poems.pk}/' in page.get(f"/notebooks/{notebook.pk}/").content.decode()

    with django_capture_on_commit_callbacks(execute=True):
        page.post(f"/datasets/{poems.pk}/delete/")

    assert "the data is gone: the cleaned dataset was deleted" in _text(page.get(f"/notebooks/{notebook.pk}/"))


def test_the_run_page_says_nothing_is_gone_while_the_dataset_is_there(cast, poems):
    run = _run_reading(poems)

    assert "the data is gone" not in _text(_page(cast.alice).get(f"/runs/{run.pk}/"))


def test_it_deletes_through_the_api(cast, poems, data_dir, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        response = _api(cast.alice).delete(f"/api/datasets/{poems.pk}/")

    assert response.status_code == 204
    assert not Dataset.objects.exists() and _files(data_dir) == []


def test_it_keeps_a_dataset_that_an_active_run_reads(cast, poems, django_capture_on_commit_callbacks):
    run = _run_reading(poems, status="running")

    with django_capture_on_commit_callbacks(execute=True):
        api = _api(cast.alice).delete(f"/api/datasets/{poems.pk}/")
        page = _page(cast.alice).post(f"/datasets/{poems.pk}/delete/", follow=True)

    assert api.status_code == 400 and api.json()["field"] == "dataset" and f"run {run.pk}" in api.json()["error"]
    assert page.status_code == 200 and f"run {run.pk} is running" in _text(page)
    assert Dataset.objects.filter(pk=poems.pk).exists() and poems.absolute_path.exists()


def test_it_recognises_the_same_file_uploaded_twice_on_the_page(cast, poems, data_dir):
    response = _page(cast.carol).post("/datasets/", {
        "team": cast.team.pk, "name": "again", "file": SimpleUploadedFile("copy.txt", POEMS)})

    assert response.status_code == 302 and response["Location"] == f"/datasets/{poems.pk}/"
    assert Dataset.objects.count() == 1 and _files(data_dir) == [poems.absolute_path]


def test_it_says_already_uploaded_with_a_link(cast, poems):
    response = _page(cast.carol).post("/datasets/", {
        "team": cast.team.pk, "name": "", "file": SimpleUploadedFile("copy.txt", POEMS)}, follow=True)

    assert response.redirect_chain[-1][0] == f"/datasets/{poems.pk}/"
    assert f'already uploaded as <a href="/datasets/{poems.pk}/">poems</a>' in response.content.decode()


def test_it_answers_200_with_the_existing_dataset_to_a_second_api_upload(cast, data_dir):
    api = _api(cast.alice)

    first, second = (api.post("/api/datasets/", {"team": cast.team.pk, "file": SimpleUploadedFile("p.txt", POEMS)})
                     for _ in range(2))

    assert (first.status_code, first.json()["already_uploaded"]) == (201, False)
    assert (second.status_code, second.json()["already_uploaded"]) == (200, True)
    assert second.json()["id"] == first.json()["id"]
    assert Dataset.objects.count() == 1 and len(_files(data_dir)) == 1


def test_another_team_uploading_the_same_bytes_gets_its_own_copy(cast, poems, data_dir):
    response = _api(cast.mallory).post("/api/datasets/", {
        "team": cast.other_team.pk, "file": SimpleUploadedFile("p.txt", POEMS)})

    assert response.status_code == 201
    assert Dataset.objects.count() == 2 and len(_files(data_dir)) == 2


@pytest.mark.parametrize("who", ["bob", "mallory"])
def test_it_hides_edit_download_and_delete_from_annotators_and_outsiders(
    cast, poems, who, django_capture_on_commit_callbacks
):
    user = getattr(cast, who)
    page, api = _page(user), _api(user)
    with django_capture_on_commit_callbacks(execute=True):
        answers = [
            page.post(f"/datasets/{poems.pk}/edit/", {"name": "taken", "description": "mine"}),
            page.get(f"/datasets/{poems.pk}/download/"),
            page.get(f"/datasets/{poems.pk}/delete/"),
            page.post(f"/datasets/{poems.pk}/delete/"),
            api.patch(f"/api/datasets/{poems.pk}/", {"name": "taken"}, content_type="application/json"),
            api.get(f"/api/datasets/{poems.pk}/download/"),
            api.delete(f"/api/datasets/{poems.pk}/"),
        ]

    assert [r.status_code for r in answers] == [404] * len(answers)
    poems.refresh_from_db()
    assert (poems.name, poems.description) == ("poems", "")
    assert poems.absolute_path.read_bytes() == POEMS
