"""The one way the server fetches a URL for a caller (memory documents, image URLs).

A caller can name any URL, so a fetch must not become a way into the server's own network: the
policy refuses loopback, private, link-local (cloud metadata at 169.254.169.254 included),
multicast, reserved and other non-public addresses unless `server.outbound.allow` lists the host
or its network. The host is resolved once, every address it resolves to is checked, and the
connection goes to a checked address while the request keeps the original Host header and TLS
server name: a DNS answer that changes between the check and the connection (rebinding) is never
used. Redirects are followed by hand, each target checked again; size, time and the number of
redirects are capped.

Importing this module stays cheap (it is part of the run config): httpx is imported on first fetch.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING
from urllib.parse import urljoin, urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator

from llama_stack.apis.errors import InvalidRequest, PayloadTooLarge, UpstreamTimeout

if TYPE_CHECKING:
    import httpx

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
Resolver = Callable[[str, int], Awaitable[list[IPAddress]]]
_REDIRECTS = (301, 302, 303, 307, 308)
_ALLOW_HINT = "allow it with server.outbound.allow"


class OutboundConfig(BaseModel):
    """`server.outbound` in run.yaml: what the server may fetch for a caller."""

    model_config = ConfigDict(extra="forbid")

    allow: list[str] = Field(
        default_factory=list,
        description="hosts (docs.intranet, *.corp.example) or networks (10.0.0.0/8, 127.0.0.1) fetched "
        "even though they are not public addresses",
    )
    max_bytes: int = Field(default=32 * 1024 * 1024, gt=0, description="largest body fetched, whatever the caller")
    timeout_s: float = Field(default=30.0, gt=0, description="whole fetch, redirects included, whatever the caller")
    max_redirects: int = Field(default=5, ge=0)

    @field_validator("allow")
    @classmethod
    def _valid_entries(cls, entries: list[str]) -> list[str]:
        for entry in entries:
            _parse_allow_entry(entry)
        return entries


def _parse_allow_entry(entry: str) -> IPNetwork | str:
    text = entry.strip().lower()
    if not text:
        raise ValueError("an empty entry allows nothing; remove it")
    try:
        return ipaddress.ip_network(text, strict=False)
    except ValueError:
        pass
    name = text.removeprefix("*.")
    if "/" in name or ":" in name or not all(label for label in name.split(".")):
        raise ValueError(f"{entry!r} is neither a host name (docs.corp, *.corp.example) nor a network (10.0.0.0/8)")
    return text


class URLRefused(InvalidRequest):
    """A URL the outbound policy does not fetch; nothing was sent to it."""

    def __init__(self, url: str, reason: str) -> None:
        super().__init__(f"URL {url} is refused: {reason}")
        self.url = url
        self.reason = reason


@dataclass(frozen=True)
class OutboundPolicy:
    """Built once from `server.outbound` and handed to providers in Deps; the default refuses
    every non-public address."""

    networks: tuple[IPNetwork, ...] = ()
    hosts: tuple[str, ...] = ()  # exact names, or "*.suffix"
    max_bytes: int = 32 * 1024 * 1024
    timeout_s: float = 30.0
    max_redirects: int = 5
    # How a host name becomes addresses; a seam for tests of rebinding, real DNS otherwise.
    resolver: Resolver | None = field(default=None, compare=False)

    @classmethod
    def from_config(cls, config: OutboundConfig) -> OutboundPolicy:
        parsed = [_parse_allow_entry(entry) for entry in config.allow]
        return cls(
            networks=tuple(entry for entry in parsed if not isinstance(entry, str)),
            hosts=tuple(entry for entry in parsed if isinstance(entry, str)),
            max_bytes=config.max_bytes,
            timeout_s=config.timeout_s,
            max_redirects=config.max_redirects,
        )

    def host_allowed(self, host: str) -> bool:
        host = host.lower().rstrip(".")
        for pattern in self.hosts:
            if pattern.startswith("*.") and host.endswith(pattern[1:]):
                return True
            if host == pattern:
                return True
        return False

    def address_refusal(self, address: IPAddress) -> str | None:
        """Why `address` is not fetched, or None when it may be."""
        if any(address.version == net.version and address in net for net in self.networks):
            return None
        return non_public_reason(address)

    async def check(self, url: str) -> Target:
        """The address to connect to for `url`; URLRefused when the policy forbids it."""
        parts = urlsplit(url)
        if parts.scheme.lower() not in ("http", "https"):
            raise URLRefused(url, f"only http and https URLs are fetched, not {parts.scheme or 'a relative URL'}")
        host = parts.hostname
        if not host:
            raise URLRefused(url, "it names no host")
        try:
            port = parts.port or (443 if parts.scheme.lower() == "https" else 80)
        except ValueError:
            raise URLRefused(url, "its port is not a number between 0 and 65535") from None
        addresses = await self._resolve(url, host, port)
        if self.host_allowed(host):
            return Target(host, port, addresses[0])
        for address in addresses:
            reason = self.address_refusal(address)
            if reason is not None:
                subject = f"{address} is" if _literal_address(host) else f"{host} resolves to {address},"
                raise URLRefused(url, f"{subject} {reason} ({_ALLOW_HINT})")
        return Target(host, port, addresses[0])

    async def _resolve(self, url: str, host: str, port: int) -> list[IPAddress]:
        literal = _literal_address(host)
        if literal is not None:
            return [literal]
        resolve = self.resolver or _system_resolve
        try:
            addresses = await resolve(host, port)
        except OSError as e:
            raise InvalidRequest(f"cannot fetch {url}: the host {host} does not resolve ({e.strerror or e})") from e
        if not addresses:
            raise InvalidRequest(f"cannot fetch {url}: the host {host} has no address")
        return addresses


@dataclass(frozen=True)
class Target:
    host: str
    port: int
    address: IPAddress


def non_public_reason(address: IPAddress) -> str | None:
    """The rule a non-public address falls under; None for a public one."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = address.ipv4_mapped or address.sixtofour or (address.teredo[1] if address.teredo else None)
        if embedded is not None:
            return non_public_reason(embedded)
    checks = (
        ("is_loopback", "a loopback address"),
        ("is_link_local", "a link-local address"),
        ("is_multicast", "a multicast address"),
        ("is_unspecified", "an unspecified address"),
        ("is_reserved", "a reserved address"),
        ("is_private", "a private address"),
    )
    for attribute, reason in checks:
        if getattr(address, attribute):
            return reason
    if not address.is_global:
        return "not a public address"
    return None


