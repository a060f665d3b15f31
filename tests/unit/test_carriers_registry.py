"""Carrier registry and settings: enabled local carriers, the HTTP carrier, tracking URLs."""

from __future__ import annotations

import pytest

from ordergraph.config import DEV_CARRIER_WEBHOOK_SECRETS, Settings
from ordergraph.integrations import carriers as c
from ordergraph.integrations.carriers import CarrierErrorCode as E


@pytest.fixture(autouse=True)
def fresh_carriers():
    c.reset_local_carriers()
    yield
    c.reset_local_carriers()


def settings(**kw) -> Settings:
    return Settings(_env_file=None, **kw)


def refused(code: E, call, *args, **kw) -> c.CarrierError:
    with pytest.raises(c.CarrierError) as info:
        call(*args, **kw)
    assert (info.value.code, info.value.retryable) == (code, False)
    return info.value


def test_local_carriers_enabled_by_default_one_instance_per_process():
    s = settings()
    assert [x.code for x in c.available_carriers(s)] == ["econopost", "swiftship"]
    eco = c.get_carrier("econopost", s)
    assert isinstance(eco, c.LocalCarrier) and eco is c.get_carrier("econopost", s)
    assert eco is c.local_carrier("econopost")
    c.reset_local_carriers()
    assert c.get_carrier("econopost", s) is not eco


def test_carriers_enabled_from_the_environment(monkeypatch):
    monkeypatch.setenv("CARRIERS_ENABLED", " swiftship ")
    s = settings()
    assert s.carriers_enabled == ["swiftship"]
    assert [x.code for x in c.available_carriers(s)] == ["swiftship"]
    err = refused(E.CARRIER_MISCONFIGURED, c.get_carrier, "econopost", s)
    assert "not offered" in err.message
    refused(E.CARRIER_MISCONFIGURED, c.available_carriers, settings(carriers_enabled="dhl"))
    refused(E.CARRIER_MISCONFIGURED, c.local_carrier, "dhl")


def test_http_carrier_from_settings():
    s = settings(
        carriers_enabled="",
        http_carrier_base_url="https://api.restship.example/v2/",
        http_carrier_api_key="sk_live_x",
        http_carrier_timeout_seconds=3,
    )
    [http] = c.available_carriers(s)
    assert isinstance(http, c.HttpCarrier) and isinstance(http, c.Carrier)
    assert (http.code, http.name, http.base_url, http.timeout) == (
        "restship",
        "RestShip",
        "https://api.restship.example/v2",
        3,
    )
    assert "sk_live_x" not in repr(http)
    assert c.get_carrier("restship", s).base_url == http.base_url
    no_key = settings(http_carrier_base_url="https://api.restship.example")
    refused(E.CARRIER_MISCONFIGURED, c.available_carriers, no_key)


def test_tracking_urls():
    s = settings()
    assert c.tracking_url("econopost", "CP123456785US", s) == (
        "https://track.econopost.example/items/CP123456785US"
    )
    assert c.tracking_url("swiftship", "SW123456789015", s) == (
        "https://swiftship.example/track?number=SW123456789015"
    )
    branded = settings(
        tracking_url_template="https://shop.example/track/{carrier}/{tracking_number}"
    )
    assert c.tracking_url("swiftship", "SW1", branded) == "https://shop.example/track/swiftship/SW1"
    http = settings(http_carrier_base_url="https://api.restship.example/", http_carrier_api_key="k")
    assert c.tracking_url("restship", "R1", http) == "https://api.restship.example/tracking/R1"
    refused(E.CARRIER_MISCONFIGURED, c.tracking_url, "dhl", "1", s)
    assert (
        c.local_carrier("econopost").tracking_url("X") == "https://track.econopost.example/items/X"
    )


def test_webhook_secrets_have_dev_defaults_and_rotation_lists(monkeypatch):
    s = settings()
    assert s.webhook_secrets("econopost") == [DEV_CARRIER_WEBHOOK_SECRETS["econopost"]]
    assert s.webhook_secrets("restship") == []
    monkeypatch.setenv("CARRIER_WEBHOOK_SECRETS", '{"swiftship": ["whsec_new", "whsec_old"]}')
    rotated = settings()
    assert rotated.webhook_secrets("swiftship") == ["whsec_new", "whsec_old"]
    assert rotated.webhook_secrets("econopost") == []  # the map replaces the defaults
    assert rotated.carrier_webhook_tolerance_seconds == 300
