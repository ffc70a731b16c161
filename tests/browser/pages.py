"""Steps a person takes in the browser, shared by the browser tests."""


def log_in(page, base_url: str, username: str, password: str, lands_on: str = "/notebooks/") -> None:
    """Log in; members land on their notebooks, annotators on their campaigns."""
    page.goto(f"{base_url}/accounts/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    page.click("button[type=submit]")
    page.wait_for_url(f"{base_url}{lands_on}")
