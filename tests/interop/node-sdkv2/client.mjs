// Drives the AWS IoT Device SDK v2 for JavaScript (aws-iot-device-sdk-v2, pinned in
// package.json next to this file; aws-crt's prebuilt native addon) through one custom-auth
// connection with a signed token, for tests/interop/test_token_awsiotsdk_js.py.
//
// The connection is built with the SDK's public builders, as its docs and samples do:
//   mqtt3 direct:    iot.AwsIotMqttConnectionConfigBuilder.new_default_builder()
//   mqtt3 websocket: iot.AwsIotMqttConnectionConfigBuilder.new_with_websockets()
//                    ... .with_custom_authorizer(username, authorizerName, signature,
//                                                password, tokenKeyName, tokenValue)
//   mqtt5 direct:    iot.AwsIotMqtt5ClientConfigBuilder.newDirectMqttBuilderWithCustomAuth()
//   mqtt5 websocket: iot.AwsIotMqtt5ClientConfigBuilder.newWebsocketMqttBuilderWithCustomAuth()
// Only the endpoint (a host name, so TLS carries SNI), the port and the CA differ from IoT Core.
//
// Input (stdin, JSON): {api: "mqtt3"|"mqtt5", transport: "direct"|"websocket", host, port,
//   caFile, clientId, authorizerName, tokenKeyName, token, signature, topic, payload,
//   foreignTopic?, timeoutMs?}
// Output (stdout): one JSON line {"event": "result", ...}: what the SDK reported.
import { readFileSync } from "node:fs";
import { iot, mqtt, mqtt5 } from "aws-iot-device-sdk-v2";

const scenario = JSON.parse(readFileSync(0, "utf8"));
const STEP_MS = 8000;
const result = { event: "result", api: scenario.api, transport: scenario.transport };
const say = (event) => process.stdout.write(`${JSON.stringify(event)}\n`);
const finish = (code) => {
  say(result);
  process.exit(code);
};

// Bounded: whatever the SDK does, the process ends.
const hardStop = setTimeout(() => {
  result.error = result.error ?? "timeout";
  finish(3);
}, scenario.timeoutMs ?? 25000);

const within = (ms, what, promise) =>
  Promise.race([
    promise,
    new Promise((_, reject) => setTimeout(() => reject(new Error(`${what}: timeout`)), ms)),
  ]);

const describe = (error) => ({
  message: error?.message ?? String(error),
  name: error?.error_name ?? null,
  code: error?.error_code ?? null,
});

function waitFor(messages, waiters) {
  return new Promise((resolve) => {
    if (messages.length) resolve();
    else waiters.push(resolve);
  });
}

async function runMqtt3() {
  const builder =
    scenario.transport === "websocket"
      ? iot.AwsIotMqttConnectionConfigBuilder.new_with_websockets()
      : iot.AwsIotMqttConnectionConfigBuilder.new_default_builder();
  builder.with_custom_authorizer(
    "", // no username: the token identifies the caller
    scenario.authorizerName,
    scenario.signature,
    undefined, // no password
    scenario.tokenKeyName,
    scenario.token,
  );
  builder.with_endpoint(scenario.host);
  builder.with_port(scenario.port); // with_custom_authorizer sets 443; the stand-in's port
  builder.with_certificate_authority_from_path(undefined, scenario.caFile);
  builder.with_client_id(scenario.clientId);
  builder.with_clean_session(true);
  const connection = new mqtt.MqttClient().new_connection(builder.build());

  const messages = [];
  const waiters = [];
  connection.on("message", (topic, payload) => {
    messages.push({ topic, payload: Buffer.from(payload).toString("utf8") });
    while (waiters.length) waiters.shift()();
  });
  connection.on("error", () => {}); // every rejection is also emitted; reported below
  connection.on("connection_failure", (data) => {
    result.connectionFailure = describe(data.error);
  });
  connection.on("interrupt", (error) => {
    result.interrupted = describe(error);
  });

  try {
    result.sessionPresent = await within(STEP_MS, "connect", connection.connect());
    result.connected = true;
  } catch (error) {
    result.connected = false;
    result.error = describe(error);
    return 0;
  }
  const suback = await within(
    STEP_MS,
    "subscribe",
    connection.subscribe(scenario.topic, mqtt.QoS.AtLeastOnce),
  );
  result.suback = { topic: suback.topic, qos: suback.qos };
  await within(
    STEP_MS,
    "publish",
    connection.publish(scenario.topic, scenario.payload, mqtt.QoS.AtLeastOnce),
  );
  result.puback = true;
  await within(STEP_MS, "message", waitFor(messages, waiters));
  result.received = messages.splice(0);
  if (scenario.foreignTopic) {
    try {
      const refused = await within(
        STEP_MS,
        "subscribe",
        connection.subscribe(scenario.foreignTopic, mqtt.QoS.AtLeastOnce),
      );
      result.foreignSuback = { topic: refused.topic, qos: refused.qos };
    } catch (error) {
      result.foreignSuback = { error: describe(error) };
    }
  }
  await within(STEP_MS, "disconnect", connection.disconnect());
  return 0;
}

