"""Response headers for the pages a personal link opens, Content-Security-Policy hashes, and the
login throttle's client address and lock-out page."""

import base64
import hashlib
from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils.cache import add_never_cache_headers

# URL namespaces whose routes carry a participant's signed token: the participant pages (/s/…,
# /s/my-data/…), the assignment API (/api/v1/assignment/…) and the front door (/join/…, whose
# consent page and e-mail confirmation link carry a signed pass).
PERSONAL_NAMESPACES = frozenset({"surveys", "trials", "join"})


def csp_hash(source: str) -> str:
    """A Content-Security-Policy hash-source (CSP3) that allows exactly this inline text."""
    return f"'sha256-{base64.b64encode(hashlib.sha256(source.encode()).digest()).decode()}'"


class PersonalLinkHeadersMiddleware:
    """``Cache-Control: no-store`` (Django's ``never_cache``) and ``Referrer-Policy:
    strict-origin`` on every response of a route that takes a signed participant token.

    A shared computer's browser cache or a proxy must not keep a participant's answers or
    consent page, and the token in the URL must not leave in a ``Referer`` header, not even to
    this server's own static files (a CDN or proxy in front logs it): ``strict-origin`` sends
    the origin only. (``no-referrer`` would also blank the ``Origin`` of the page's own form
    posts, which Django's CSRF check then refuses.) Set here rather than on each view, so that
    a route added to those namespaces later is covered too.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        match = getattr(request, "resolver_match", None)
        if match is not None and PERSONAL_NAMESPACES.intersection(match.namespaces):
            add_never_cache_headers(response)
            # Listed below SecurityMiddleware, so this wins over SECURE_REFERRER_POLICY there.
            response.headers["Referrer-Policy"] = "strict-origin"
        return response


def client_ip(request: HttpRequest) -> str:
    """The client address django-axes counts login failures by (``AXES_CLIENT_IP_CALLABLE``).

    The socket's peer (``REMOTE_ADDR``), unless the deployment says it sits behind a
    TLS-terminating proxy (``SECURE_PROXY_SSL_HEADER``): then every request's peer is the
    proxy, and the client is the right-most ``X-Forwarded-For`` entry, the one that proxy
    appended. The entries left of it come from the client and are never trusted.
    """
    forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
    if getattr(settings, "SECURE_PROXY_SSL_HEADER", None) and forwarded.strip():
        return forwarded.split(",")[-1].strip()
    return request.META.get("REMOTE_ADDR", "")


def lockout_response(
    request: HttpRequest, original_response: HttpResponse | None, credentials: dict | None
) -> HttpResponse:
    """The page a locked-out sign-in gets (``AXES_LOCKOUT_CALLABLE``): 429 Too Many Requests
    with what happened and when to try again, on either login page."""
    context = {
        "failure_limit": settings.AXES_FAILURE_LIMIT,
        "cooloff_minutes": round(settings.AXES_COOLOFF_TIME.total_seconds() / 60),
    }
    return render(request, "registration/locked_out.html", context, status=429)
