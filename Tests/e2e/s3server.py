#!/usr/bin/env python3
"""The one moto launcher of the test suites (Swift and Python): an authenticated S3 server.

moto does not check signatures unless IAM authentication is switched on, and then every request
must be signed by a known IAM user. MotoServer therefore starts `moto_server` with
INITIAL_NO_AUTH_ACTION_COUNT set, spends exactly those unauthenticated requests on creating an
IAM user with an allow-everything policy and an access key (through boto3), and creates the
bucket with that key. From then on a wrong secret gets SignatureDoesNotMatch and an unknown key
InvalidAccessKeyId, as on AWS.

moto 5.2.1 checks signatures against a partly *decoded* URL (`%2F` in the query turns into `/`,
`%2B` and non-ASCII escapes in the path are decoded), so it rejects correctly signed requests
for listings with a prefix like `chunks/` or keys with `+`; boto3's too. moto is therefore run
through moto_server_strict.py (same command line as `moto_server`), which makes the signature
check use the request target as sent, like AWS. Pass strict_signatures=False for plain moto.

Python use:
    with MotoServer(bucket="b-test") as s3:
        boto3.client("s3", endpoint_url=s3.endpoint, aws_access_key_id=s3.access_key, ...)

CLI:
    python3 Tests/e2e/s3server.py serve [--bucket NAME] [--region R] [--fault-rate 0.1]
                                        [--fault-seed N] [--fault-pattern after,none]
                                        [--tls] [--no-auth] [--plain-moto]
                                        [--upload-fault refuse-streaming|refuse-checksummed|corrupt-checksummed]
prints ONE JSON line {"endpoint", "access_key", "secret_key", "bucket", "region", "pid", ...}
and runs until stdin reaches EOF (so a test runner that dies takes the server with it) or
SIGTERM/SIGINT arrives; then it stops moto and the fault proxy by PID.
With --fault-rate, "endpoint" is a fault_proxy.py in front of moto ("upstream_endpoint" is moto
itself) that answers 503 for that seeded share of requests. With --tls that proxy serves HTTPS
with a fresh self-signed certificate for 127.0.0.1, whose PEM file is "ca_file". With
--upload-fault that proxy refuses or damages uploads of one form (see fault_proxy.py).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

from fault_proxy import UPLOAD_FAULTS

# The unauthenticated bootstrap: create_user, create_policy, attach_user_policy, create_access_key.
_BOOTSTRAP_REQUESTS = 4
_ALLOW_ALL = json.dumps({"Version": "2012-10-17",
                         "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]})


def _reset_signals() -> None:
    """Unblocks all signals and restores default SIGTERM/SIGINT handling. A signal mask is
    inherited across exec, and test runners start us with some signals blocked (observed under
    `swift test`: moto then ignored SIGTERM and was only stopped by the SIGKILL fallback)."""
    signal.pthread_sigmask(signal.SIG_SETMASK, [])
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, signal.SIG_DFL)


def _die_with_parent() -> None:
    """preexec_fn: a child with sane signal handling that gets SIGTERM when this launcher dies,
    even by SIGKILL (PR_SET_PDEATHSIG, Linux)."""
    _reset_signals()
    try:
        import ctypes
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _stop_pid(process: subprocess.Popen, timeout: float = 5.0) -> None:
    """Stops one child by its PID: SIGTERM, then SIGKILL if it lingers."""
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=timeout)


class MotoServer:
    def __init__(self, bucket: str = "mossaicfs-test", region: str = "us-east-1", auth: bool = True,
                 fault_rate: float = 0.0, fault_seed: int = 1, ready_timeout: float = 30.0,
                 strict_signatures: bool = True, fault_pattern: list[str] | None = None, tls: bool = False,
                 upload_fault: str = ""):
        self.bucket = bucket
        self.region = region
        self.auth = auth
        self.fault_rate = fault_rate
        self.fault_seed = fault_seed
        self.fault_pattern = fault_pattern or []
        self.tls = tls
        self.upload_fault = upload_fault
        self.ca_file: str | None = None
        self._tls_dir: tempfile.TemporaryDirectory | None = None
        self.ready_timeout = ready_timeout
        self.strict_signatures = strict_signatures
        self.access_key = "test"
        self.secret_key = "test"
        self.upstream_endpoint = ""
        self.endpoint = ""
        self._moto: subprocess.Popen | None = None
        self._proxy: subprocess.Popen | None = None
        self._log = tempfile.TemporaryFile()

    @property
    def pid(self) -> int | None:
        return self._moto.pid if self._moto else None

    def info(self) -> dict:
        return {"endpoint": self.endpoint, "access_key": self.access_key, "secret_key": self.secret_key,
                "bucket": self.bucket, "region": self.region, "pid": self.pid,
                "upstream_endpoint": self.upstream_endpoint,
                "proxy_pid": self._proxy.pid if self._proxy else None, "auth": self.auth,
                "fault_rate": self.fault_rate, "fault_pattern": ",".join(self.fault_pattern),
                "ca_file": self.ca_file}

    # -- lifecycle -----------------------------------------------------------------------------

    def start(self) -> "MotoServer":
        try:
            self._start_moto()
            if self.auth:
                self._bootstrap_iam()
            self._create_bucket()
            self.endpoint = self.upstream_endpoint
            if self.fault_rate > 0 or self.fault_pattern or self.tls or self.upload_fault:
                self._start_proxy()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        for attr in ("_proxy", "_moto"):
            process = getattr(self, attr)
            if process is not None:
                _stop_pid(process)
                setattr(self, attr, None)
        if self._tls_dir is not None:
            self._tls_dir.cleanup()
            self._tls_dir = None

    def __enter__(self) -> "MotoServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def log_tail(self, limit: int = 2000) -> str:
        self._log.seek(0)
        return self._log.read().decode(errors="replace")[-limit:]

    # -- steps ---------------------------------------------------------------------------------

    def _start_moto(self) -> None:
        if self.strict_signatures:
            command = [sys.executable, os.path.join(os.path.dirname(os.path.abspath(__file__)), "moto_server_strict.py")]
        else:
            executable = shutil.which("moto_server")
            command = [executable] if executable else [sys.executable, "-m", "moto.server"]
        env = dict(os.environ)
        # Credentials of the caller's environment must not leak into moto's own boto usage.
        for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
            env.pop(name, None)
        if self.auth:
            env["INITIAL_NO_AUTH_ACTION_COUNT"] = str(_BOOTSTRAP_REQUESTS)
        else:
            env.pop("INITIAL_NO_AUTH_ACTION_COUNT", None)
        for _ in range(3):  # the free port can be taken between probing and moto's bind
            port = _free_port()
            self._moto = subprocess.Popen(command + ["-H", "127.0.0.1", "-p", str(port)], env=env,
                                          stdin=subprocess.DEVNULL, stdout=self._log, stderr=self._log,
                                          preexec_fn=_die_with_parent)
            self.upstream_endpoint = f"http://127.0.0.1:{port}"
            if self._wait_ready():
                return
            _stop_pid(self._moto)
            self._moto = None
        raise RuntimeError(f"moto_server did not start; log:\n{self.log_tail()}")

    def _wait_ready(self) -> bool:
        """Polls moto's own API (which is not an authenticated S3/IAM action, so it does not use
        up the unauthenticated bootstrap requests) until it answers or the deadline passes."""
        deadline = time.monotonic() + self.ready_timeout
        delay = 0.05
        while time.monotonic() < deadline:
            if self._moto is None or self._moto.poll() is not None:
                return False
            try:
                with urllib.request.urlopen(self.upstream_endpoint + "/moto-api/data.json", timeout=2) as r:
                    if r.status == 200:
                        return True
            except (urllib.error.URLError, ConnectionError, OSError):
                pass
            time.sleep(delay)
            delay = min(delay * 2, 0.5)
        return False

    def _client(self, service: str, key: str, secret: str):
        import boto3  # imported lazily: the CLI's --help must not pay for it
        from botocore.config import Config
        return boto3.client(service, endpoint_url=self.upstream_endpoint, region_name=self.region,
                            aws_access_key_id=key, aws_secret_access_key=secret,
                            config=Config(retries={"max_attempts": 1}))

    def _bootstrap_iam(self) -> None:
        iam = self._client("iam", "bootstrap", "bootstrap")
        iam.create_user(UserName="mossaicfs-test")
        policy = iam.create_policy(PolicyName="mossaicfs-allow-all", PolicyDocument=_ALLOW_ALL)
        iam.attach_user_policy(UserName="mossaicfs-test", PolicyArn=policy["Policy"]["Arn"])
        key = iam.create_access_key(UserName="mossaicfs-test")["AccessKey"]
        self.access_key, self.secret_key = key["AccessKeyId"], key["SecretAccessKey"]

    def _create_bucket(self) -> None:
        s3 = self._client("s3", self.access_key, self.secret_key)
        if self.region == "us-east-1":
            s3.create_bucket(Bucket=self.bucket)
        else:
            s3.create_bucket(Bucket=self.bucket, CreateBucketConfiguration={"LocationConstraint": self.region})

    def _start_proxy(self) -> None:
        script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fault_proxy.py")
        command = [sys.executable, script, "--upstream", self.upstream_endpoint, "--rate", str(self.fault_rate),
                   "--seed", str(self.fault_seed), "--pattern", ",".join(self.fault_pattern)]
        if self.upload_fault:
            command += ["--upload-fault", self.upload_fault]
        if self.tls:
            cert, key = self._make_certificate()
            command += ["--tls-cert", cert, "--tls-key", key]
            self.ca_file = cert
        self._proxy = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=self._log,
                                       preexec_fn=_die_with_parent)
        assert self._proxy.stdout is not None
        line = self._proxy.stdout.readline()  # bounded: the proxy prints it or exits at once
        if not line:
            raise RuntimeError(f"fault_proxy.py did not start; log:\n{self.log_tail()}")
        self.endpoint = json.loads(line)["endpoint"]

    def _make_certificate(self) -> tuple[str, str]:
        """A self-signed certificate for 127.0.0.1 (IP SAN), valid for a day. Uses the
        `cryptography` package, which moto itself depends on."""
        import datetime
        import ipaddress
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import NameOID

        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
        now = datetime.datetime.now(datetime.timezone.utc)
        cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
                .serial_number(x509.random_serial_number())
                .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
                .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
                .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                .sign(key, hashes.SHA256()))
        self._tls_dir = tempfile.TemporaryDirectory(prefix="s3server-tls-")
        cert_path = os.path.join(self._tls_dir.name, "cert.pem")
        key_path = os.path.join(self._tls_dir.name, "key.pem")
        with open(cert_path, "wb") as f:
            f.write(cert.public_bytes(serialization.Encoding.PEM))
        with open(key_path, "wb") as f:
            f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption()))
        return cert_path, key_path


def _serve(args: argparse.Namespace) -> int:
    server = MotoServer(bucket=args.bucket, region=args.region, auth=not args.no_auth,
                        fault_rate=args.fault_rate, fault_seed=args.fault_seed,
                        strict_signatures=not args.plain_moto,
                        fault_pattern=[p.strip() for p in args.fault_pattern.split(",") if p.strip()],
                        tls=args.tls, upload_fault=args.upload_fault)

    def on_signal(signum: int, _frame: object) -> None:
        raise SystemExit(128 + signum)

    signal.pthread_sigmask(signal.SIG_SETMASK, [])
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        server.start()
        print(json.dumps(server.info()), flush=True)
        # Block until the parent closes our stdin (or dies, which closes it too).
        while sys.stdin.buffer.read(65536):
            pass
    except Exception as error:  # one line for the caller, the details on stderr
        print(f"s3server: {error}", file=sys.stderr, flush=True)
        return 1
    finally:
        server.stop()
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description="Run an authenticated moto S3 server for tests.")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="start moto, print one JSON line, run until stdin EOF or SIGTERM")
    serve.add_argument("--bucket", default="mossaicfs-test")
    serve.add_argument("--region", default="us-east-1")
    serve.add_argument("--fault-rate", type=float, default=0.0,
                       help="put fault_proxy.py in front, answering 503 for this share of requests")
    serve.add_argument("--fault-seed", type=int, default=1)
    serve.add_argument("--fault-pattern", default="",
                       help="instead of --fault-rate: before/after/none per request, comma-separated, cycled")
    serve.add_argument("--tls", action="store_true",
                       help="serve HTTPS (through fault_proxy.py) with a self-signed certificate, see ca_file")
    serve.add_argument("--upload-fault", default="", choices=UPLOAD_FAULTS,
                       help="put fault_proxy.py in front, refusing (501) streaming-signed or CRC-32C-checked uploads, "
                            "or damaging the first checksummed one")
    serve.add_argument("--no-auth", action="store_true",
                       help="skip IAM authentication (moto then accepts any signature)")
    serve.add_argument("--plain-moto", action="store_true",
                       help="run moto_server unpatched (its signature check then rejects some valid requests)")
    args = parser.parse_args()
    return _serve(args)


if __name__ == "__main__":
    sys.exit(main())
