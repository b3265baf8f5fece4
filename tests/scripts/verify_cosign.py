"""Checks a cosign signature independently of scratchpack, with pyca/cryptography.

usage: verify_cosign.py PUBLIC_KEY.pem PAYLOAD_FILE SIGNATURE_BASE64
Exits 0 and prints the payload's docker-manifest-digest when the ECDSA P-256 / SHA-256 signature
covers the payload's exact bytes; exits 1 otherwise.
"""
import base64
import json
import sys

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

key = serialization.load_pem_public_key(open(sys.argv[1], "rb").read())
payload = open(sys.argv[2], "rb").read()
signature = base64.b64decode(sys.argv[3])
try:
    key.verify(signature, payload, ec.ECDSA(hashes.SHA256()))
except InvalidSignature:
    print("signature does not verify", file=sys.stderr)
    sys.exit(1)
print(json.loads(payload)["critical"]["image"]["docker-manifest-digest"])
