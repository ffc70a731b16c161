from workers.app import app

__all__ = ["app"]
