"""What a browser sends when it opens one of the lab's websockets, for channels' WebsocketCommunicator."""

from django.test import Client

ANONYMOUS_HEADERS = [(b"origin", b"http://localhost"), (b"host", b"localhost")]


def session_headers(user) -> list[tuple[bytes, bytes]]:
    """A logged-in user's session cookie, from the lab's own origin."""
    client = Client()
    client.force_login(user)
    return [(b"cookie", f"sessionid={client.cookies['sessionid'].value}".encode()), *ANONYMOUS_HEADERS]
