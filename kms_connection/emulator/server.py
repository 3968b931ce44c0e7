"""The HTTP side: AWS JSON 1.1 as KMS speaks it, and STS's query protocol, on a ``ThreadingHTTPServer``.

``POST /`` with ``X-Amz-Target: TrentService.<Operation>`` and a JSON body; answers are JSON with
``Content-Type: application/x-amz-json-1.1``, errors ``{"__type": ..., "message": ...}`` with HTTP 400 (client
errors, throttling) or 500 (``KMSInternalException``), which botocore maps to its modeled exceptions.

Order of checks for a KMS request, each answered as AWS answers it:
body size and framing (413 / 411) -> SigV4 header (``MissingAuthenticationTokenException``,
``IncompleteSignatureException``) -> the credentials' account (``ExpiredTokenException`` for an expired session,
``UnrecognizedClientException`` for a session token that is not the one issued; see ``accounts``) -> target
(``UnknownOperationException``, also for a KMS operation the emulator does not implement, as AWS answers an
operation a service does not have) -> JSON body (``SerializationException``) -> faults (a denied operation's
``AccessDeniedException`` first) -> model validation (``ValidationException``) -> the operation.

Every answer but STS's, whatever the method or however malformed the request, is JSON: KMS's
``{"__type", "message"}`` shape (405 for a method other than POST, 501 for one http.server does not know), or the
admin endpoints' own. STS answers XML, errors included.

Any path outside ``/_emulator/`` is a KMS or STS request (botocore posts to the path of ``endpoint_url``, "/" by
default): a form-encoded POST without ``X-Amz-Target`` is STS's query protocol (``sts``: ``GetCallerIdentity`` and
``AssumeRole``, XML answers), anything else KMS's. ``/_emulator/`` holds the admin endpoints (see ``admin``),
which need no signature.

Robustness: bodies are capped (``max_body_bytes``); every connection has a socket timeout so a half-sent
request frees its thread; ``stop`` closes idle keep-alive connections too, so no client reaches a stopped
emulator through a pooled connection.
"""

from __future__ import annotations

import contextlib
import json
import socket
import sys
import threading
import uuid
from collections.abc import Callable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

from . import admin, sts
from .accounts import Principal
from .errors import KmsError
from .faults import DropConnection
from .model import OPERATIONS, TARGET_PREFIX, echo, model_operations
from .service import KmsService
from .sigv4 import parse_authorization

JSON_CONTENT_TYPE = "application/x-amz-json-1.1"
DEFAULT_MAX_BODY_BYTES = 1024 * 1024
DEFAULT_REQUEST_TIMEOUT = 10.0


def unknown_operation(name: str) -> KmsError:
    """What AWS answers a target the service does not have (HTTP 400); a KMS operation beyond the custom key store
    ones gets the same answer, with a hint in the message."""
    if not name:
        return KmsError("UnknownOperationException", "Unknown operation (no X-Amz-Target).")
    hint = ""
    if name in model_operations():
        hint = (
            " The KMS emulator implements the custom key store operations and the key operations their keys need: "
            f"{', '.join(OPERATIONS)}."
        )
    return KmsError("UnknownOperationException", f"Unknown operation {echo(name)}.{hint}")


class KmsHTTPServer(ThreadingHTTPServer):
    """A threaded HTTP server bound to one ``KmsService``."""

    daemon_threads = True
    # Bursts of concurrent clients must not overflow the listen backlog (a dropped SYN costs a 1 s retry).
    request_queue_size = 128

    def __init__(
        self,
        address: tuple[str, int],
        service: KmsService,
        *,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
        request_timeout: float = DEFAULT_REQUEST_TIMEOUT,
        log: Callable[[str], None] | None = None,
    ) -> None:
        self.service = service
        self.max_body_bytes = max_body_bytes
        self.request_timeout = request_timeout
        self.log = log
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        super().__init__(address, KmsRequestHandler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Called for errors outside a request's own handling (a client resetting its connection...): one line
        # in the log instead of socketserver's traceback on stderr.
        if self.log is not None:
            error = sys.exc_info()[1]
            self.log(f"{client_address[0]}: connection error: {type(error).__name__}: {error}")

    @property
    def endpoint_url(self) -> str:
        """``http://host:port`` of the bound socket (IPv6 hosts in brackets)."""
        host, port = self.server_address[:2]
        host_text = host.decode() if isinstance(host, bytes) else str(host)
        if ":" in host_text:
            host_text = f"[{host_text}]"
        return f"http://{host_text}:{port}"

    def track(self, connection: socket.socket) -> None:
        """Remember an open connection, to close it on ``close_connections``."""
        with self._connections_lock:
            self._connections.add(connection)

    def untrack(self, connection: socket.socket) -> None:
        """Forget a closed connection."""
        with self._connections_lock:
            self._connections.discard(connection)

    def close_connections(self) -> None:
        """Shut every open connection, waking the threads that wait on them."""
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)


