"""An auditor with nothing but the published key set verifies edgevote receipts and tokens
with off-the-shelf JOSE libraries (jwcrypto and PyJWT), not with edgevote's own code."""

import base64
import hashlib
import json
import os
import pathlib
import subprocess

import jwt
import pytest
from jwcrypto import jwk, jws

REPO = pathlib.Path(__file__).resolve().parents[2]
BIN = pathlib.Path(os.environ.get("EDGEVOTE_BIN", REPO / "target" / "debug" / "edgevote"))


def edgevote(cwd, *args):
    out = subprocess.run([str(BIN), *args], cwd=cwd, capture_output=True, text=True, check=False)
    assert out.returncode == 0, f"edgevote {args} failed: {out.stdout}\n{out.stderr}"
    return out.stdout.strip()


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """Keys, an election, a token and a receipt made by the edgevote CLI."""
    assert BIN.is_file(), f"build the CLI first (cargo build -p edgevote); missing {BIN}"
    d = tmp_path_factory.mktemp("edgevote")
    edgevote(d, "keys", "gen", "--role", "authority")
    edgevote(d, "keys", "gen", "--role", "edge", "--edge", "offline", "--region", "local")
    edgevote(d, "election", "create", "--id", "ref-py", "--title", "Python check",
             "--option", "yes", "--option", "no", "--closes", "+1h")
    token = edgevote(d, "token", "issue", "--voter", "voter-py")
    receipt = edgevote(d, "receipt", "issue", "--token", token, "--choice", "yes")
    keyset = (d / "edgevote-keys" / "keyset.json").read_text()
    return {"token": token, "receipt": receipt, "keyset": keyset}


def header_of(compact):
    part = compact.split(".")[0]
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))


def test_receipt_verifies_with_jwcrypto(world):
    keys = jwk.JWKSet.from_json(world["keyset"])
    header = header_of(world["receipt"])
    assert header["alg"] == "EdDSA"
    assert header["typ"] == "edgevote-receipt+jws"
    key = keys.get_key(header["kid"])
    assert key is not None, "the receipt's kid is in the published key set"
    token = jws.JWS()
    token.deserialize(world["receipt"])
    token.verify(key, alg="EdDSA")
    claims = json.loads(token.payload)
    assert claims["election"] == "ref-py"
    assert len(base64.urlsafe_b64decode(claims["vote_id"] + "=")) == 32


def test_receipt_verifies_with_pyjwt(world):
    keyset = jwt.PyJWKSet.from_json(world["keyset"])
    header = jwt.get_unverified_header(world["receipt"])
    key = next(k for k in keyset.keys if k.key_id == header["kid"])
    claims = jwt.api_jws.decode(world["receipt"], key.key, algorithms=["EdDSA"])
    assert json.loads(claims)["election"] == "ref-py"


def test_token_is_a_standard_jwt(world):
    keyset = jwt.PyJWKSet.from_json(world["keyset"])
    header = jwt.get_unverified_header(world["token"])
    assert header["typ"] == "edgevote-token+jwt"
    key = next(k for k in keyset.keys if k.key_id == header["kid"])
    claims = jwt.decode(world["token"], key.key, algorithms=["EdDSA"], audience="ref-py")
    assert claims["sub"] == "voter-py"


def test_kids_are_rfc7638_thumbprints(world):
    for entry in json.loads(world["keyset"])["keys"]:
        assert jwk.JWK(**{k: entry[k] for k in ("kty", "crv", "x")}).thumbprint() == entry["kid"]
        canonical = json.dumps({"crv": entry["crv"], "kty": entry["kty"], "x": entry["x"]},
                               separators=(",", ":"), sort_keys=True)
        digest = base64.urlsafe_b64encode(hashlib.sha256(canonical.encode()).digest()).rstrip(b"=")
        assert digest.decode() == entry["kid"]


def test_tampered_receipt_fails_third_party_verification(world):
    keys = jwk.JWKSet.from_json(world["keyset"])
    header_b64, payload_b64, sig = world["receipt"].split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload_b64 + "=" * (-len(payload_b64) % 4)))
    claims["election"] = "other"
    forged_payload = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    forged = jws.JWS()
    forged.deserialize(f"{header_b64}.{forged_payload}.{sig}")
    with pytest.raises(jws.InvalidJWSSignature):
        forged.verify(keys.get_key(header_of(world["receipt"])["kid"]), alg="EdDSA")


def test_receipt_does_not_verify_under_the_authority_key(world):
    keys = json.loads(world["keyset"])["keys"]
    authority = next(k for k in keys if k["edgevote_role"] == "authority")
    token = jws.JWS()
    token.deserialize(world["receipt"])
    with pytest.raises(jws.InvalidJWSSignature):
        token.verify(jwk.JWK(**{k: authority[k] for k in ("kty", "crv", "x")}), alg="EdDSA")