def _literal_address(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


async def _system_resolve(host: str, port: int) -> list[IPAddress]:
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    found: list[IPAddress] = []
    for _family, _type, _proto, _name, sockaddr in infos:
        address = ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])
        if address not in found:
            found.append(address)
    return found


# --- fetching ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Fetched:
    url: str  # after redirects
    status: int
    content_type: str | None
    body: bytes  # empty for an error status


class BodyTooLarge(PayloadTooLarge):
    def __init__(self, url: str, limit: int, declared: int | None = None) -> None:
        size = (
            f"is {declared} bytes; the limit is {limit}" if declared else f"is larger than the limit of {limit} bytes"
        )
        super().__init__(f"{url} {size}")
        self.url = url
        self.limit = limit
        self.declared = declared


async def fetch(
    url: str, policy: OutboundPolicy, *, max_bytes: int | None = None, timeout_s: float | None = None
) -> Fetched:
    """GET `url` under `policy`. Raises URLRefused (nothing sent), BodyTooLarge, UpstreamTimeout,
    or InvalidRequest naming the URL when it cannot be fetched. An error status is returned, not
    raised, so that each caller words it for its own users."""
    import httpx

    limit = min(max_bytes or policy.max_bytes, policy.max_bytes)
    seconds = min(timeout_s or policy.timeout_s, policy.timeout_s)
    try:
        async with asyncio.timeout(seconds):
            return await _follow(url, policy, limit)
    except TimeoutError:
        raise UpstreamTimeout(f"fetching {url} timed out after {seconds:g}s") from None
    except httpx.TimeoutException:
        raise UpstreamTimeout(f"fetching {url} timed out after {seconds:g}s") from None
    except httpx.HTTPError as e:
        raise InvalidRequest(f"cannot fetch {url}: {str(e) or type(e).__name__}") from e


async def _follow(url: str, policy: OutboundPolicy, limit: int) -> Fetched:
    import httpx

    current = url
    for _ in range(policy.max_redirects + 1):
        target = await policy.check(current)
        # A client per hop: a pooled connection, keyed by address, must not carry one host's TLS
        # session to another. No proxies from the environment: the connection goes to `target`.
        async with httpx.AsyncClient(trust_env=False, follow_redirects=False) as client:
            response = await client.send(_pinned_request(client, current, target), stream=True)
            try:
                fetched = await _read(current, response, limit)
            finally:
                await response.aclose()
        if fetched is not None:
            return fetched
        current = urljoin(current, response.headers["location"])
    raise InvalidRequest(f"cannot fetch {url}: more than {policy.max_redirects} redirects")


async def _read(url: str, response: httpx.Response, limit: int) -> Fetched | None:
    """The response as a Fetched; None for a redirect to follow."""
    if response.status_code in _REDIRECTS and response.headers.get("location"):
        return None
    content_type = response.headers.get("content-type")
    if response.status_code >= 400:
        return Fetched(url, response.status_code, content_type, b"")
    declared = response.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge(url, limit, int(declared))
    body = bytearray()
    async for piece in response.aiter_bytes():
        body += piece
        if len(body) > limit:
            raise BodyTooLarge(url, limit)
    return Fetched(url, response.status_code, content_type, bytes(body))


def _pinned_request(client: httpx.AsyncClient, url: str, target: Target) -> httpx.Request:
    """A GET of `url` sent to the checked address, with the original Host header and TLS server name."""
    import httpx

    original = httpx.URL(url)
    extensions = {"sni_hostname": target.host} if original.scheme == "https" else {}
    return client.build_request(
        "GET",
        original.copy_with(host=str(target.address)),
        headers={"Host": original.netloc.decode("ascii")},
        extensions=extensions,
    )
