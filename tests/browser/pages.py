"""Steps a person takes in the browser, shared by the browser tests."""


def log_in(page, base_url: str, username: str, password: str, lands_on: str = "/notebooks/") -> None:
    """Log in; members land on their notebooks, annotators on their campaigns."""
    page.goto(f"{base_url}/accounts/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    page.click("button[type=submit]")
    page.wait_for_url(f"{base_url}{lands_on}")


def open_page(browser, base_url: str, path: str, username: str, password: str, height: int = 1400):
    """(page, errors): `path` opened by a logged-in person, the page's script errors collected."""
    page = browser.new_page(viewport={"width": 1280, "height": height})
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    log_in(page, base_url, username, password)
    page.goto(f"{base_url}{path}")
    return page, errors
