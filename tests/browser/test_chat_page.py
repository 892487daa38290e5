"""The chat page (web/) in Chromium against the local stack, as a user would use it.

Three sign-in modes: a signed-in user gets a presigned URL from the signer (development
bearer tokens stand in for JWTs locally), or takes a JWT from the local OIDC issuer straight
to the custom authorizer; a device signs in with username/password through the custom
authorizer. What the tests assert is what the page shows.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from playwright.sync_api import expect

from iotauth.local.stack import StackInfo
from tests.e2e.conftest import Mqtt, username_for

from .conftest import WAIT_MS

expect.set_options(timeout=WAIT_MS)


def sign_in_as(page: Any, user: str) -> str:
    """Presigned-URL sign-in with a development user's token; returns the client id."""
    page.get_by_label("Signed-in user (presigned URL)").check()
    page.get_by_label("Development user").select_option(user)
    page.get_by_role("button", name="Connect", exact=True).click()
    expect(page.locator("#status")).to_have_attribute("data-state", "connected")
    client_id: str = page.locator("#identity-client-id").inner_text()
    return client_id


def subscription(page: Any, topic: str) -> Any:
    return page.locator(f'#subscriptions li[data-topic="{topic}"]')


def room_filter(stack: StackInfo) -> str:
    """What everyone subscribes to: one level per sender under the room."""
    return f"{stack.chat_room}/+"


def send(page: Any, text: str, *, target: str = "room", topic: str | None = None) -> None:
    page.get_by_label("Send to", exact=True).select_option(target)
    if topic is not None:
        page.get_by_role("textbox", name="Topic to send to").fill(topic)
    page.get_by_role("textbox", name="Message").fill(text)
    page.get_by_role("button", name="Send", exact=True).click()


def message(page: Any, text: str) -> Any:
    return page.locator("#messages li.message").filter(
        has=page.locator("p.text", has_text=re.compile("^" + re.escape(text) + "$"))
    )


def test_page_loads_without_a_cdn(open_page: Any, stack: StackInfo) -> None:
    page = open_page()
    scripts = page.eval_on_selector_all("script[src]", "els => els.map(e => e.src)")
    assert scripts, "the page loads its scripts"
    assert all(src.startswith(stack.page_url) for src in scripts), scripts
    assert page.evaluate("typeof mqtt.connect") == "function"
    # config.json from the local stack filled the form in.
    expect(page.get_by_label("Signer URL")).to_have_value(stack.signer_url)
    expect(page.locator("#status")).to_have_text("Not connected.")


def test_user_gets_a_url_connects_and_round_trips(
    open_page: Any, stack: StackInfo, artifacts: Path
) -> None:
    page = open_page()
    signer_calls: list[str] = []
    page.on(
        "request",
        lambda request: (
            signer_calls.append(request.headers.get("authorization", ""))
            if request.url.startswith(stack.signer_url)
            else None
        ),
    )
    client_id = sign_in_as(page, "alice")
    assert signer_calls == [f"Bearer {stack.dev_tokens['alice']}"]
    inbox = f"{client_id}/inbox"
    expect(page.locator("#identity-inbox")).to_have_text(inbox)
    expect(subscription(page, inbox)).to_have_attribute("data-state", "active")
    expect(subscription(page, room_filter(stack))).to_have_attribute("data-state", "active")

    send(page, "hello from alice <b>not bold</b>")
    room_message = message(page, "hello from alice <b>not bold</b>")
    expect(room_message).to_have_count(1)
    expect(room_message.locator(".sender")).to_have_text(client_id)
    expect(room_message.locator(".topic")).to_have_text(f"{stack.chat_room}/{client_id}")
    # Message text is text, never markup.
    assert room_message.locator("b").count() == 0

    send(page, "a note to myself", target="inbox")
    expect(message(page, "a note to myself").locator(".topic")).to_have_text(inbox)

    # Reconnecting asks the signer for a fresh URL.
    page.get_by_role("button", name="Disconnect").click()
    expect(page.locator("#status")).to_have_text("Disconnected.")
    page.get_by_role("button", name="Connect", exact=True).click()
    expect(page.locator("#status")).to_have_attribute("data-state", "connected")
    assert len(signer_calls) == 2
    send(page, "back again")
    expect(message(page, "back again")).to_have_count(1)
    page.screenshot(path=str(artifacts / "chat-page.png"), full_page=True)


def test_second_user_cannot_read_the_first_users_private_topic(
    open_page: Any, stack: StackInfo
) -> None:
    alice, bob = open_page(), open_page()
    alice_id = sign_in_as(alice, "alice")
    bob_id = sign_in_as(bob, "bob")
    assert alice_id != bob_id
    alice_inbox = f"{alice_id}/inbox"

    bob.get_by_label("Subscribe to a topic").fill(alice_inbox)
    bob.get_by_role("button", name="Subscribe", exact=True).click()
    expect(subscription(bob, alice_inbox)).to_have_attribute("data-state", "refused")
    expect(bob.get_by_role("alert")).to_contain_text(f'Subscription to "{alice_inbox}" was refused')

    # Alice writes to her private topic, then to the room; bob gets the room message (so the
    # private one, sent first, had its chance) but never the private one.
    send(alice, "for alice only", target="inbox")
    expect(message(alice, "for alice only")).to_have_count(1)
    send(alice, "for everyone")
    expect(message(bob, "for everyone")).to_have_count(1)
    expect(message(bob, "for alice only")).to_have_count(0)
    assert bob.locator(f'#messages li[data-topic="{alice_inbox}"]').count() == 0
    # Bob is still connected: a refused subscription is not a disconnect.
    expect(bob.locator("#status")).to_have_attribute("data-state", "connected")


