"""The pre-call guidance: what the echo peer saw and what the app reported, in plain words."""

from __future__ import annotations

import msgspec
import pytest

from webrtc.guidance import (
    MESSAGES,
    POOR_LOSS_PCT,
    POOR_RTT_MS,
    UNUSABLE_LOSS_PCT,
    UNUSABLE_RTT_MS,
    Browser,
    ClientReport,
    ServerObservations,
    advise,
    browser_from_user_agent,
    browser_supported,
)

SERVER_SAW_EVERYTHING = ServerObservations(
    ice_connected=True, connected=True, offered_audio=True, offered_video=True,
    offered_data_channel=True, audio_frames_received=250, video_frames_received=150,
    data_messages_received=5, rtt_ms=40.0, packet_loss_pct=0.5, jitter_ms=5.0)
APP_SAW_EVERYTHING = ClientReport(
    camera="granted", microphone="granted", rtc_supported=True, received_audio=True,
    received_video=True, data_channel_echoes=5, browser=Browser("Chrome", "131.0.6778.85"),
    rtt_ms=42.0, packet_loss_pct=0.0)
NOTHING_ARRIVED = msgspec.structs.replace(
    SERVER_SAW_EVERYTHING, ice_connected=False, connected=False, audio_frames_received=0,
    video_frames_received=0, data_messages_received=0, rtt_ms=None, packet_loss_pct=None,
    jitter_ms=None)
NOTHING_CAME_BACK = msgspec.structs.replace(
    APP_SAW_EVERYTHING, received_audio=False, received_video=False, data_channel_echoes=0,
    rtt_ms=None, packet_loss_pct=None)


def server(**changes):
    return msgspec.structs.replace(SERVER_SAW_EVERYTHING, **changes)


def app(**changes):
    return msgspec.structs.replace(APP_SAW_EVERYTHING, **changes)


def codes(result):
    return [g.code for g in result.guidance]


def test_everything_working_means_ready_with_nothing_to_do():
    result = advise(SERVER_SAW_EVERYTHING, APP_SAW_EVERYTHING)

    assert result.outcome == "ready"
    assert result.guidance == []
    checks = result.checks
    assert checks.connected and checks.data_channel and checks.browser_supported
    assert checks.audio_sent and checks.audio_received and checks.video_sent and checks.video_received


def test_a_blocked_camera_with_working_sound_means_audio_only_and_allowing_the_camera():
    result = advise(server(video_frames_received=0, offered_video=False),
                    app(camera="denied", received_video=False))

    assert result.outcome == "audio_only"
    assert codes(result) == ["allow_camera", "switch_to_audio_only"]
    assert result.guidance[0].message == MESSAGES["allow_camera:denied"]


def test_no_camera_at_all_is_told_differently_from_a_blocked_one():
    result = advise(server(video_frames_received=0), app(camera="unavailable", received_video=False))

    assert result.outcome == "audio_only"
    assert result.guidance[0].message == MESSAGES["allow_camera:unavailable"]
    assert "could not find a camera" in result.guidance[0].message


def test_a_blocked_microphone_is_not_ready_and_a_phone_call_is_the_fallback():
    result = advise(server(audio_frames_received=0), app(microphone="denied", received_audio=False))

    assert result.outcome == "not_ready"
    assert codes(result) == ["allow_microphone", "ask_for_phone_call"]
    assert "microphone is blocked" in result.guidance[0].message


def test_no_microphone_suggests_a_headset():
    result = advise(server(audio_frames_received=0),
                    app(microphone="unavailable", received_audio=False))

    assert codes(result) == ["allow_microphone", "ask_for_phone_call"]
    assert "headset" in result.guidance[0].message


def test_camera_and_microphone_blocked_asks_for_both_then_a_phone_call():
    result = advise(server(audio_frames_received=0, video_frames_received=0),
                    app(camera="denied", microphone="denied", received_audio=False,
                        received_video=False))

    assert result.outcome == "not_ready"
    assert codes(result) == ["allow_microphone", "allow_camera", "ask_for_phone_call"]


def test_nothing_getting_through_means_another_network_or_a_phone_call():
    result = advise(NOTHING_ARRIVED, NOTHING_CAME_BACK)

    assert result.outcome == "not_ready"
    assert codes(result) == ["better_connection", "ask_for_phone_call"]
    assert result.guidance[0].message == MESSAGES["better_connection:none"]
    assert not result.checks.connected


def test_ice_connected_but_the_secure_connection_failed_is_not_connected():
    result = advise(server(connected=False, audio_frames_received=0, video_frames_received=0),
                    NOTHING_CAME_BACK)

    assert not result.checks.connected
    assert result.outcome == "not_ready"


def test_a_browser_without_webrtc_is_told_to_change_browser_not_network():
    result = advise(NOTHING_ARRIVED, msgspec.structs.replace(
        NOTHING_CAME_BACK, rtc_supported=False, browser=Browser("Internet Explorer", "11.0")))

    assert result.outcome == "not_ready"
    assert codes(result) == ["use_supported_browser", "ask_for_phone_call"]
    assert not result.checks.browser_supported


def test_an_old_browser_version_is_told_to_update_even_if_media_flowed():
    result = advise(SERVER_SAW_EVERYTHING, app(browser=Browser("Safari", "13.1.2")))

    assert result.outcome == "ready"
    assert codes(result) == ["use_supported_browser"]


