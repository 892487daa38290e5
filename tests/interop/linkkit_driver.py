"""Drives Aliyun's linkkit 1.2.13, unmodified, through one scenario (tests/interop).

Run by .tools/linkkit/bin/python (linkkit needs paho-mqtt<2), never imported by the suite.
Input (stdin, JSON): {host, port, secure ("TLS" or ""), ca_file, product_key, device_name,
device_secret, steps: [{op, topic?, payload?}]}. Output (stdout): one JSON object per line,
what linkkit reported through its public callbacks.
"""

import json
import os
import queue
import sys
import threading

from linkkit import linkkit

WAIT = 8.0


def say(**event):
    sys.stdout.write(json.dumps(event) + "\n")
    sys.stdout.flush()


def main():
    scenario = json.loads(sys.stdin.read())
    ca = None
    if scenario.get("ca_file"):
        with open(scenario["ca_file"]) as handle:
            ca = handle.read()
    lk = linkkit.LinkKit(
        host_name=scenario.get("host", "127.0.0.1"),
        product_key=scenario["product_key"],
        device_name=scenario["device_name"],
        device_secret=scenario["device_secret"],
    )
    lk.config_mqtt(
        port=scenario["port"],
        protocol="MQTTv311",
        secure=scenario["secure"],
        keep_alive=60,
        cadata=ca,
        auto_reconnect_min_sec=60,  # no reconnect within a scenario
        auto_reconnect_max_sec=60,
    )
    connected = threading.Event()
    disconnected = threading.Event()
    acks = queue.Queue()
    messages = queue.Queue()

    def on_connect(session_flag, rc, userdata):
        say(event="connect", rc=rc)
        connected.set()

    def on_disconnect(rc, userdata):
        say(event="disconnect", rc=rc)
        disconnected.set()

    lk.on_connect = on_connect
    lk.on_disconnect = on_disconnect
    lk.on_topic_message = lambda topic, payload, qos, userdata: messages.put(
        (topic, payload.decode())
    )
    lk.on_subscribe_topic = lambda mid, granted_qos, userdata: acks.put(("suback", granted_qos))
    lk.on_publish_topic = lambda mid, userdata: acks.put(("puback", mid))
    lk.connect_async()
    if not connected.wait(WAIT):
        say(event="no-connect", disconnected=disconnected.is_set())
        return
    for step in scenario.get("steps", []):
        if step["op"] == "subscribe":
            rc, _ = lk.subscribe_topic(step["topic"], 1)
            try:
                _, granted = acks.get(timeout=WAIT)
                say(event="suback", rc=rc, granted=list(granted))
            except queue.Empty:
                say(event="suback", rc=rc, granted=None)
        elif step["op"] == "publish":
            rc, _ = lk.publish_topic(step["topic"], step["payload"], 1)
            try:
                acks.get(timeout=WAIT)
                say(event="puback", rc=rc, acked=True)
            except queue.Empty:
                say(event="puback", rc=rc, acked=False)
        elif step["op"] == "expect_message":
            try:
                topic, payload = messages.get(timeout=WAIT)
                say(event="message", topic=topic, payload=payload)
            except queue.Empty:
                say(event="message", topic=None, payload=None)
        elif step["op"] == "wait_close":
            say(event="closed", closed=disconnected.wait(WAIT))
    if not disconnected.is_set():
        lk.disconnect()
        disconnected.wait(2)


if __name__ == "__main__":
    main()
    sys.stdout.flush()
    os._exit(0)  # linkkit's worker threads do not stop on their own (destroy() blocks)
