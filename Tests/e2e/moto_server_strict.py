#!/usr/bin/env python3
"""`moto_server` (same command line) whose SigV4 check uses the request target as sent.

moto 5.2.1 verifies signatures against werkzeug's *reconstructed* URL, which decodes part of
the percent-encoding: `%2F` in the query becomes `/`, `%2B` and `%C3%A9` in the path become `+`
and `é`. AWS computes the canonical request from the encoded form the client sent, and every
correct client (boto3 and curl alike) signs that form, so authenticated moto rejects correct
requests for a listing with prefix `chunks/` or a key with `+`. (Check it: with plain
`moto_server` and IAM auth on, boto3's `list_objects_v2(Prefix="a/")` fails with
SignatureDoesNotMatch.)

This wrapper changes only that: while moto checks a request's signature it sees the raw
request target (werkzeug's `RAW_URI`) instead of the decoded URL. Nothing else in moto is
touched, and requests signed wrongly still fail.
"""
from __future__ import annotations

import sys

from moto.core.authorization import ActionAuthenticatorMixin
from moto.core.responses import BaseResponse

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


BaseResponse.setup_class = _setup_class  # type: ignore[method-assign]
ActionAuthenticatorMixin._authenticate_and_authorize_action = _authenticate_and_authorize_action  # type: ignore[method-assign]

if __name__ == "__main__":
    from moto.server import main

    sys.exit(main())
