"""The demo shop's applications (``python -m examples.apps.shop``) and launcher file."""
