/*
 * iotauth chat page: plain browser JavaScript, no build step, no framework.
 *
 * Two ways in:
 *  - "presigned": GET the signer with the user's bearer token, receive a short-lived
 *    SigV4-presigned wss:// URL scoped to that user, connect with it (no username/password).
 *    A URL is good for about 15 minutes, so a fresh one is fetched for every (re)connect.
 *  - "token": the user's JWT (locally from the stand-in's OIDC issuer, POST /token with the
 *    development user's token as its password; elsewhere pasted in) goes straight to the
 *    custom authorizer in the WebSocket URL, as IoT Core takes a token:
 *    wss://<endpoint>/mqtt?x-amz-customauthorizer-name=NAME&<token key name>=<JWT>. The
 *    authorizer verifies it against the issuer's keys; no signer. The client id must be the
 *    one the authorizer binds to the token's subject: "web-<sub>" (a digest for unsafe subs).
 *  - "device": connect to wss://<endpoint>/mqtt?x-amz-customauthorizer-name=NAME with an
 *    MQTT username and password, checked by the custom authorizer.
 *
 * The shared room proves who sent a message by its topic: every identity may publish to
 * "<room>/<its own client id>" only (its IoT policy says so; client ids are bound to one
 * identity each), and reads "<room>/+". The sender shown is the topic's last level, never a
 * name written in the payload.
 *
 * Message text only ever reaches the page through textContent.
 */