async function runMqtt5() {
  const customAuthConfig = {
    authorizerName: scenario.authorizerName,
    tokenKeyName: scenario.tokenKeyName,
    tokenValue: scenario.token,
    tokenSignature: scenario.signature,
  };
  const builder =
    scenario.transport === "websocket"
      ? iot.AwsIotMqtt5ClientConfigBuilder.newWebsocketMqttBuilderWithCustomAuth(
          scenario.host,
          customAuthConfig,
        )
      : iot.AwsIotMqtt5ClientConfigBuilder.newDirectMqttBuilderWithCustomAuth(
          scenario.host,
          customAuthConfig,
        );
  builder.withPort(scenario.port);
  builder.withCertificateAuthorityFromPath(undefined, scenario.caFile);
  builder.withConnectProperties({ clientId: scenario.clientId, keepAliveIntervalSeconds: 1200 });
  builder.withSessionBehavior(mqtt5.ClientSessionBehavior.Clean);
  const client = new mqtt5.Mqtt5Client(builder.build());

  const messages = [];
  const waiters = [];
  client.on("messageReceived", (event) => {
    const { topicName, payload } = event.message;
    messages.push({ topic: topicName, payload: Buffer.from(payload).toString("utf8") });
    while (waiters.length) waiters.shift()();
  });
  client.on("error", () => {});
  const outcome = new Promise((resolve) => {
    client.on("connectionSuccess", (event) => resolve({ connack: event.connack }));
    client.on("connectionFailure", (event) =>
      resolve({ error: event.error, connack: event.connack ?? null }),
    );
  });
  const stopped = new Promise((resolve) => client.on("stopped", resolve));
  const stop = async () => {
    client.stop();
    await within(STEP_MS, "stop", stopped);
    client.close();
  };

  client.start();
  const first = await within(STEP_MS, "connect", outcome);
  result.connack = first.connack ? { reasonCode: first.connack.reasonCode } : null;
  if (first.error) {
    result.connected = false;
    result.error = describe(first.error);
    await stop(); // no retries: one attempt is the observation
    return 0;
  }
  result.connected = true;
  const suback = await within(
    STEP_MS,
    "subscribe",
    client.subscribe({ subscriptions: [{ topicFilter: scenario.topic, qos: mqtt5.QoS.AtLeastOnce }] }),
  );
  result.suback = { reasonCodes: suback.reasonCodes };
  const published = await within(
    STEP_MS,
    "publish",
    client.publish({ topicName: scenario.topic, payload: scenario.payload, qos: mqtt5.QoS.AtLeastOnce }),
  );
  result.puback = { reasonCode: published?.reasonCode ?? null };
  await within(STEP_MS, "message", waitFor(messages, waiters));
  result.received = messages.splice(0);
  if (scenario.foreignTopic) {
    const refused = await within(
      STEP_MS,
      "subscribe",
      client.subscribe({
        subscriptions: [{ topicFilter: scenario.foreignTopic, qos: mqtt5.QoS.AtLeastOnce }],
      }),
    );
    result.foreignSuback = { reasonCodes: refused.reasonCodes };
  }
  await stop();
  return 0;
}

(scenario.api === "mqtt5" ? runMqtt5() : runMqtt3())
  .then((code) => {
    clearTimeout(hardStop);
    finish(code);
  })
  .catch((error) => {
    clearTimeout(hardStop);
    result.error = describe(error);
    finish(1);
  });
