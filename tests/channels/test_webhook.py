from __future__ import annotations

import pytest

from reminders.channels.webhook import check_url, new_webhook_secret, signature
from reminders.errors import InvalidInput


def resolver(*addresses: str):  # type: ignore[no-untyped-def]
    return lambda host: list(addresses)


@pytest.mark.parametrize(
    ("url", "addresses", "problem"),
    [
        ("http://hooks.clinic.example/x", ["93.184.216.34"], "https"),
        ("ftp://hooks.clinic.example/x", ["93.184.216.34"], "https"),
        ("https://user:pw@hooks.clinic.example/x", ["93.184.216.34"], "password"),
        ("https://intranet.example/x", ["10.1.2.3"], "non-public"),
        ("https://localhost/x", ["127.0.0.1"], "non-public"),
        ("https://metadata.example/x", ["169.254.169.254"], "non-public"),
        ("https://v6.example/x", ["::1"], "non-public"),
        ("https://mixed.example/x", ["93.184.216.34", "192.168.0.4"], "non-public"),
        # IPv6 forms that carry a private IPv4 address, and deprecated site-local.
        ("https://[64:ff9b::a9fe:a9fe]/x", [], "carries 169.254.169.254"),
        ("https://nat64.example/x", ["64:ff9b:1::a00:1"], "carries 10.0.0.1"),
        ("https://[::127.0.0.1]/x", [], "carries 127.0.0.1"),
        ("https://mapped.example/x", ["::ffff:10.1.2.3"], "non-public"),
        ("https://[2002:a9fe:a9fe::]/x", [], "carries 169.254.169.254"),
        ("https://teredo.example/x", ["2001:0:4136:e378:8000:63bf:3fff:fdd2"], "non-public"),
        ("https://[fec0::1]/x", [], "site-local"),
        ("not a url", [], "https"),
        # What the sender could not send to: refused here, not failing every dispatch.
        ("https://hooks.clinic.example:99999/x", ["93.184.216.34"], "not a URL"),
        ("https://hooks.clinic.example:70000/x", ["93.184.216.34"], "not a URL"),
        ("https://hooks.clinic.example/x y", ["93.184.216.34"], "space"),
        ("https://hooks.clinic.example/%zz", ["93.184.216.34"], "hex digits"),
    ],
)
def test_unsafe_webhook_urls_are_refused(url: str, addresses: list[str], problem: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        check_url(url, allow_http=False, allowed_hosts=(), resolve=resolver(*addresses))
    assert caught.value.field == "url"
    assert problem in caught.value.message


def test_public_https_url_is_accepted() -> None:
    check_url(
        "https://hooks.clinic.example/x",
        allow_http=False,
        allowed_hosts=(),
        resolve=resolver("93.184.216.34"),
    )


def test_operator_allowlist_admits_loopback_by_network_or_host() -> None:
    check_url(
        "http://127.0.0.1:8080/x",
        allow_http=True,
        allowed_hosts=("127.0.0.0/8",),
        resolve=resolver("127.0.0.1"),
    )
    check_url("https://relay.internal/x", allow_http=False, allowed_hosts=("relay.internal",))


def test_signature_matches_the_spec_example() -> None:
    # The example from the Standard Webhooks specification.
    secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    body = b'{"test": 2432232314}'
    expected = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
    assert signature(secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body) == expected


def test_new_secrets_are_random_whsec_values() -> None:
    first, second = new_webhook_secret(), new_webhook_secret()
    assert first.startswith("whsec_")
    assert first != second


def test_ipv6_forms_of_public_addresses_are_accepted() -> None:
    # NAT64 and 6to4 of 93.184.216.34, a public address.
    for address in ("64:ff9b::5db8:d822", "2002:5db8:d822::1", "2606:4700::1111"):
        check_url(
            "https://hooks.clinic.example/x",
            allow_http=False,
            allowed_hosts=(),
            resolve=resolver(address),
        )
