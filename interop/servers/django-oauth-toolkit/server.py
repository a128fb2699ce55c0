"""django-oauth-toolkit as an authorization server for `figure2 check` (docs/interop.md).

The smallest configuration of DOT's "Getting started" / "Django Rest Framework" tutorials
that issues refresh tokens, in one file: `oauth2_provider` installed, its URLs under
/o/, a confidential Application with the password grant (DOT issues a refresh token with
it and rotates it on refresh by default), a user, and one protected resource per scope
(DOT's ScopedProtectedResourceView). Settings changed from DOT's defaults: SCOPES
(read, write, admin) and ACCESS_TOKEN_EXPIRE_SECONDS = 5, so the checker's expiry
checks wait little.

DOT publishes no RFC 8414 metadata unless OpenID Connect is enabled, so this file serves a
static metadata document that lists DOT's own endpoints (nothing else is added).

Usage: python3 server.py PORT   (loopback only; SQLite in a temporary directory)
"""
import os
import sys
import tempfile

import django
from django.conf import settings

PORT = int(sys.argv[1])
ISSUER = f"http://127.0.0.1:{PORT}"
DB = os.path.join(tempfile.mkdtemp(prefix="dot-"), "db.sqlite3")

settings.configure(
    DEBUG=False,
    SECRET_KEY="interop-only-not-secret",
    ALLOWED_HOSTS=["127.0.0.1", "localhost"],
    ROOT_URLCONF=__name__,
    INSTALLED_APPS=["django.contrib.auth", "django.contrib.contenttypes", "oauth2_provider"],
    MIDDLEWARE=[],
    DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": DB}},
    USE_TZ=True,
    OAUTH2_PROVIDER={
        "SCOPES": {"read": "Read scope", "write": "Write scope", "admin": "Admin scope"},
        "ACCESS_TOKEN_EXPIRE_SECONDS": 5,
    },
)
django.setup()

from django.http import JsonResponse  # noqa: E402
from django.urls import include, path  # noqa: E402
from oauth2_provider.views.generic import ScopedProtectedResourceView  # noqa: E402


class Resource(ScopedProtectedResourceView):
    required_scopes = ["read"]

    def get(self, request, *args, **kwargs):
        return JsonResponse({"ok": True})


class Admin(Resource):
    required_scopes = ["admin"]


def metadata(request):
    return JsonResponse(
        {
            "issuer": ISSUER,
            "token_endpoint": f"{ISSUER}/o/token/",
            "revocation_endpoint": f"{ISSUER}/o/revoke_token/",
            "introspection_endpoint": f"{ISSUER}/o/introspect/",
            "grant_types_supported": ["password", "refresh_token"],
            "response_types_supported": [],
            "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
            "scopes_supported": ["read", "write", "admin"],
        }
    )


urlpatterns = [
    path("o/", include("oauth2_provider.urls", namespace="oauth2_provider")),
    path(".well-known/oauth-authorization-server", metadata),
    path("resource", Resource.as_view()),
    path("admin", Admin.as_view()),
]

if __name__ == "__main__":
    from django.contrib.auth.models import User
    from django.core.management import call_command
    from oauth2_provider.models import Application

    call_command("migrate", verbosity=0)
    alice = User.objects.create_user("alice", password="alice-password")
    for client_id, secret in [("demo-client", "demo-secret"), ("other-client", "other-secret")]:
        Application.objects.create(
            name=client_id,
            client_id=client_id,
            client_secret=secret,
            client_type=Application.CLIENT_CONFIDENTIAL,
            authorization_grant_type=Application.GRANT_PASSWORD,
            user=alice,
        )
    call_command("runserver", f"127.0.0.1:{PORT}", use_reloader=False, use_threading=False)
