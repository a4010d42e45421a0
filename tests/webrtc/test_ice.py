"""ICE servers and coturn's time-limited TURN credentials."""

from __future__ import annotations

import base64
import hashlib
import hmac
from datetime import UTC, datetime

import pytest
from pydantic import SecretStr

from api.settings import MissingSetting, Settings
from webrtc.ice import IceServer, ice_servers, rtc_configuration, turn_credential

NOW = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


def test_turn_credential_is_coturns_rest_format() -> None:
    expires = datetime(2026, 11, 23, 11, 0, tzinfo=UTC)
    username, password = turn_credential("north-secret", "0b7f", expires)
    assert username == f"{int(expires.timestamp())}:0b7f" == "1795431600:0b7f"
    expected = base64.b64encode(hmac.new(b"north-secret", b"1795431600:0b7f",
                                         hashlib.sha1).digest()).decode()
    assert password == expected
    # The same inputs always give the same credential (coturn recomputes it), another secret not.
    assert turn_credential("north-secret", "0b7f", expires) == (username, password)
    assert turn_credential("south-secret", "0b7f", expires)[1] != password


def test_a_user_part_with_a_colon_is_refused() -> None:
    with pytest.raises(ValueError, match="must not contain"):
        turn_credential("s", "a:b", NOW)


def test_servers_from_settings_stun_then_turn_with_a_credential_for_the_user() -> None:
    settings = Settings(stun_urls=["stun:turn.clinic.test:3478"],
                        turn_urls=["turn:turn.clinic.test:3478?transport=udp",
                                   "turns:turn.clinic.test:5349?transport=tcp"],
                        turn_shared_secret=SecretStr("north-secret"), turn_credential_minutes=90)
    stun, turn = ice_servers(settings, "account-1", NOW)
    assert stun.as_json() == {"urls": ["stun:turn.clinic.test:3478"]}
    entry = turn.as_json()
    assert entry["urls"][1].startswith("turns:")
    expiry, user = entry["username"].split(":")
    assert user == "account-1" and int(expiry) == int(NOW.timestamp()) + 90 * 60
    assert entry["credential"] == turn_credential("north-secret", "account-1",
                                                  datetime.fromtimestamp(int(expiry), UTC))[1]


def test_no_servers_configured_means_none_never_a_public_default() -> None:
    assert ice_servers(Settings(), "account-1", NOW) == []
    assert rtc_configuration([]).iceServers == []
    configured = rtc_configuration([IceServer(("turn:t.test:3478",), "1:u", "c")])
    assert [(s.urls, s.username, s.credential) for s in configured.iceServers] == [
        (["turn:t.test:3478"], "1:u", "c")]


def test_production_refuses_turn_without_its_secret() -> None:
    settings = Settings(mode="production", encryption_key="A" * 43 + "=", token_secret="t" * 40,
                        database_url="postgresql://db/carebridge", smtp_host="smtp.test",
                        turn_urls=["turn:turn.clinic.test:3478"])
    with pytest.raises(MissingSetting, match="TURN_SHARED_SECRET"):
        settings.check_production()