def test_publishing_to_another_users_topic_disconnects_and_says_so(
    open_page: Any, stack: StackInfo
) -> None:
    alice, bob = open_page(), open_page()
    alice_id = sign_in_as(alice, "alice")
    sign_in_as(bob, "bob")
    alice_inbox = f"{alice_id}/inbox"
    send(bob, "let me in", target="custom", topic=alice_inbox)
    expect(bob.locator("#status")).to_have_text("Disconnected.")
    alert = bob.get_by_role("alert")
    expect(alert).to_contain_text(f'Publishing to "{alice_inbox}" was')
    expect(alert).to_contain_text("not allowed: the server closed the connection")
    expect(bob.get_by_role("button", name="Connect", exact=True)).to_be_enabled()
    # Alice got nothing; her own messages still flow.
    send(alice, "still here", target="inbox")
    expect(message(alice, "still here")).to_have_count(1)
    expect(message(alice, "let me in")).to_have_count(0)


def test_page_without_config_takes_a_typed_signer_url_and_token(
    open_page: Any, stack: StackInfo
) -> None:
    page = open_page(without_config=True)
    expect(page.get_by_label("Signer URL")).to_have_value("")
    expect(page.get_by_label("Development user")).to_be_hidden()
    page.get_by_role("button", name="Connect", exact=True).click()
    expect(page.get_by_role("alert")).to_have_text("Enter the signer URL.")

    page.get_by_label("Signer URL").fill(stack.signer_url)
    page.get_by_label("Bearer token").fill(stack.dev_tokens["bob"])
    page.get_by_label("Shared room").fill("")  # so the room must come from the signer's answer
    page.get_by_role("button", name="Connect", exact=True).click()
    expect(page.locator("#status")).to_have_attribute("data-state", "connected")
    expect(page.get_by_role("alert")).to_be_hidden()
    client_id = page.locator("#identity-client-id").inner_text()
    expect(subscription(page, room_filter(stack))).to_have_attribute("data-state", "active")
    send(page, "typed by hand", target="inbox")
    expect(message(page, "typed by hand").locator(".topic")).to_have_text(f"{client_id}/inbox")


def test_wrong_bearer_token_is_refused_by_the_signer(open_page: Any) -> None:
    page = open_page()
    page.get_by_label("Development user").select_option("")
    page.get_by_label("Bearer token").fill("not-a-valid-token")
    page.get_by_role("button", name="Connect", exact=True).click()
    expect(page.get_by_role("alert")).to_contain_text("The signer refused the bearer token")
    expect(page.locator("#status")).to_have_text("Not connected.")


def token_sign_in(page: Any, user: str) -> None:
    """Token sign-in: a JWT from the local issuer, straight to the authorizer (no signer)."""
    page.get_by_label("Signed-in user (token at the authorizer)").check()
    expect(page.get_by_label("Token endpoint")).to_be_visible()
    expect(page.get_by_label("Signer URL")).to_be_hidden()
    page.get_by_label("Development user").select_option(user)
    page.get_by_role("button", name="Connect", exact=True).click()


def test_user_signs_in_with_a_token_checked_by_the_authorizer(
    open_page: Any, stack: StackInfo
) -> None:
    page = open_page()
    token_calls: list[str] = []
    signer_calls: list[str] = []
    sockets: list[str] = []

    def on_request(request: Any) -> None:
        if request.url.startswith(stack.token_endpoint):
            token_calls.append(request.method)
        elif request.url.startswith(stack.signer_url):
            signer_calls.append(request.url)

    page.on("request", on_request)
    page.on("websocket", lambda socket: sockets.append(socket.url))
    expect(page.get_by_label("Token endpoint")).to_be_hidden()
    token_sign_in(page, "alice")
    expect(page.locator("#status")).to_have_attribute("data-state", "connected")
    expect(page.locator("#identity-client-id")).to_have_text("web-alice")
    assert token_calls == ["POST"] and signer_calls == []
    # The JWT travels in the WebSocket URL under the authorizer's token key name.
    (url,) = sockets
    assert url.startswith(stack.gateway_ws_url.split("?")[0] + "?")
    assert f"x-amz-customauthorizer-name={stack.authorizer_name}" in url
    assert f"{stack.token_key_name}=ey" in url
    expect(subscription(page, "web-alice/inbox")).to_have_attribute("data-state", "active")
    send(page, "a note by token", target="inbox")
    expect(message(page, "a note by token").locator(".topic")).to_have_text("web-alice/inbox")

    # The room, shared with a presigned-URL user: the sender is proven by the topic.
    expect(subscription(page, room_filter(stack))).to_have_attribute("data-state", "active")
    bob = open_page()
    sign_in_as(bob, "bob")
    send(page, "hello bob, by token")
    received = message(bob, "hello bob, by token")
    expect(received.locator(".sender")).to_have_text("web-alice")


