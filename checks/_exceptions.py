"""The errors of the admin client, translated from httpx at one boundary.

Every failure to read a proxy's admin interface surfaces as one of these; callers
never see an `httpx` exception. The checks turn any of them into an `error`
result (fail closed), never a pass.

```
AdminError
 ├── AdminTransportError        no usable answer reached us
 │    ├── AdminUnreachable      refused, reset, DNS, no route   (retried)
 │    └── AdminTimeout          connect/read timeout or the total deadline
 │                              (a hanging or byte-by-byte-slow server)
 ├── AdminBadResponse           an answer, but not one we can trust
 │    ├── AdminStatusError      unexpected HTTP status (500, 404, ...)
 │    ├── AdminBodyTooLarge     body above the client's size cap
 │    └── AdminDecodeError      garbage, truncated or mistyped JSON/text
 └── AdminPathNotAllowed        a path outside the read-only allowlist
                                (a programming error, raised before any I/O)
```
"""

from __future__ import annotations

__all__ = [
    "AdminError",
    "AdminTransportError",
    "AdminUnreachable",
    "AdminTimeout",
    "AdminBadResponse",
    "AdminStatusError",
    "AdminBodyTooLarge",
    "AdminDecodeError",
    "AdminPathNotAllowed",
]


class AdminError(Exception):
    """Base class: reading an admin endpoint failed. `url` names what was read."""

    def __init__(self, message: str, *, url: str = "") -> None:
        super().__init__(message)
        self.url = url

    @property
    def kind(self) -> str:
        """Short machine-readable kind, e.g. `unreachable`, for JSON output."""
        return _KINDS.get(type(self), "error")


class AdminTransportError(AdminError):
    """No usable HTTP answer arrived."""


class AdminUnreachable(AdminTransportError):
    """Connection refused, reset or not routable."""


class AdminTimeout(AdminTransportError):
    """A connect/read timeout, or the per-request total deadline passed."""


class AdminBadResponse(AdminError):
    """An answer arrived but is unusable."""


class AdminStatusError(AdminBadResponse):
    """The HTTP status was not one the endpoint is expected to return."""

    def __init__(self, message: str, *, url: str = "", status: int = 0) -> None:
        super().__init__(message, url=url)
        self.status = status


class AdminBodyTooLarge(AdminBadResponse):
    """The body exceeded the client's size cap; reading stopped there."""


class AdminDecodeError(AdminBadResponse):
    """The body is not valid JSON/text of the expected shape (garbage, truncated)."""


class AdminPathNotAllowed(AdminError):
    """The path is not on the read-only allowlist; nothing was sent."""


_KINDS: dict[type, str] = {
    AdminUnreachable: "unreachable",
    AdminTimeout: "timeout",
    AdminStatusError: "bad-status",
    AdminBodyTooLarge: "too-large",
    AdminDecodeError: "bad-body",
    AdminBadResponse: "bad-response",
    AdminPathNotAllowed: "path-not-allowed",
}
