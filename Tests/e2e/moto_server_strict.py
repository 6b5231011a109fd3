#!/usr/bin/env python3
"""`moto_server` (same command line) whose SigV4 check uses the request target as sent.

moto 5.2.1 verifies signatures against werkzeug's *reconstructed* URL, which decodes part of
the percent-encoding: `%2F` in the query becomes `/`, `%2B` and `%C3%A9` in the path become `+`
and `é`. AWS computes the canonical request from the encoded form the client sent, and every
correct client (boto3 and curl alike) signs that form, so authenticated moto rejects correct
requests for a listing with prefix `chunks/` or a key with `+`. (Check it: with plain
`moto_server` and IAM auth on, boto3's `list_objects_v2(Prefix="a/")` fails with
SignatureDoesNotMatch.)

This wrapper changes that: while moto checks a request's signature it sees the raw
request target (werkzeug's `RAW_URI`) instead of the decoded URL, and requests signed wrongly
still fail.

It also does what AWS does and moto 5.2.1 leaves as a TODO: an upload with an
`x-amz-checksum-crc32c` header whose body does not have that CRC-32C is answered 400 BadDigest
and not stored (needs the `crc32c` package). Nothing else in moto is touched.
"""
from __future__ import annotations

import sys

import base64

import crc32c
from moto.core.authorization import ActionAuthenticatorMixin
from moto.core.responses import BaseResponse
from moto.s3.exceptions import S3ClientError
from moto.s3.responses import S3Response

_original_setup_class = BaseResponse.setup_class
_original_authenticate = ActionAuthenticatorMixin._authenticate_and_authorize_action


def _setup_class(self, request, full_url, headers, use_raw_body=False):  # type: ignore[no-untyped-def]
    _original_setup_class(self, request, full_url, headers, use_raw_body)
    environ = getattr(request, "environ", None)
    self._raw_request_target = environ.get("RAW_URI") if isinstance(environ, dict) else None


def _authenticate_and_authorize_action(self, iam_request_cls, resource="*"):  # type: ignore[no-untyped-def]
    raw = getattr(self, "_raw_request_target", None)
    if not raw:
        return _original_authenticate(self, iam_request_cls, resource)
    decoded, self.uri = self.uri, raw
    try:
        return _original_authenticate(self, iam_request_cls, resource)
    finally:
        self.uri = decoded


_original_key_response = S3Response._key_response


def _key_response(self, request, full_url):  # type: ignore[no-untyped-def]
    claimed = request.headers.get("x-amz-checksum-crc32c")
    if request.method == "PUT" and claimed is not None and "aws-chunked" not in request.headers.get("content-encoding", ""):
        body = self.raw_body if isinstance(self.raw_body, bytes) else (self.raw_body or b"")
        actual = base64.b64encode(crc32c.crc32c(body).to_bytes(4, "big")).decode()
        if actual != claimed:
            raise S3ClientError("BadDigest", "The CRC32C you specified did not match the calculated checksum.")
    return _original_key_response(self, request, full_url)


S3Response._key_response = _key_response  # type: ignore[method-assign]
BaseResponse.setup_class = _setup_class  # type: ignore[method-assign]
ActionAuthenticatorMixin._authenticate_and_authorize_action = _authenticate_and_authorize_action  # type: ignore[method-assign]

if __name__ == "__main__":
    from moto.server import main

    sys.exit(main())
