"""The outbound policy against a real loopback server that counts hits: refused URLs are never
fetched, redirects are checked again, a host resolves once and its checked address is used."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from llama_stack.apis.errors import InvalidRequest, PayloadTooLarge, UpstreamTimeout
from llama_stack.distribution.outbound import IPAddress, OutboundConfig, OutboundPolicy, URLRefused, fetch
from llama_stack.distribution.spec import ConfigError, parse_run_config
from tests.counting_server import CountingServer, Route, counting_server

LOOPBACK_ONLY = OutboundPolicy.from_config(OutboundConfig(allow=["127.0.0.1"]))


@pytest.fixture
def site() -> Iterator[CountingServer]:
    with counting_server() as server:
        server.routes["/doc.txt"] = Route(b"hello from the intranet")
        yield server


@pytest.fixture
def other() -> Iterator[CountingServer]:
    """A second server on another loopback address, which the allow-list does not name."""
    with counting_server("127.0.0.2") as server:
        server.routes["/secret"] = Route(b"internal secret")
        yield server


def port_of(server: CountingServer) -> int:
    return int(server.url.rsplit(":", 1)[1])


@pytest.mark.parametrize(
    ("host", "rule"),
    [
        ("127.0.0.1", "127.0.0.1 is a loopback address"),
        ("[::1]", "::1 is a loopback address"),
        ("localhost", "localhost resolves to 127.0.0.1, a loopback address"),
        ("169.254.169.254", "169.254.169.254 is a link-local address"),
        ("10.1.2.3", "10.1.2.3 is a private address"),
        ("192.168.0.10", "192.168.0.10 is a private address"),
        ("172.16.5.5", "172.16.5.5 is a private address"),
        ("0.0.0.0", "0.0.0.0 is an unspecified address"),
        ("224.0.0.1", "224.0.0.1 is a multicast address"),
        ("240.0.0.1", "240.0.0.1 is a reserved address"),
        ("100.64.0.1", "100.64.0.1 is not a public address"),
        ("[::ffff:127.0.0.1]", "::ffff:7f00:1 is a loopback address"),
        ("[fe80::1]", "fe80::1 is a link-local address"),
        ("[2002:7f00:1::]", "2002:7f00:1:: is a loopback address"),  # 6to4 around 127.0.0.1
        ("[64:ff9b::a9fe:a9fe]", "64:ff9b::a9fe:a9fe is a reserved address"),  # NAT64 around 169.254.169.254
        ("2130706433", "2130706433 resolves to 127.0.0.1, a loopback address"),  # 127.0.0.1 as one number
    ],
)
async def test_non_public_addresses_are_refused_by_default_and_never_contacted(
    site: CountingServer, host: str, rule: str
) -> None:
    url = f"http://{host}:{port_of(site)}/doc.txt"
    with pytest.raises(URLRefused) as refused:
        await fetch(url, OutboundPolicy())
    assert str(refused.value) == f"URL {url} is refused: {rule} (allow it with server.outbound.allow)"
    assert isinstance(refused.value, InvalidRequest)  # answered with 400
    assert site.hits == []


async def test_only_http_and_https_are_fetched(site: CountingServer) -> None:
    for url in ("file:///etc/passwd", "gopher://127.0.0.1/x", "ftp://example.com/x"):
        with pytest.raises(URLRefused, match="only http and https URLs are fetched"):
            await fetch(url, LOOPBACK_ONLY)


async def test_an_allow_listed_address_is_fetched_once(site: CountingServer) -> None:
    fetched = await fetch(f"{site.url}/doc.txt", LOOPBACK_ONLY)
    assert (fetched.status, fetched.body, fetched.content_type) == (200, b"hello from the intranet", "text/plain")
    assert site.paths() == ["/doc.txt"]


async def test_an_allow_listed_network_and_host_name(site: CountingServer) -> None:
    by_network = OutboundPolicy.from_config(OutboundConfig(allow=["127.0.0.0/8"]))
    by_name = OutboundPolicy.from_config(OutboundConfig(allow=["localhost"]))
    assert (await fetch(f"{site.url}/doc.txt", by_network)).status == 200
    assert (await fetch(f"http://localhost:{port_of(site)}/doc.txt", by_name)).status == 200
    with pytest.raises(URLRefused):  # naming a host allows that name, not its address
        await fetch(f"{site.url}/doc.txt", by_name)
    assert site.paths() == ["/doc.txt", "/doc.txt"]


async def test_every_redirect_is_checked_again(site: CountingServer, other: CountingServer) -> None:
    site.routes["/jump"] = Route(status=302, location=f"{other.url}/secret")
    with pytest.raises(URLRefused, match=re.escape(f"URL {other.url}/secret is refused: 127.0.0.2 is a loopback")):
        await fetch(f"{site.url}/jump", LOOPBACK_ONLY)
    assert site.paths() == ["/jump"] and other.hits == []
    # Relative redirects are followed within what the policy allows.
    site.routes["/moved"] = Route(status=301, location="/doc.txt")
    assert (await fetch(f"{site.url}/moved", LOOPBACK_ONLY)).body == b"hello from the intranet"


async def test_redirects_are_capped(site: CountingServer) -> None:
    site.routes["/loop"] = Route(status=302, location="/loop")
    policy = OutboundPolicy.from_config(OutboundConfig(allow=["127.0.0.1"], max_redirects=3))
    with pytest.raises(InvalidRequest, match="more than 3 redirects"):
        await fetch(f"{site.url}/loop", policy)
    assert site.paths() == ["/loop"] * 4


async def test_size_is_capped_declared_or_streamed(site: CountingServer) -> None:
    site.routes["/big"] = Route(b"x" * 5000)
    site.routes["/streamed"] = Route(b"x" * 5000, chunked=True)
    with pytest.raises(PayloadTooLarge, match=re.escape(f"{site.url}/big is 5000 bytes; the limit is 1000")):
        await fetch(f"{site.url}/big", LOOPBACK_ONLY, max_bytes=1000)
    with pytest.raises(PayloadTooLarge, match="is larger than the limit of 1000 bytes"):
        await fetch(f"{site.url}/streamed", LOOPBACK_ONLY, max_bytes=1000)
    # The policy's cap bounds what any caller asks for.
    small = OutboundPolicy.from_config(OutboundConfig(allow=["127.0.0.1"], max_bytes=100))
    with pytest.raises(PayloadTooLarge, match="the limit is 100"):
        await fetch(f"{site.url}/big", small, max_bytes=10_000)


async def test_time_is_capped(site: CountingServer) -> None:
    site.routes["/slow"] = Route(b"late", delay_s=2.0)
    policy = OutboundPolicy.from_config(OutboundConfig(allow=["127.0.0.1"], timeout_s=0.5))
    with pytest.raises(UpstreamTimeout, match=re.escape(f"fetching {site.url}/slow timed out after 0.5s")):
        await fetch(f"{site.url}/slow", policy, timeout_s=30)


async def test_a_host_resolves_once_and_its_checked_address_is_contacted(
    site: CountingServer, other: CountingServer
) -> None:
    """DNS rebinding: the name first resolves to an allowed address, then to a forbidden one.
    The connection goes to the address that was checked, with the original Host header."""
    answers = [ipaddress.ip_address("127.0.0.1"), ipaddress.ip_address("127.0.0.2")]
    asked: list[str] = []

    async def rebinding(host: str, port: int) -> list[IPAddress]:
        asked.append(host)
        return [answers[min(len(asked) - 1, 1)]]

    policy = OutboundPolicy(networks=(ipaddress.ip_network("127.0.0.1/32"),), resolver=rebinding)
    site.routes["/x"] = Route(b"from the checked address")
    assert port_of(site) != port_of(other)
    fetched = await fetch(f"http://docs.rebind.test:{port_of(site)}/x", policy)
    assert fetched.body == b"from the checked address"
    assert asked == ["docs.rebind.test"]
    assert site.hits == [("/x", f"docs.rebind.test:{port_of(site)}")] and other.hits == []
    # Asked again, the name now resolves to the forbidden address, and is refused.
    with pytest.raises(URLRefused, match=re.escape("docs.rebind.test resolves to 127.0.0.2, a loopback address")):
        await fetch(f"http://docs.rebind.test:{port_of(other)}/secret", policy)
    assert other.hits == []


async def test_a_name_that_does_not_resolve_is_a_clear_400() -> None:
    with pytest.raises(InvalidRequest, match=re.escape("the host no-such-host.invalid does not resolve")):
        await fetch("http://no-such-host.invalid/x", OutboundPolicy())


def test_run_yaml_outbound_section() -> None:
    base = {"version": 2, "image_name": "t", "providers": {}}
    config = parse_run_config({**base, "server": {"outbound": {"allow": ["10.0.0.0/8", "*.corp.example"]}}}, env={})
    policy = OutboundPolicy.from_config(config.server.outbound)
    assert policy.host_allowed("docs.corp.example") and not policy.host_allowed("corp.example.evil")
    assert policy.address_refusal(ipaddress.ip_address("10.2.3.4")) is None
    assert policy.address_refusal(ipaddress.ip_address("192.168.1.1")) == "a private address"
    with pytest.raises(ConfigError, match=r"server\.outbound\.allow.*neither a host name"):
        parse_run_config({**base, "server": {"outbound": {"allow": ["http://x/"]}}}, env={})


def test_the_run_yaml_example_of_docs_security_md_loads() -> None:
    text = (Path(__file__).resolve().parents[2] / "docs" / "security.md").read_text()
    example = yaml.safe_load(text.split("```yaml\n", 1)[1].split("```", 1)[0])
    config = parse_run_config({"version": 2, "image_name": "t", "providers": {}, **example}, env={})
    policy = OutboundPolicy.from_config(config.server.outbound)
    assert policy.host_allowed("docs.corp.example") and policy.host_allowed("team.wiki.corp.example")
    assert policy.address_refusal(ipaddress.ip_address("10.20.1.1")) is None
    assert policy.address_refusal(ipaddress.ip_address("10.21.1.1")) == "a private address"