(function () {
  'use strict';

  const DEFAULT_ROOM = 'chat/lobby';
  const MAX_MESSAGES = 200;
  const CONNECT_TIMEOUT_MS = 10000;
  // Automatic reconnects after a connection that had been up for a while dropped.
  const RECONNECT_DELAYS_MS = [1000, 3000, 10000];
  const STABLE_AFTER_MS = 30000;
  const PUBLISH_DENIAL_WINDOW_MS = 3000;
  const AUTHORIZER_QUERY = 'x-amz-customauthorizer-name';
  const WEB_PREFIX = 'web-';

  const $ = (id) => document.getElementById(id);
  const ui = {
    form: $('signin-form'),
    presignedFields: $('presigned-fields'),
    tokenFields: $('token-fields'),
    userFields: $('user-fields'),
    endpointFields: $('endpoint-fields'),
    deviceFields: $('device-fields'),
    tokenEndpoint: $('token-endpoint'),
    tokenKeyName: $('token-key-name'),
    signerUrl: $('signer-url'),
    devUserRow: $('dev-user-row'),
    devUser: $('dev-user'),
    token: $('token'),
    gatewayUrl: $('gateway-url'),
    authorizerName: $('authorizer-name'),
    deviceUsername: $('device-username'),
    devicePassword: $('device-password'),
    deviceClientId: $('device-client-id'),
    room: $('room'),
    connect: $('connect'),
    disconnect: $('disconnect'),
    status: $('status'),
    error: $('error'),
    identity: $('identity'),
    identityClientId: $('identity-client-id'),
    identityInbox: $('identity-inbox'),
    subscriptions: $('subscriptions'),
    subscribeForm: $('subscribe-form'),
    subscribeTopic: $('subscribe-topic'),
    subscribe: $('subscribe'),
    messages: $('messages'),
    sendForm: $('send-form'),
    sendTarget: $('send-target'),
    sendTopic: $('send-topic'),
    message: $('message'),
    send: $('send'),
  };

  /** An error whose message is meant for the user. */
  class UserError extends Error {}

  let config = {};
  let devTokens = {};
  /** The current connection attempt or connection; replaced on every connect. */
  let session = null;
  let reconnectTimer = null;
  let reconnectAttempt = 0;

  // ---------------------------------------------------------------- status and errors

  function setStatus(state, text) {
    ui.status.dataset.state = state;
    ui.status.textContent = text;
  }

  function showError(text) {
    ui.error.textContent = text;
    ui.error.hidden = false;
  }

  function clearError() {
    ui.error.textContent = '';
    ui.error.hidden = true;
  }

  function setConnected(connected) {
    ui.connect.disabled = connected;
    ui.disconnect.disabled = !connected && !session;
    ui.subscribe.disabled = !connected;
    ui.send.disabled = !connected;
  }

  // ---------------------------------------------------------------- configuration

  /** config.json is optional: the local stack serves one; a deployed page may not. */
  async function loadConfig() {
    try {
      const response = await fetch('config.json', { cache: 'no-store', credentials: 'omit' });
      if (!response.ok) return {};
      const body = await response.json();
      return body && typeof body === 'object' ? body : {};
    } catch (_) {
      return {};
    }
  }

  function str(value) {
    return typeof value === 'string' ? value : '';
  }

  function applyConfig(c) {
    if (str(c.signerUrl)) ui.signerUrl.value = c.signerUrl;
    if (str(c.gatewayWsUrl)) ui.gatewayUrl.value = c.gatewayWsUrl;
    if (str(c.authorizerName)) ui.authorizerName.value = c.authorizerName;
    if (str(c.room)) ui.room.value = c.room;
    if (str(c.tokenEndpoint)) ui.tokenEndpoint.value = c.tokenEndpoint;
    if (str(c.tokenKeyName)) ui.tokenKeyName.value = c.tokenKeyName;
    devTokens = c.devTokens && typeof c.devTokens === 'object' ? c.devTokens : {};
    const users = Object.keys(devTokens).filter((u) => typeof devTokens[u] === 'string');
    for (const user of users) {
      const option = document.createElement('option');
      option.value = user;
      option.textContent = user;
      ui.devUser.appendChild(option);
    }
    ui.devUserRow.hidden = users.length === 0;
    if (users.length > 0) {
      ui.devUser.value = users[0];
      ui.token.value = devTokens[users[0]];
    }
  }

  function mode() {
    const checked = document.querySelector('input[name="mode"]:checked');
    return checked ? checked.value : 'presigned';
  }

  function showModeFields() {
    const current = mode();
    ui.presignedFields.hidden = current !== 'presigned';
    ui.tokenFields.hidden = current !== 'token';
    ui.userFields.hidden = current === 'device';
    ui.endpointFields.hidden = current === 'presigned';
    ui.deviceFields.hidden = current !== 'device';
  }

  // ---------------------------------------------------------------- getting connected

  function hasWildcard(topic) {
    return /[+#*]/.test(topic);
  }

  /** Ask the signer for a presigned URL; never logs or displays the URL itself. */
  async function fetchPresignedUrl(signerUrl, token) {
    let response;
    try {
      response = await fetch(signerUrl, {
        headers: { Authorization: 'Bearer ' + token },
        cache: 'no-store',
        credentials: 'omit',
      });
    } catch (_) {
      throw new UserError('Could not reach the signer at ' + signerUrl + '.');
    }
    if (response.status === 401 || response.status === 403) {
      throw new UserError(
        'The signer refused the bearer token (HTTP ' + response.status + '). Sign in again.');
    }
    if (!response.ok) {
      throw new UserError('The signer answered HTTP ' + response.status + '. Try again later.');
    }
    let body;
    try {
      body = await response.json();
    } catch (_) {
      throw new UserError('The signer answered with something that is not JSON.');
    }
    if (!body || typeof body.url !== 'string' || !/^wss?:\/\//.test(body.url) ||
        typeof body.clientId !== 'string' || body.clientId === '') {
      throw new UserError('The signer answer has no usable URL and client id.');
    }
    return body;
  }

  /** The user's topic namespace: "<ns>/*" among the topics it may publish to. */
  function namespaceOf(body) {
    if (str(body.namespace)) return body.namespace;
    const topics = body.topics && Array.isArray(body.topics.publish) ? body.topics.publish : [];
    for (const topic of topics) {
      const match = /^(.+)\/[*#]$/.exec(str(topic));
      if (match && !hasWildcard(match[1])) return match[1];
    }
    return body.clientId;
  }

  /** The shared room: the first room the signer names (its "rooms"), else the form's. */
  function roomOf(body, fallback) {
    const rooms = Array.isArray(body.rooms) ? body.rooms : [];
    for (const room of rooms) {
      const r = str(room);
      if (r && !hasWildcard(r)) return r;
    }
    return fallback;
  }

  /** Where this identity posts in the room: the one topic its policy allows there. */
  function roomTopic(current) {
    return current.room + '/' + current.clientId;
  }

  /** The proven sender of a room message (the topic's last level), or '' elsewhere. */
  function senderOf(current, topic) {
    if (!current.room || !topic.startsWith(current.room + '/')) return '';
    const sender = topic.slice(current.room.length + 1);
    return sender && !sender.includes('/') ? sender : '';
  }

  function withAuthorizerName(gatewayUrl, authorizerName) {
    let url;
    try {
      url = new URL(gatewayUrl);
    } catch (_) {
      throw new UserError('The MQTT WebSocket URL is not a valid URL.');
    }
    if (url.protocol !== 'ws:' && url.protocol !== 'wss:') {
      throw new UserError('The MQTT WebSocket URL must start with wss:// (or ws:// locally).');
    }
    if (authorizerName && !url.searchParams.has(AUTHORIZER_QUERY)) {
      url.searchParams.set(AUTHORIZER_QUERY, authorizerName);
    }
    return url.toString();
  }

  /** A JWT from the token endpoint for a development user (its dev token as the password):
   *  a resource-owner password grant. Never logs or displays the token. */
  async function fetchToken(endpoint, user, password) {
    const form = new URLSearchParams({ grant_type: 'password', username: user, password: password });
    if (str(config.tokenAudience)) form.set('client_id', config.tokenAudience);
    let response;
    try {
      response = await fetch(endpoint, { method: 'POST', body: form, cache: 'no-store',
                                         credentials: 'omit' });
    } catch (_) {
      throw new UserError('Could not reach the token endpoint at ' + endpoint + '.');
    }
    if (!response.ok) {
      throw new UserError('The token endpoint refused the sign-in (HTTP ' + response.status + ').');
    }
    let body;
    try {
      body = await response.json();
    } catch (_) {
      throw new UserError('The token endpoint answered with something that is not JSON.');
    }
    const token = body && (str(body.id_token) || str(body.access_token));
    if (!token) throw new UserError('The token endpoint answer holds no token.');
    return token;
  }

  /** The token's "sub" claim (read, not verified: the authorizer verifies the token). */
  function subjectOf(jwt) {
    const parts = jwt.split('.');
    if (parts.length !== 3) throw new UserError('The token is not a JWT.');
    try {
      const text = atob(parts[1].replace(/-/g, '+').replace(/_/g, '/'));
      const bytes = Uint8Array.from(text, (ch) => ch.charCodeAt(0));
      const claims = JSON.parse(new TextDecoder('utf-8').decode(bytes));
      if (claims && typeof claims.sub === 'string' && claims.sub) return claims.sub;
    } catch (_) { /* fall through */ }
    throw new UserError('The token names no subject ("sub").');
  }

  /** The client id the authorizer binds to a subject: as iotauth.access.names.web_username. */
  async function webUsername(sub) {
    const readable = WEB_PREFIX + sub;
    if (readable.length <= 100 && /^[A-Za-z0-9][A-Za-z0-9_.@:-]{0,127}$/.test(readable) &&
        !/^[0-9a-f]{40}$/.test(sub)) {
      return readable;
    }
    const digest = await crypto.subtle.digest('SHA-256', new TextEncoder().encode(sub));
    const hex = Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, '0'));
    return WEB_PREFIX + hex.join('').slice(0, 40);
  }

  async function prepareTokenConnection(roomField) {
    const gateway = ui.gatewayUrl.value.trim();
    const keyName = ui.tokenKeyName.value.trim();
    const endpoint = ui.tokenEndpoint.value.trim();
    const user = ui.devUser.value;
    const entered = ui.token.value.trim();
    if (!gateway) throw new UserError('Enter the MQTT WebSocket URL.');
    if (!keyName) throw new UserError('Enter the token key name.');
    if (!entered) throw new UserError('Enter a token (or pick a development user).');
    let jwt = entered;
    if (endpoint && user) {
      setStatus('connecting', 'Asking the token endpoint for a token…');
      jwt = await fetchToken(endpoint, user, entered);
    }
    const clientId = await webUsername(subjectOf(jwt));
    const url = new URL(withAuthorizerName(gateway, ui.authorizerName.value.trim()));
    url.searchParams.set(keyName, jwt);
    return {
      url: url.toString(),
      options: { clientId: clientId },
      clientId: clientId,
      namespace: clientId,
      room: roomField,
      expiresAt: '',
      mode: 'token',
    };
  }

  /** Everything needed for one connection attempt: URL, mqtt.js options, topics. */
  async function prepareConnection() {
    const roomField = ui.room.value.trim();
    if (mode() === 'token') return prepareTokenConnection(roomField);
    if (mode() === 'presigned') {
      const signerUrl = ui.signerUrl.value.trim();
      const token = ui.token.value.trim();
      if (!signerUrl) throw new UserError('Enter the signer URL.');
      if (!token) throw new UserError('Enter a bearer token (or pick a development user).');
      setStatus('connecting', 'Asking the signer for a connection URL…');
      const body = await fetchPresignedUrl(signerUrl, token);
      const namespace = namespaceOf(body);
      return {
        url: body.url,
        options: { clientId: body.clientId },
        clientId: body.clientId,
        namespace: namespace,
        room: roomOf(body, roomField),
        expiresAt: str(body.expiresAt),
      };
    }
    const gateway = ui.gatewayUrl.value.trim();
    const username = ui.deviceUsername.value.trim();
    const password = ui.devicePassword.value;
    const clientId = ui.deviceClientId.value.trim() || username;
    if (!gateway) throw new UserError('Enter the MQTT WebSocket URL.');
    if (!username || !password) throw new UserError('Enter the username and the password.');
    return {
      url: withAuthorizerName(gateway, ui.authorizerName.value.trim()),
      options: { clientId: clientId, username: username, password: password },
      clientId: clientId,
      namespace: username,
      room: roomField,
      expiresAt: '',
    };
  }

  async function connect() {
    cancelReconnect();
    clearError();
    closeSession(true);
    const current = { client: null, userClosed: false, connectedAt: 0, pending: new Map(),
                      subscriptions: new Map(), failed: false, lastPublish: null };
    session = current;
    setConnected(false);
    ui.connect.disabled = true;
    let plan;
    try {
      plan = await prepareConnection();
    } catch (err) {
      if (session !== current) return;
      session = null;
      setConnected(false);
      setStatus('error', 'Not connected.');
      showError(err instanceof UserError ? err.message : 'Could not prepare the connection.');
      return;
    }
    if (session !== current) return; // superseded while the signer answered
    Object.assign(current, plan);
    setStatus('connecting', 'Connecting as ' + plan.clientId + '…');
    let client;
    try {
      client = mqtt.connect(plan.url, Object.assign({
        protocolVersion: 4,
        clean: true,
        reconnectPeriod: 0, // reconnecting needs a fresh URL: done here, not by mqtt.js
        connectTimeout: CONNECT_TIMEOUT_MS,
        keepalive: 60,
      }, plan.options));
    } catch (_) {
      session = null;
      setConnected(false);
      setStatus('error', 'Not connected.');
      showError('Could not open the connection: the URL was not accepted.');
      return;
    }
    current.client = client;
    client.on('connect', () => onConnect(current));
    client.on('message', (topic, payload) => onMessage(current, topic, payload));
    client.on('error', (err) => onError(current, err));
    client.on('close', () => onClose(current));
  }

  function onConnect(current) {
    if (session !== current) return;
    current.connectedAt = Date.now();
    reconnectAttempt = 0;
    setConnected(true);
    setStatus('connected', 'Connected as ' + current.clientId + '.');
    ui.identityClientId.textContent = current.clientId;
    ui.identityInbox.textContent = inboxOf(current);
    ui.identity.hidden = false;
    ui.subscriptions.replaceChildren();
    subscribe(current, inboxOf(current), 'private topic');
    if (current.room) subscribe(current, current.room + '/+', 'shared room');
  }

  function inboxOf(current) {
    return current.namespace + '/inbox';
  }

  function describeConnectError(err) {
    // MQTT 3.1.1 CONNACK return codes (mqtt.js puts them on err.code).
    switch (err && err.code) {
      case 4: return 'Connection refused: wrong username or password.';
      case 5: return 'Connection refused: not authorized.';
      case 2: return 'Connection refused: the client id was rejected.';
      case 3: return 'Connection refused: the server is unavailable.';
      default: return 'Connection error: ' + (err && err.message ? err.message : 'unknown error') + '.';
    }
  }

  function onError(current, err) {
    if (session !== current) return;
    if (!current.connectedAt) {
      current.failed = true;
      showError(describeConnectError(err));
    }
  }

  function onClose(current) {
    if (session !== current) return;
    const wasConnected = current.connectedAt > 0;
    const pendingTopics = Array.from(current.pending.values());
    const pendingSubscriptions = [];
    for (const [topic, state] of current.subscriptions) {
      if (state === 'pending') {
        pendingSubscriptions.push(topic);
        markSubscription(current, topic, 'refused', 'the connection closed');
      }
    }
    session = null;
    setConnected(false);
    if (current.userClosed) {
      setStatus('idle', 'Disconnected.');
      return;
    }
    if (!wasConnected) {
      setStatus('error', 'Not connected.');
      if (!current.failed && current.mode === 'token') {
        showError('Could not connect: the authorizer refused the token (expired, another ' +
          'issuer or audience, or a disabled user), or the gateway is unreachable. Connect ' +
          'again to get a fresh token.');
      } else if (!current.failed) {
        showError(current.options && current.options.username
          ? 'Could not connect: the server closed the connection (wrong username or password, ' +
            'client id not allowed, or the gateway is unreachable).'
          : 'Could not connect: the server closed the connection (the URL was refused or has ' +
            'expired, or the gateway is unreachable). Connect again to get a fresh URL.');
      }
      return;
    }
    // IoT Core answers a PUBLISH its policy does not allow by closing the connection: a
    // close with a publish still unacknowledged, or right after one, is almost surely that.
    const recent = current.lastPublish &&
      Date.now() - current.lastPublish.at < PUBLISH_DENIAL_WINDOW_MS;
    if (pendingTopics.length > 0 || recent) {
      const topic = pendingTopics.length > 0 ? pendingTopics[0] : current.lastPublish.topic;
      setStatus('error', 'Disconnected.');
      showError('Publishing to "' + topic + '" was ' +
        (pendingTopics.length > 0 ? '' : 'most likely ') + 'not allowed: the server closed ' +
        'the connection (IoT Core disconnects a client that publishes where its policy does ' +
        'not allow). Connect again to continue.');
      return;
    }
    if (pendingSubscriptions.length > 0) {
      // Some brokers answer a SUBSCRIBE the policy does not allow by closing the connection.
      setStatus('error', 'Disconnected.');
      showError('Subscribing to "' + pendingSubscriptions[0] + '" was not allowed: the server ' +
        'closed the connection. Connect again to continue.');
      return;
    }
    const upFor = Date.now() - current.connectedAt;
    if (upFor >= STABLE_AFTER_MS && reconnectAttempt < RECONNECT_DELAYS_MS.length) {
      const delay = RECONNECT_DELAYS_MS[reconnectAttempt++];
      setStatus('connecting', 'Connection lost; reconnecting in ' + Math.round(delay / 1000) +
        ' s with a fresh sign-in…');
      reconnectTimer = setTimeout(() => { reconnectTimer = null; connect(); }, delay);
      return;
    }
    setStatus('error', 'Disconnected.');
    showError('The connection was closed by the server. Connect again to continue.');
  }

  function cancelReconnect() {
    if (reconnectTimer !== null) {
      clearTimeout(reconnectTimer);
      reconnectTimer = null;
    }
  }

  function closeSession(quiet) {
    const current = session;
    if (!current) return;
    current.userClosed = true;
    if (quiet) session = null;
    if (current.client) current.client.end(true);
    else if (!quiet) onClose(current);
  }

  // ---------------------------------------------------------------- subscriptions

  function subscriptionItem(topic) {
    for (const item of ui.subscriptions.children) {
      if (item.dataset.topic === topic) return item;
    }
    const item = document.createElement('li');
    item.dataset.topic = topic;
    const name = document.createElement('code');
    name.textContent = topic;
    const state = document.createElement('span');
    state.className = 'state';
    item.append(name, ' ', state);
    ui.subscriptions.appendChild(item);
    return item;
  }

  function markSubscription(current, topic, state, detail) {
    current.subscriptions.set(topic, state);
    const item = subscriptionItem(topic);
    item.dataset.state = state;
    const labels = { pending: 'subscribing…', active: 'subscribed', refused: 'refused' };
    item.querySelector('.state').textContent =
      labels[state] + (detail ? ' (' + detail + ')' : '');
  }

  function subscribe(current, topic, purpose) {
    if (current.subscriptions.get(topic) === 'active') return;
    markSubscription(current, topic, 'pending', purpose);
    current.client.subscribe(topic, { qos: 1 }, (err, granted) => {
      if (session !== current) return;
      const refused = err || !granted || !granted[0] || granted[0].qos === 128;
      if (refused) {
        markSubscription(current, topic, 'refused', 'not allowed for this identity');
        showError('Subscription to "' + topic + '" was refused: this identity may not read it.');
      } else {
        markSubscription(current, topic, 'active', purpose);
      }
    });
  }

  // ---------------------------------------------------------------- messages

  /** The message text. A "from" in the payload is ignored: only the topic proves it. */
  function decode(payload) {
    let text;
    try {
      text = new TextDecoder('utf-8', { fatal: true }).decode(payload);
    } catch (_) {
      return '(' + payload.length + ' bytes of binary data)';
    }
    try {
      const body = JSON.parse(text);
      if (body && typeof body === 'object' && typeof body.text === 'string') return body.text;
    } catch (_) { /* not JSON: show as plain text */ }
    return text;
  }

  function onMessage(current, topic, payload) {
    if (session !== current) return;
    const text = decode(payload);
    const from = senderOf(current, topic);
    const item = document.createElement('li');
    item.className = 'message';
    item.dataset.topic = topic;
    const meta = document.createElement('div');
    meta.className = 'meta';
    const sender = document.createElement('span');
    sender.className = 'sender';
    // The room topic's last level: the publisher's own client id, enforced by its policy.
    sender.textContent = from || 'sender not shown by the topic';
    if (from) sender.dataset.verified = 'true';
    if (from && from === current.clientId) item.classList.add('own');
    const where = document.createElement('code');
    where.className = 'topic';
    where.textContent = topic;
    const time = document.createElement('time');
    const now = new Date();
    time.dateTime = now.toISOString();
    time.textContent = now.toLocaleTimeString();
    meta.append(sender, ' on ', where, ' ', time);
    const body = document.createElement('p');
    body.className = 'text';
    body.textContent = text;
    item.append(meta, body);
    ui.messages.appendChild(item);
    while (ui.messages.children.length > MAX_MESSAGES) ui.messages.firstElementChild.remove();
    item.scrollIntoView({ block: 'nearest' });
  }

  function sendTopic(current) {
    const target = ui.sendTarget.value;
    if (target === 'inbox') return inboxOf(current);
    if (target === 'custom') return ui.sendTopic.value.trim();
    return current.room ? roomTopic(current) : '';
  }

  function send() {
    const current = session;
    if (!current || !current.connectedAt) return;
    const topic = sendTopic(current);
    const text = ui.message.value;
    if (!topic) {
      showError('Choose a topic to send to.');
      return;
    }
    if (hasWildcard(topic)) {
      showError('A message goes to one topic: "+", "#" and "*" are not allowed here.');
      return;
    }
    if (!text.trim()) return;
    clearError();
    const payload = JSON.stringify({ text: text });
    const id = Symbol(topic);
    current.pending.set(id, topic);
    current.lastPublish = { topic: topic, at: Date.now() };
    // QoS 1: the PUBACK tells that the server took it; a denied publish closes the connection.
    current.client.publish(topic, payload, { qos: 1 }, (err) => {
      // On a close, mqtt.js fails the outstanding publishes before 'close': keep those
      // pending so onClose can name the topic that was refused.
      if (err) return;
      current.pending.delete(id);
      if (session === current) ui.message.value = '';
    });
  }

  // ---------------------------------------------------------------- wiring

  ui.form.addEventListener('submit', (event) => {
    event.preventDefault();
    connect();
  });
  ui.disconnect.addEventListener('click', () => {
    cancelReconnect();
    closeSession(false);
    setConnected(false);
  });
  for (const radio of document.querySelectorAll('input[name="mode"]')) {
    radio.addEventListener('change', showModeFields);
  }
  ui.devUser.addEventListener('change', () => {
    const user = ui.devUser.value;
    ui.token.value = user && typeof devTokens[user] === 'string' ? devTokens[user] : '';
  });
  ui.subscribeForm.addEventListener('submit', (event) => {
    event.preventDefault();
    const topic = ui.subscribeTopic.value.trim();
    if (session && session.connectedAt && topic) {
      clearError();
      subscribe(session, topic, 'requested');
    }
  });
  ui.sendTarget.addEventListener('change', () => {
    ui.sendTopic.hidden = ui.sendTarget.value !== 'custom';
    if (!ui.sendTopic.hidden) ui.sendTopic.focus();
  });
  ui.sendForm.addEventListener('submit', (event) => {
    event.preventDefault();
    send();
  });

  showModeFields();
  setConnected(false);
  if (typeof mqtt === 'undefined') {
    showError('mqtt.js did not load (vendor/mqtt.min.js). Run "make web-deps".');
    ui.connect.disabled = true;
    return;
  }
  loadConfig().then((c) => {
    config = c;
    applyConfig(config);
    document.body.dataset.ready = 'true';
  });
})();
