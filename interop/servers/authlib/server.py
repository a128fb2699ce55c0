"""Authlib (Flask) as an authorization server for `figure2 check` (docs/interop.md).

The smallest configuration Authlib's documentation gives that issues refresh tokens:
the SQLAlchemy integration's client and token models
(https://docs.authlib.org/en/latest/flask/2/authorization-server.html), the password
and refresh-token grants as the "Grant Types" pages write them, the RFC 9068 JWT access
token generator (https://docs.authlib.org/en/latest/specs/rfc9068.html), the RFC 7009
revocation endpoint from the SQLAlchemy helpers, and one protected resource with the
RFC 9068 validator. Plus RFC 8414 metadata and the JWKS, which Authlib leaves to the
application. One setting differs from the defaults: INCLUDE_NEW_REFRESH_TOKEN = True
(rotation), because the documented revoke_old_credential otherwise ends the family
after one refresh; access tokens live 5 seconds so the checker waits little.

Usage: python3 server.py PORT   (loopback only; in-memory SQLite)
"""
import sys
import time

from authlib.common.security import generate_token
from authlib.integrations.flask_oauth2 import AuthorizationServer, ResourceProtector
from authlib.integrations.sqla_oauth2 import (
    OAuth2ClientMixin,
    OAuth2TokenMixin,
    create_query_client_func,
    create_revocation_endpoint,
    create_save_token_func,
)
from authlib.oauth2.rfc6749 import grants
from authlib.oauth2.rfc9068 import JWTBearerTokenGenerator, JWTBearerTokenValidator
from flask import Flask, jsonify
from joserfc.jwk import KeySet, RSAKey
from sqlalchemy import Column, Integer, String, create_engine
from sqlalchemy.orm import declarative_base, sessionmaker
from sqlalchemy.pool import StaticPool

PORT = int(sys.argv[1])
ISSUER = f"http://127.0.0.1:{PORT}"
ACCESS_TOKEN_SECONDS = 5  # short, so the checker's expiry checks wait little

Base = declarative_base()
engine = create_engine("sqlite://", connect_args={"check_same_thread": False}, poolclass=StaticPool)
session = sessionmaker(bind=engine)()


class User(Base):
    __tablename__ = "user"
    id = Column(Integer, primary_key=True)
    username = Column(String(40), unique=True)
    password = Column(String(80))

    def get_user_id(self):
        return self.id


class Client(Base, OAuth2ClientMixin):
    __tablename__ = "oauth2_client"
    id = Column(Integer, primary_key=True)


class Token(Base, OAuth2TokenMixin):
    __tablename__ = "oauth2_token"
    id = Column(Integer, primary_key=True)
    user_id = Column(Integer)


Base.metadata.create_all(engine)
session.add(User(username="alice", password="alice-password"))
for client_id, secret in [("demo-client", "demo-secret"), ("other-client", "other-secret")]:
    client = Client(client_id=client_id, client_secret=secret)
    client.set_client_metadata(
        {
            "grant_types": ["password", "refresh_token", "client_credentials"],
            "scope": "read write",
            "token_endpoint_auth_method": "client_secret_basic",
        }
    )
    session.add(client)
session.commit()

KEYS = KeySet([RSAKey.generate_key(2048, parameters={"kid": "authlib-1", "use": "sig", "alg": "RS256"}, private=True)])


class PasswordGrant(grants.ResourceOwnerPasswordCredentialsGrant):
    def authenticate_user(self, username, password):
        user = session.query(User).filter_by(username=username).first()
        if user is not None and user.password == password:
            return user


class RefreshTokenGrant(grants.RefreshTokenGrant):
    # Without it Authlib issues no new refresh token, yet revoke_old_credential (which
    # the documentation says to write) revokes the old one: a family would refresh once.
    INCLUDE_NEW_REFRESH_TOKEN = True

    def authenticate_refresh_token(self, refresh_token):
        token = session.query(Token).filter_by(refresh_token=refresh_token).first()
        if token and not token.refresh_token_revoked_at:
            return token

    def authenticate_user(self, credential):
        return session.get(User, credential.user_id)

    def revoke_old_credential(self, credential):
        credential.refresh_token_revoked_at = int(time.time())
        session.add(credential)
        session.commit()


class JWTGenerator(JWTBearerTokenGenerator):
    def get_jwks(self):
        return KEYS


class JWTValidator(JWTBearerTokenValidator):
    def get_jwks(self):
        return KEYS


app = Flask(__name__)
server = AuthorizationServer(
    app,
    query_client=create_query_client_func(session, Client),
    save_token=create_save_token_func(session, Token),
)
server.register_grant(PasswordGrant)
server.register_grant(RefreshTokenGrant)
server.register_grant(grants.ClientCredentialsGrant)
server.register_token_generator(
    "default",
    JWTGenerator(
        issuer=ISSUER,
        refresh_token_generator=lambda **_: generate_token(48),
        expires_generator=lambda client, grant_type: ACCESS_TOKEN_SECONDS,
    ),
)
server.register_endpoint(create_revocation_endpoint(session, Token))
require_oauth = ResourceProtector()
require_oauth.register_token_validator(JWTValidator(issuer=ISSUER, resource_server="demo-client"))


@app.route("/token", methods=["POST"])
def issue_token():
    return server.create_token_response()


@app.route("/revoke", methods=["POST"])
def revoke_token():
    return server.create_endpoint_response("revocation")


@app.route("/.well-known/oauth-authorization-server")
def metadata():
    return jsonify(
        issuer=ISSUER,
        token_endpoint=f"{ISSUER}/token",
        revocation_endpoint=f"{ISSUER}/revoke",
        jwks_uri=f"{ISSUER}/jwks",
        grant_types_supported=["password", "refresh_token", "client_credentials"],
        response_types_supported=[],
        token_endpoint_auth_methods_supported=["client_secret_basic"],
        scopes_supported=["read", "write"],
    )


@app.route("/jwks")
def jwks():
    return jsonify(KEYS.as_dict(private=False))


@app.route("/resource")
@require_oauth("read")
def resource():
    return jsonify(ok=True)


@app.route("/admin")
@require_oauth("admin")
def admin():
    return jsonify(ok=True)


if __name__ == "__main__":
    app.run(host="127.0.0.1", port=PORT, threaded=False)
