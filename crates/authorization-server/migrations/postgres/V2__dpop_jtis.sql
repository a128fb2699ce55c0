-- RFC 9449 §11.1 across instances: the jti (SHA-256) of every DPoP proof the token
-- endpoint accepted, until its proof would fail the iat check anyway.
CREATE TABLE dpop_jtis (
    digest  BYTEA PRIMARY KEY,
    until   BIGINT NOT NULL
);
