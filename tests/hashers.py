"""A password hasher for tests: Django's PBKDF2 at 1,000 iterations instead of a million.

The iteration count is stored in each hash, so the lab processes the tests start (web, workers), which
use the default hashers, still verify these passwords.
"""

from django.contrib.auth.hashers import PBKDF2PasswordHasher


class FastPBKDF2PasswordHasher(PBKDF2PasswordHasher):
    iterations = 1000