@pytest.mark.parametrize("rtt_ms, loss_pct", [(POOR_RTT_MS + 1, 0.0), (50.0, POOR_LOSS_PCT + 0.1)])
def test_a_slow_or_lossy_connection_means_a_better_connection_or_sound_only(rtt_ms, loss_pct):
    result = advise(server(rtt_ms=rtt_ms, packet_loss_pct=loss_pct), app(rtt_ms=None,
                                                                        packet_loss_pct=None))

    assert result.outcome == "audio_only"
    assert codes(result) == ["better_connection", "switch_to_audio_only"]
    assert result.guidance[0].message == MESSAGES["better_connection:poor"]


def test_the_thresholds_themselves_are_still_good_enough():
    result = advise(server(rtt_ms=POOR_RTT_MS, packet_loss_pct=POOR_LOSS_PCT), app(rtt_ms=None))

    assert result.outcome == "ready"


def test_unsteady_timing_alone_counts_as_a_poor_connection():
    result = advise(server(jitter_ms=250.0), APP_SAW_EVERYTHING)

    assert result.outcome == "audio_only"
    assert codes(result) == ["better_connection", "switch_to_audio_only"]


def test_the_worse_of_the_two_sides_measurements_decides():
    result = advise(server(rtt_ms=30.0, packet_loss_pct=0.0), app(rtt_ms=650.0, packet_loss_pct=9.0))

    assert result.checks.rtt_ms == 650.0
    assert result.checks.packet_loss_pct == 9.0
    assert result.outcome == "audio_only"


@pytest.mark.parametrize("rtt_ms, loss_pct", [(UNUSABLE_RTT_MS + 1, 0.0), (50.0, UNUSABLE_LOSS_PCT + 1)])
def test_an_unusable_connection_is_not_ready_even_for_sound(rtt_ms, loss_pct):
    result = advise(server(rtt_ms=rtt_ms, packet_loss_pct=loss_pct), app(rtt_ms=None))

    assert result.outcome == "not_ready"
    assert codes(result) == ["better_connection", "ask_for_phone_call"]


def test_video_that_did_not_get_through_with_the_camera_allowed_blames_the_connection():
    result = advise(server(video_frames_received=0), app(received_video=False))

    assert result.outcome == "audio_only"
    assert codes(result) == ["better_connection", "switch_to_audio_only"]
    assert result.guidance[0].message == MESSAGES["better_connection:video"]


def test_video_sent_but_its_echo_not_received_is_not_working_video():
    result = advise(SERVER_SAW_EVERYTHING, app(received_video=False))

    assert result.checks.video_sent and not result.checks.video_received
    assert result.outcome == "audio_only"


def test_sound_that_reached_the_clinic_but_never_came_back_is_not_ready():
    result = advise(SERVER_SAW_EVERYTHING, app(received_audio=False))

    assert result.outcome == "not_ready"
    assert codes(result) == ["ask_for_phone_call"]


def test_a_silent_data_channel_is_reported_but_decides_nothing():
    result = advise(server(data_messages_received=0), app(data_channel_echoes=0))

    assert not result.checks.data_channel
    assert result.outcome == "ready"


def test_no_measurements_at_all_do_not_count_against_a_working_call():
    result = advise(server(rtt_ms=None, packet_loss_pct=None, jitter_ms=None),
                    app(rtt_ms=None, packet_loss_pct=None))

    assert result.outcome == "ready"
    assert result.checks.rtt_ms is None


def test_every_piece_of_advice_is_in_plain_words_without_jargon():
    for message in MESSAGES.values():
        assert message.endswith(".")
        for jargon in ("ICE", "RTT", "SDP", "WebRTC", "packet", "jitter", "codec"):
            assert jargon not in message, (jargon, message)


def test_each_code_appears_at_most_once():
    result = advise(NOTHING_ARRIVED, msgspec.structs.replace(
        NOTHING_CAME_BACK, camera="denied", microphone="unavailable", rtt_ms=5000.0))

    assert len(codes(result)) == len(set(codes(result)))


@pytest.mark.parametrize("name, version, supported", [
    ("Chrome", "131.0", True), ("chrome", "99.0", False), ("Firefox", "128.0esr", True),
    ("Firefox", "91", False), ("Safari", "17.4", True), ("Safari", "14.1", False),
    ("Edge", "120", True), ("Internet Explorer", "11.0", False),
    ("CareBridge iOS", "3.2", True),  # not a browser we judge by version
    ("Chrome", "unknown", True),
])
def test_browser_versions(name, version, supported):
    assert browser_supported(True, Browser(name, version)) is supported


def test_without_rtc_peer_connection_no_browser_is_supported():
    assert not browser_supported(False, Browser("Chrome", "131"))
    assert not browser_supported(False, None)
    assert browser_supported(True, None)


@pytest.mark.parametrize("user_agent, expected", [
    ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
     "Chrome/131.0.0.0 Safari/537.36", Browser("chrome", "131.0.0.0")),
    ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
     "Chrome/120.0.0.0 Safari/537.36 Edg/120.0.2210.91", Browser("edge", "120.0.2210.91")),
    ("Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
     Browser("firefox", "128.0")),
    ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like "
     "Gecko) Version/17.4 Mobile/15E148 Safari/604.1", Browser("safari", "17.4")),
    ("Mozilla/5.0 (Windows NT 10.0; Trident/7.0; rv:11.0) like Gecko",
     Browser("internet explorer", "11.0")),
    ("CareBridge/3.2 (Android 14)", None),
    (None, None),
])
def test_browsers_read_from_the_user_agent(user_agent, expected):
    assert browser_from_user_agent(user_agent) == expected
