"""Resumable uploads: chunks at offsets, a dropped connection resumed, then one validated dataset."""

import hashlib
from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone
from rest_framework.authtoken.models import Token

from lab.datasets.models import Dataset, Upload
from lab.datasets.uploads import remove_stale_uploads

pytestmark = pytest.mark.django_db


def _api(user) -> Client:
    return Client(headers={"Authorization": f"Token {Token.objects.get_or_create(user=user)[0].key}"})


def _start(api, filename, size):
    return api.post("/api/uploads/", {"filename": filename, "size": size}, content_type="application/json")


def _send(api, upload_id, offset, chunk: bytes):
    return api.patch(f"/api/uploads/{upload_id}/?offset={offset}", chunk, content_type="application/octet-stream")


def test_it_resumes_after_a_dropped_connection_and_makes_one_dataset(cast, sample_data, data_dir):
    content = sample_data["classification/sms-spam-5k.tsv"].read_bytes()
    api = _api(cast.alice)
    upload = _start(api, "sms.tsv", len(content)).json()
    third = len(content) // 3

    assert _send(api, upload["id"], 0, content[:third]).json()["offset"] == third
    # The connection drops; the browser does not know what arrived and sends the first chunk again.
    stale = _send(api, upload["id"], 0, content[:third])
    assert stale.status_code == 409 and stale.json()["offset"] == third
    resume_at = api.get(f"/api/uploads/{upload['id']}/").json()["offset"]
    assert _send(api, upload["id"], resume_at, content[resume_at:2 * third]).status_code == 200
    assert _send(api, upload["id"], 2 * third, content[2 * third:]).json()["offset"] == len(content)
    response = api.post(f"/api/uploads/{upload['id']}/complete/", {"team": cast.team.pk, "name": "sms"},
                        content_type="application/json")

    assert response.status_code == 201, response.content
    dataset = Dataset.objects.get()
    assert (dataset.name, dataset.kind, dataset.n_records) == ("sms", "classification", 5000)
    assert dataset.sha256 == hashlib.sha256(content).hexdigest()
    assert dataset.absolute_path.read_bytes() == content
    assert not Upload.objects.exists() and not list((data_dir / "uploads").iterdir())

    again = _start(api, "sms-again.tsv", len(content)).json()
    _send(api, again["id"], 0, content)
    response = api.post(f"/api/uploads/{again['id']}/complete/", {"team": cast.team.pk}, content_type="application/json")
    assert response.status_code == 200 and response.json()["already_uploaded"] and response.json()["id"] == dataset.pk
    assert Dataset.objects.count() == 1


def test_it_will_not_complete_before_every_byte_arrived_and_keeps_what_did(cast):
    api = _api(cast.alice)
    upload = _start(api, "notes.txt", 20).json()
    _send(api, upload["id"], 0, b"half of it\n")

    response = api.post(f"/api/uploads/{upload['id']}/complete/", {"team": cast.team.pk}, content_type="application/json")

    assert response.status_code == 400 and "only 11 of 20 bytes arrived" in response.json()["error"]
    assert api.get(f"/api/uploads/{upload['id']}/").json()["offset"] == 11  # still there to resume
    assert not Dataset.objects.exists()


def test_a_file_that_fails_validation_leaves_nothing_behind(cast, data_dir):
    api = _api(cast.alice)
    content = b'{"text": "fine"}\n{"text": oops}\n'
    upload = _start(api, "bad.jsonl", len(content)).json()
    _send(api, upload["id"], 0, content)

    response = api.post(f"/api/uploads/{upload['id']}/complete/", {"team": cast.team.pk}, content_type="application/json")

    assert response.status_code == 400
    assert (response.json()["file"], response.json()["line"]) == ("bad.jsonl", 2)
    assert not Dataset.objects.exists() and not Upload.objects.exists()
    assert not any(p.is_file() for p in data_dir.rglob("*"))


def test_it_refuses_before_any_byte_a_type_it_cannot_read_or_a_size_over_the_limit(cast, settings):
    settings.LAB_UPLOAD_MAX_BYTES = 1000
    api = _api(cast.alice)

    assert "unsupported file type" in _start(api, "model.pdf", 10).json()["error"]
    assert "larger than the limit of 1000 bytes" in _start(api, "big.txt", 1001).json()["error"]
    assert not Upload.objects.exists()


def test_it_refuses_more_bytes_than_announced(cast):
    api = _api(cast.alice)
    upload = _start(api, "notes.txt", 5).json()

    response = _send(api, upload["id"], 0, b"more than five")

    assert response.status_code == 400 and "more bytes than the 5 announced" in response.json()["error"]
    assert api.get(f"/api/uploads/{upload['id']}/").json()["offset"] == 0


def test_an_upload_is_its_owners_alone(cast):
    upload = _start(_api(cast.alice), "notes.txt", 5).json()

    for other in (cast.carol, cast.mallory):
        api = _api(other)
        assert api.get(f"/api/uploads/{upload['id']}/").status_code == 404
        assert _send(api, upload["id"], 0, b"12345").status_code == 404
        assert api.post(f"/api/uploads/{upload['id']}/complete/", {"team": cast.team.pk},
                        content_type="application/json").status_code == 404
    assert Upload.objects.get().received == 0


def test_abandoned_uploads_are_removed_after_a_day(cast):
    api = _api(cast.alice)
    old = Upload.objects.get(pk=_start(api, "old.txt", 5).json()["id"])
    fresh = Upload.objects.get(pk=_start(api, "fresh.txt", 5).json()["id"])
    Upload.objects.filter(pk=old.pk).update(created_at=timezone.now() - timedelta(days=2))

    assert remove_stale_uploads() == 1
    assert list(Upload.objects.all()) == [fresh]
    assert not old.part_path.exists() and fresh.part_path.exists()
