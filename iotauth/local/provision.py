"""The demo identities of the local stack, created in moto: the credential table (as
``iotauth devices create-table`` does), two demo devices with generated secrets in the page's
room, the identities the ``events/authorizer`` fixtures name (their test-only secrets are
published in ``events/authorizer/README.md``, so ``make invoke`` answers as documented), and
the IoT client role the signer assumes, with the template's policies.

Main entry: :func:`provision`. The room is the template's first ``WebRooms`` entry
(:func:`chat_room`), so the devices and the browser users meet in one room.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass

from iotauth.local.aws_standin import ACCOUNT, FAKE_CREDENTIALS, REGION
from iotauth.local.template import Template

__all__ = [
    "CHAT_ROOM",
    "CLIENT_ROLE_NAME",
    "DEMO_DEVICES",
    "FIXTURE_IDENTITIES",
    "TABLE_NAME",
    "Provisioned",
    "chat_room",
    "provision",
]

TABLE_NAME = "iotauth-local"
CLIENT_ROLE_NAME = "iotauth-iot-client"
CHAT_ROOM = "chat/lobby"  # the page's room when the template names none (WebRooms)
DEMO_DEVICES = ("sensor-1", "sensor-2")
#: events/authorizer/README.md: test-only credentials, never to be used anywhere real.
FIXTURE_DEVICE = ("demo-device", "iotsk_TEST-ONLY_demo-device_secret_not-for-prod01")
FIXTURE_ALIYUN = ("demo-sensor&a1DemoPK", "TEST-ONLY-aliyun-device-secret")
FIXTURE_IDENTITIES = (FIXTURE_DEVICE[0], FIXTURE_ALIYUN[0])


@dataclass(frozen=True, slots=True)
class Provisioned:
    devices: dict[str, str]  # device name → its secret (shown once, in the banner)
    role_arn: str  # the IoT client role
    fixtures: tuple[str, ...] = ()  # the events/authorizer identities (published secrets)


def chat_room(template: Template) -> str:
    """The page's room: the first of the browser users' rooms (WebRooms)."""
    for room in template.list_parameter("WebRooms"):
        if room:
            return room
    return CHAT_ROOM


def provision(aws_url: str, template: Template, room: str) -> Provisioned:
    """The credential table, the demo devices and the IoT client role, in moto."""
    import boto3  # noqa: PLC0415

    from iotauth.identities.credentials import hash_generated_secret, issue_secret  # noqa: PLC0415
    from iotauth.identities.records import IdentityRecord  # noqa: PLC0415
    from iotauth.identities.store import DynamoDBStore  # noqa: PLC0415

    session = boto3.session.Session(
        aws_access_key_id=FAKE_CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=FAKE_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        region_name=REGION,
    )
    store = DynamoDBStore(TABLE_NAME, client=session.client("dynamodb", endpoint_url=aws_url))
    store.create_table()
    devices: dict[str, str] = {}
    now = int(time.time())
    for name in DEMO_DEVICES:
        secret, verifier = issue_secret()  # generated here: lockout-exempt
        store.add_identity(
            IdentityRecord(
                username=name,
                kind="secret",
                verifier=verifier,
                rooms=(room,),
                created_at=now,
                updated_at=now,
            )
        )
        devices[name] = secret
    store.add_identity(
        IdentityRecord(
            username=FIXTURE_DEVICE[0],
            kind="secret",
            verifier=hash_generated_secret(FIXTURE_DEVICE[1]),
            rooms=(room,),
            created_at=now,
            updated_at=now,
        )
    )
    store.add_identity(
        IdentityRecord(
            username=FIXTURE_ALIYUN[0],
            kind="aliyun",
            device_secret=FIXTURE_ALIYUN[1],
            created_at=now,
            updated_at=now,
        )
    )

    iam = session.client("iam", endpoint_url=aws_url)
    trust = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"},
                "Action": "sts:AssumeRole",
            }
        ],
    }
    role = iam.create_role(
        RoleName=CLIENT_ROLE_NAME,
        AssumeRolePolicyDocument=json.dumps(trust),
        MaxSessionDuration=3600,
    )
    for policy_name, document in template.role_policies("IotClientRole").items():
        iam.put_role_policy(
            RoleName=CLIENT_ROLE_NAME,
            PolicyName=policy_name,
            PolicyDocument=json.dumps(document),
        )
    return Provisioned(devices, str(role["Role"]["Arn"]), FIXTURE_IDENTITIES)
