from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "lab.accounts"
    label = "accounts"

    def ready(self):
        from lab.accounts import throttling  # noqa: F401  (counts failed logins: user_login_failed)
