"""Half a surrogate pair ("\\ud800") is valid JSON but not Unicode text: PostgreSQL's json types refuse it,
so a cell config holding one was a 500 when stored. Every JSON from outside is parsed by
training.json_limits.loads, which refuses it as bad JSON: a 400 in the API, a named line in a dataset."""

import json

import pytest
from django.test import Client
from rest_framework.authtoken.models import Token

from lab.datasets.actions import create_dataset_from_path
from lab.datasets.ingest import IngestError
from tests.builders import shakespeare_notebook
from training.json_limits import NotUnicode, loads


@pytest.mark.parametrize("text", ['"\\ud800"', '{"a": ["x\\udfff"]}', '{"\\uDBFF": 1}', '["\\ud83d\\ud83d"]'])
def test_a_lone_surrogate_is_bad_json(text):
    with pytest.raises(json.JSONDecodeError, match="lone surrogate"):
        loads(text)


@pytest.mark.parametrize("text", ['"\\ud83d\\ude00"', '"\\\\ud800"', '"\\u00e9 \\uffff"'])
def test_pairs_escaped_backslashes_and_other_escapes_are_text(text):
    assert loads(text) == json.loads(text)


@pytest.mark.django_db
def test_the_api_answers_400_where_storing_it_was_a_500(cast, sample_data):
    cells = shakespeare_notebook(cast.team, cast.alice, sample_data["corpora/tinyshakespeare.txt"])
    api = Client(headers={"Authorization": f"Token {Token.objects.create(user=cast.alice).key}"})

    response = api.patch(f"/api/cells/{cells['pretrain'].pk}/", '{"config": {"sample_prompt": "ROMEO\\ud800"}}',
                         content_type="application/json")

    assert response.status_code == 400 and "lone surrogate" in response.json()["detail"]
    cells["pretrain"].refresh_from_db()
    assert cells["pretrain"].config["sample_prompt"] == "ROMEO:"


@pytest.mark.django_db
def test_a_dataset_line_with_one_is_named(cast, tmp_path):
    path = tmp_path / "sft.jsonl"
    path.write_text('{"prompt": "Hi", "completion": "Hello"}\n{"prompt": "Hi\\udc00", "completion": "Hello"}\n')

    with pytest.raises(IngestError) as refused:
        create_dataset_from_path(cast.team, cast.alice, path)

    assert refused.value.line == 2 and "lone surrogate" in refused.value.message


def test_the_error_is_a_not_unicode_json_error():
    with pytest.raises(NotUnicode):
        loads(b'["\\ud800"]')
