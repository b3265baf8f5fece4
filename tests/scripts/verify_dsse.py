"""Checks a DSSE envelope independently of scratchpack, with securesystemslib.

usage: verify_dsse.py PUBLIC_KEY.pem ENVELOPE_FILE
Exits 0 and prints the statement's predicate type and subject digests (JSON) when a signature of
the envelope verifies with the key; exits 1 otherwise.
"""
import json
import sys

from cryptography.hazmat.primitives import serialization
from securesystemslib.dsse import Envelope
from securesystemslib.signer import SSlibKey

public = serialization.load_pem_public_key(open(sys.argv[1], "rb").read())
data = json.load(open(sys.argv[2]))
keyids = [s["keyid"] for s in data["signatures"]] or ["none"]
keys = [SSlibKey.from_crypto(public, keyid=keyid) for keyid in keyids]
envelope = Envelope.from_dict(data)
try:
    envelope.verify(keys, 1)
except Exception as error:  # VerificationError, or a malformed signature
    print(f"envelope does not verify: {error}", file=sys.stderr)
    sys.exit(1)
statement = json.loads(envelope.payload)
assert statement["_type"] == "https://in-toto.io/Statement/v1", statement["_type"]
print(json.dumps({
    "predicateType": statement["predicateType"],
    "subjects": sorted("sha256:" + s["digest"]["sha256"] for s in statement["subject"]),
}))