class KmsRequestHandler(BaseHTTPRequestHandler):
    """One connection's requests (HTTP/1.1 keep-alive, as botocore uses)."""

    server: KmsHTTPServer
    protocol_version = "HTTP/1.1"
    server_version = "kms-connection-emulator"

    def version_string(self) -> str:
        return self.server_version

    def setup(self) -> None:
        super().setup()
        # Bounds every read, so a client that sends half a request cannot hold this thread forever.
        self.connection.settimeout(self.server.request_timeout)
        # Headers and body leave in separate writes; without this, Nagle's algorithm and the client's delayed
        # ACK add ~40 ms to every keep-alive request.
        with contextlib.suppress(OSError):
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.server.track(self.connection)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.untrack(self.connection)

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        # One line per KMS request is written by `_log`, with the operation and outcome; none per response.
        pass

    def log_message(self, format: str, *args: Any) -> None:
        if self.server.log is not None:
            self.server.log(f"{self.address_string()} {format % args}")

    # -- HTTP methods ----------------------------------------------------------------------------------

    def do_POST(self) -> None:
        path = urlsplit(self.path).path
        body = self._read_body()
        if body is None:
            return
        if path.startswith(admin.PREFIX):
            self._admin("POST", path, body)
            return
        content_type = self.headers.get("Content-Type", "").lower()
        if "X-Amz-Target" not in self.headers and content_type.startswith("application/x-www-form-urlencoded"):
            self._sts(body)
            return
        self._kms(body)

    def do_GET(self) -> None:
        self._not_post("GET")

    def do_DELETE(self) -> None:
        self._not_post("DELETE")

    def do_PUT(self) -> None:
        self._not_post("PUT")

    def do_PATCH(self) -> None:
        self._not_post("PATCH")

    def do_OPTIONS(self) -> None:
        self._not_post("OPTIONS")

    def do_HEAD(self) -> None:
        self._not_post("HEAD")

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """http.server's own refusals (an unknown method, a malformed request line...) in the JSON error shape.

        The base class answers them with an HTML page, which no AWS client can parse.
        """
        self.close_connection = True
        if code == HTTPStatus.NOT_IMPLEMENTED:
            kind, text = "UnknownOperationException", f"KMS answers POST requests only, not {echo(self.command)}."
        else:
            kind, text = "ValidationException", echo(message or HTTPStatus(code).phrase)
        self._send_json(
            code,
            {"__type": kind, "message": text},
            content_type=JSON_CONTENT_TYPE,
            extra_headers={"Connection": "close"},
        )

    def _not_post(self, method: str) -> None:
        path = urlsplit(self.path).path
        body = self._read_body()
        if body is None:
            return
        if path.startswith(admin.PREFIX):
            self._admin(method, path, b"")
            return
        self._send_json(
            405,
            {"__type": "UnknownOperationException", "message": "KMS answers POST requests only."},
            content_type=JSON_CONTENT_TYPE,
            extra_headers={"Allow": "POST"},
        )

    # -- KMS -------------------------------------------------------------------------------------------

    def _kms(self, body: bytes) -> None:
        service = self.server.service
        target = self.headers.get("X-Amz-Target", "")
        prefix, _, operation = target.partition(".")
        if prefix != TARGET_PREFIX:
            # Logged as sent: an operation name only means something under KMS's target prefix.
            operation = target
        region: str | None = None
        store_id: str | None = None
        account: str | None = None
        try:
            headers = {name.lower(): value for name, value in self.headers.items()}
            credential = parse_authorization(headers)
            region = scope_region = credential.region
            principal = service.principal(credential.access_key_id, headers.get("x-amz-security-token"), "kms")
            account = principal.account
            if prefix != TARGET_PREFIX or not operation:
                raise unknown_operation(target)
            if operation not in OPERATIONS:
                # Answered as AWS answers an operation a service does not have. Not UnsupportedOperationException:
                # that is a modeled KMS error with its own meaning, which a client catching it would misread.
                raise unknown_operation(operation)
            params = self._decode(body)
            if isinstance(params.get("CustomKeyStoreId"), str):
                store_id = params["CustomKeyStoreId"]
        except KmsError as error:
            service.record_call(operation, store_id, region, error.code, account=account)
            self._log(operation, region, store_id, error.code, error.status, account)
            self._send_error(error)
            return
        assert account is not None
        try:
            response = service.handle(operation, params, scope_region, account, principal.arn)
        except DropConnection:
            self._log(operation, region, store_id, "dropped", None, account)
            self._drop()
            return
        except KmsError as error:
            self._log(operation, region, store_id, error.code, error.status, account)
            self._send_error(error)
            return
        except Exception as error:
            # A bug in the emulator must answer 500 like KMS, not drop the connection without a word.
            service.record_call(operation, store_id, region, "KMSInternalException", account=account)
            self._log(operation, region, store_id, f"KMSInternalException ({type(error).__name__})", 500, account)
            self._send_error(KmsError("KMSInternalException", f"Emulator error: {type(error).__name__}", 500))
            return
        self._log(operation, region, response.get("CustomKeyStoreId", store_id), "ok", 200, account)
        self._send_json(200, response, content_type=JSON_CONTENT_TYPE)

    # -- STS -------------------------------------------------------------------------------------------

    def _sts(self, body: bytes) -> None:
        service = self.server.service
        action = ""
        region: str | None = None
        caller: Principal | None = None
        try:
            params = sts.parse_form(body)
            action = params.get("Action", "")
            headers = {name.lower(): value for name, value in self.headers.items()}
            try:
                credential = parse_authorization(headers, "sts")
            except KmsError as error:
                # The query protocol's names for them, and the status STS answers them with.
                raise KmsError(error.code.removesuffix("Exception"), error.message, 403) from None
            region = credential.region
            caller = service.principal(credential.access_key_id, headers.get("x-amz-security-token"), "sts")
            if action not in sts.ACTIONS:
                raise sts.unknown_action(action)
        except KmsError as error:
            account = caller.account if caller is not None else None
            service.record_call(action, None, region, error.code, account=account, service="sts")
            self._log(action, region, None, error.code, error.status, account, "sts")
            self._send_xml(error.status, sts.error_xml(error))
            return
        assert region is not None and caller is not None
        try:
            result = service.handle_sts(action, params, region, caller)
        except KmsError as error:
            self._log(action, region, None, error.code, error.status, caller.account, "sts")
            self._send_xml(error.status, sts.error_xml(error))
            return
        except Exception as error:
            service.record_call(action, None, region, "InternalFailure", account=caller.account, service="sts")
            self._log(action, region, None, f"InternalFailure ({type(error).__name__})", 500, caller.account, "sts")
            failure = KmsError("InternalFailure", f"Emulator error: {type(error).__name__}", 500)
            self._send_xml(500, sts.error_xml(failure))
            return
        self._log(action, region, None, "ok", 200, caller.account, "sts")
        self._send_xml(200, sts.response_xml(action, result))

    def _send_xml(self, status: int, data: bytes) -> None:
        try:
            self.send_response(status)
            self.send_header("Content-Type", sts.CONTENT_TYPE)
            self.send_header("Content-Length", str(len(data)))
            self.send_header("x-amzn-RequestId", str(uuid.uuid4()))
            self.end_headers()
            self.wfile.write(data)
        except OSError:
            self.close_connection = True

    @staticmethod
    def _decode(body: bytes) -> dict[str, Any]:
        # botocore always sends a JSON object; an empty body is read as {} as AWS does.
        if not body.strip():
            return {}
        try:
            params = json.loads(body.decode("utf-8"))
        except UnicodeDecodeError:
            raise KmsError("SerializationException", "The request body is not UTF-8.") from None
        except json.JSONDecodeError as error:
            raise KmsError(
                "SerializationException", f"The request body is not valid JSON: {error.msg} at column {error.colno}."
            ) from None
        except (ValueError, RecursionError) as error:
            # Numbers past Python's digit limit, or nesting past the recursion limit: still a malformed body.
            message = f"The request body cannot be read: {type(error).__name__}."
            raise KmsError("SerializationException", message) from None
        if not isinstance(params, dict):
            raise KmsError("SerializationException", "The request body must be a JSON object.")
        return params

    # -- admin -----------------------------------------------------------------------------------------

    def _admin(self, method: str, path: str, body: bytes) -> None:
        parsed: object = None
        if body.strip():
            try:
                parsed = json.loads(body.decode("utf-8"))
            except (UnicodeDecodeError, json.JSONDecodeError) as error:
                self._send_json(400, {"error": f"the body is not valid JSON: {error}"})
                return
        elif method == "POST":
            parsed = {}
        status, answer = admin.handle_admin(self.server.service, method, path, parsed)
        self._send_json(status, answer)

    # -- plumbing --------------------------------------------------------------------------------------

    def _read_body(self) -> bytes | None:
        """The request body, or None after answering (and closing) when it cannot or must not be read."""
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            self._refuse(411, KmsError("ValidationException", "Content-Length is required."))
            return None
        length_text = self.headers.get("Content-Length", "0")
        try:
            length = int(length_text)
        except ValueError:
            length = -1
        if length < 0:
            self._refuse(400, KmsError("ValidationException", f"Invalid Content-Length {length_text!r}."))
            return None
        if length > self.server.max_body_bytes:
            self._refuse(
                413,
                KmsError(
                    "ValidationException",
                    f"The request body is {length} bytes; the limit is {self.server.max_body_bytes} bytes.",
                ),
            )
            return None
        try:
            body = self.rfile.read(length)
        except (TimeoutError, OSError):
            self.close_connection = True
            return None
        if len(body) < length:
            # The client hung up or stalled past the timeout mid-body: nobody is left to answer.
            self.close_connection = True
            return None
        return body

    def _refuse(self, status: int, error: KmsError) -> None:
        # The body was not read, so this connection cannot carry another request.
        self.close_connection = True
        self._send_json(
            status,
            {"__type": error.code, "message": error.message},
            content_type=JSON_CONTENT_TYPE,
            extra_headers={"Connection": "close"},
        )

    def _drop(self) -> None:
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)

    def _send_error(self, error: KmsError) -> None:
        self._send_json(error.status, {"__type": error.code, "message": error.message}, content_type=JSON_CONTENT_TYPE)

    def _send_json(
        self,
        status: int,
        payload: dict[str, Any],
        *,
        content_type: str = "application/json",
        extra_headers: dict[str, str] | None = None,
    ) -> None:
        data = json.dumps(payload).encode("utf-8")
        try:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            self.send_header("x-amzn-RequestId", str(uuid.uuid4()))
            for name, value in (extra_headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            # A HEAD answer has the headers of the JSON it stands for, and no body (RFC 9110).
            if self.command != "HEAD":
                self.wfile.write(data)
        except OSError:
            self.close_connection = True

    def _log(
        self,
        operation: str,
        region: str | None,
        store_id: str | None,
        outcome: str,
        status: int | None,
        account: str | None = None,
        service: str = "kms",
    ) -> None:
        if self.server.log is not None:
            where = f"account={account or '-'} region={region or '-'}"
            target = f"store={store_id or '-'}" if service == "kms" else "sts"
            self.server.log(
                f"{operation or '-'} {where} {target} -> {outcome}" + (f" ({status})" if status is not None else "")
            )