def test_a_token_the_authorizer_refuses_says_so(open_page: Any, stack: StackInfo) -> None:
    page = open_page()
    page.get_by_label("Signed-in user (token at the authorizer)").check()
    page.get_by_label("Development user").select_option("")
    page.get_by_label("Token endpoint").fill("")  # the bearer token field is the JWT itself
    page.get_by_label("Bearer token").fill("eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJtYWxsb3J5In0.AAAA")
    page.get_by_role("button", name="Connect", exact=True).click()
    expect(page.get_by_role("alert")).to_contain_text("Connection refused")
    expect(page.locator("#status")).to_have_text("Not connected.")


def device_sign_in(page: Any, stack: StackInfo, username: str, password: str) -> None:
    page.get_by_label("Device username/password (custom authorizer)").check()
    expect(page.get_by_label("MQTT WebSocket URL")).to_be_visible()
    page.get_by_label("Username", exact=True).fill(username)
    page.get_by_label("Password", exact=True).fill(password)
    page.get_by_role("button", name="Connect", exact=True).click()


def test_device_username_password_sign_in(open_page: Any, stack: StackInfo) -> None:
    page = open_page()
    device, secret = next(iter(stack.devices.items()))
    device_sign_in(page, stack, device, secret)
    expect(page.locator("#status")).to_have_text(f"Connected as {device}.")
    expect(subscription(page, f"{device}/inbox")).to_have_attribute("data-state", "active")
    expect(subscription(page, room_filter(stack))).to_have_attribute("data-state", "active")
    send(page, "hello from a device")
    expect(message(page, "hello from a device").locator(".sender")).to_have_text(device)


# -- the sender is proven by the topic (issue 9.5) ------------------------------------------


def test_a_forged_sender_in_the_payload_is_not_believed(open_page: Any, stack: StackInfo) -> None:
    """A device publishes raw JSON naming bob as its sender: bob's page shows the device,
    from the topic, and nothing of the claim."""
    bob = open_page()
    bob_id = sign_in_as(bob, "bob")
    device, secret = list(stack.devices.items())[-1]
    forger = Mqtt(device)
    try:
        assert forger.connect(
            stack.mqtt_port, username=username_for(stack, device), password=secret
        )
        forged = json.dumps({"from": bob_id, "text": "I am bob, trust me"})
        assert forger.publish(f"{stack.chat_room}/{device}", forged) is not None
        received = message(bob, "I am bob, trust me")
        expect(received).to_have_count(1)
        expect(received.locator(".sender")).to_have_text(device)
        expect(received.locator(".sender")).to_have_attribute("data-verified", "true")
        expect(received).not_to_have_class(re.compile(r"\bown\b"))
    finally:
        forger.close()


def test_posting_under_another_senders_topic_is_refused(open_page: Any, stack: StackInfo) -> None:
    """Alice tries the room topic of bob: IoT (the gateway) refuses the PUBLISH and drops her;
    bob never sees a message under his own name that he did not send."""
    alice, bob = open_page(), open_page()
    sign_in_as(alice, "alice")
    bob_id = sign_in_as(bob, "bob")
    send(alice, "posing as bob", target="custom", topic=f"{stack.chat_room}/{bob_id}")
    expect(alice.locator("#status")).to_have_text("Disconnected.")
    expect(alice.get_by_role("alert")).to_contain_text(
        f'Publishing to "{stack.chat_room}/{bob_id}"'
    )
    send(bob, "the real bob")
    expect(message(bob, "the real bob")).to_have_count(1)
    expect(message(bob, "posing as bob")).to_have_count(0)


def test_a_device_cannot_post_as_a_browser_user(open_page: Any, stack: StackInfo) -> None:
    user, device_page = open_page(), open_page()
    user_id = sign_in_as(user, "alice")
    device, secret = next(iter(stack.devices.items()))
    device_sign_in(device_page, stack, device, secret)
    expect(device_page.locator("#status")).to_have_text(f"Connected as {device}.")
    send(device_page, "hello humans")
    expect(message(user, "hello humans").locator(".sender")).to_have_text(device)
    send(device_page, "fake", target="custom", topic=f"{stack.chat_room}/{user_id}")
    expect(device_page.locator("#status")).to_have_text("Disconnected.")
    send(user, "after the attempt")
    expect(message(user, "after the attempt")).to_have_count(1)
    expect(message(user, "fake")).to_have_count(0)


def test_device_wrong_password_shows_an_error(open_page: Any, stack: StackInfo) -> None:
    page = open_page()
    device, secret = next(iter(stack.devices.items()))
    device_sign_in(page, stack, device, secret + "x")
    expect(page.get_by_role("alert")).to_contain_text("Connection refused")
    expect(page.locator("#status")).to_have_text("Not connected.")
    expect(page.get_by_role("button", name="Connect", exact=True)).to_be_enabled()
