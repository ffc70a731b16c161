"""The models and their migrations agree: a model change without its migration (a new choice of a
cell or artifact kind included) fails here, not on someone's database."""

import pytest
from django.core.management import call_command


@pytest.mark.django_db
def test_every_model_change_has_its_migration():
    call_command("makemigrations", "--check", "--dry-run", verbosity=0)
