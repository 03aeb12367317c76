"""Outbound webhook targets: URL rules, SSRF vetting, and an HTTP client that connects only to
the address that was vetted (no second DNS lookup for a rebinding attacker to answer)."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import ipaddress
import socket
import ssl
from collections.abc import Awaitable, Callable, Iterable, Iterator
from typing import Any

import httpcore
import httpx
import msgspec

from app.settings import Settings

MAX_URL_LENGTH = 2048
LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain"})

# host -> the vetted address this request may connect to (set around each request).
_VETTED: contextvars.ContextVar[dict[str, str] | None] = contextvars.ContextVar(
    "astrocal_vetted_addresses", default=None
)

Resolver = Callable[[str, int], Awaitable[list[str]]]


class Blocked(Exception):
    """A target that may not be contacted; `reason` is the delivery's error name."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


class Policy(msgspec.Struct, frozen=True, kw_only=True):
    """What a deployment allows: WEBHOOK_ALLOW_PRIVATE_TARGETS, or `astrocal dev`'s http to
    loopback."""

    allow_private: bool = False
    dev_loopback: bool = False


def policy(settings: Settings) -> Policy:
    return Policy(
        allow_private=settings.webhook_allow_private_targets,
        dev_loopback=settings.webhook_dev_loopback,
    )


def url_problem(url: str, policy: Policy) -> str | None:
    """Why `url` may not be a webhook URL (its shape only; addresses are vetted separately)."""
    if len(url) > MAX_URL_LENGTH:
        return f"Must be at most {MAX_URL_LENGTH} characters"
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL:
        return "Must be an absolute URL"
    if (
        not parsed.is_absolute_url
        or not parsed.host
        or "\\" in url
        or any(c.isspace() for c in url)
    ):
        return "Must be an absolute URL"
    if parsed.userinfo:
        return "Must not contain user info"
    if parsed.scheme == "https":
        return None
    if parsed.scheme == "http" and (
        policy.allow_private or (policy.dev_loopback and is_loopback_host(parsed.host))
    ):
        return None
    return "Must use https"


def is_loopback_host(host: str) -> bool:
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        loopback: bool = _plain(ipaddress.ip_address(host)).is_loopback
    except ValueError:
        return False
    return loopback


def _plain(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> Any:
    """IPv4-mapped (::ffff:a.b.c.d) and IPv4-compatible forms judged as the IPv4 they carry."""
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return address.ipv4_mapped
        if address.sixtofour is not None:
            return address.sixtofour
    return address


def is_public(text: str) -> bool:
    """Globally routable unicast: no loopback, private, link-local, CGNAT, multicast,
    unspecified or reserved address, whatever form it is written in."""
    try:
        address = _plain(ipaddress.ip_address(text.split("%", 1)[0]))
    except ValueError:
        return False
    public: bool = (
        address.is_global
        and not address.is_multicast
        and not address.is_reserved
        and not address.is_unspecified
        and not address.is_loopback
        and not address.is_link_local
    )
    return public


async def system_resolve(host: str, port: int) -> list[str]:
    infos = await asyncio.get_running_loop().getaddrinfo(
        host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP
    )
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


async def vet(url: httpx.URL, policy: Policy, resolve: Resolver = system_resolve) -> str:
    """The address to connect to for `url`, once every address its host resolves to passed."""
    host = url.host
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        addresses = [str(ipaddress.ip_address(host))]
    except ValueError:
        try:
            addresses = await resolve(host, port)
        except (OSError, UnicodeError):
            raise Blocked("dns_error", "Host does not resolve") from None
    if not addresses:
        raise Blocked("dns_error", "Host does not resolve")
    if not policy.allow_private:
        loopback_ok = policy.dev_loopback and is_loopback_host(host)
        for address in addresses:
            if not (is_public(address) or (loopback_ok and is_loopback_host(address))):
                raise Blocked("blocked_address", "Resolves to a non-public address")
    return addresses[0]


class _VettedBackend(httpcore.AsyncNetworkBackend):
    """Connects a host name only to the address vetted for it in this request's context."""

    def __init__(self) -> None:
        self._inner = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's interface
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        vetted = (_VETTED.get() or {}).get(host.strip("[]").lower())
        if vetted is None:
            raise httpcore.ConnectError(f"no vetted address for {host}")
        return await self._inner.connect_tcp(
            vetted,
            port,
            timeout=timeout,
            local_address=local_address,
            socket_options=socket_options,
        )

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's interface
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise httpcore.ConnectError("unix sockets are never webhook targets")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


def client(
    *,
    timeout_seconds: float = 30.0,
    max_connections: int = 200,
    ssl_context: ssl.SSLContext | None = None,
) -> httpx.AsyncClient:
    """The shared webhook client: no redirects, no proxies from the environment (a proxy would
    resolve names itself), connections only to vetted addresses. The URL keeps its host name, so
    TLS SNI and certificate checks use the name, and pooled connections are per name."""
    limits = httpx.Limits(max_connections=max_connections, max_keepalive_connections=50)
    transport = httpx.AsyncHTTPTransport(limits=limits, trust_env=False)
    # httpx builds its httpcore pool without a way to pass a network backend: rebuild it with
    # the same limits and TLS context, plus the vetting backend.
    transport._pool = httpcore.AsyncConnectionPool(
        ssl_context=ssl_context or httpx.create_ssl_context(trust_env=False),
        max_connections=limits.max_connections,
        max_keepalive_connections=limits.max_keepalive_connections,
        keepalive_expiry=limits.keepalive_expiry,
        network_backend=_VettedBackend(),
    )
    return httpx.AsyncClient(
        transport=transport,
        follow_redirects=False,
        trust_env=False,
        timeout=httpx.Timeout(timeout_seconds),
    )


@contextlib.contextmanager
def connect_only_to(host: str, address: str) -> Iterator[None]:
    """Within this block, the shared client connects `host` only to `address`."""
    token = _VETTED.set({host.strip("[]").lower(): address})
    try:
        yield
    finally:
        _VETTED.reset(token)
