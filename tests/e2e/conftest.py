from tests.e2e.support import site

__all__ = ["site"]
