// Drives kurento-emulator with the official kurento-client 7.3.0, as an application would.
// Usage: node scenario.js <ws-url> <scenario>; prints one "@@ <json>" line per step on stdout and reads
// commands (one word per line) on stdin where a scenario waits for the test.
'use strict';

const readline = require('readline');

const [url, scenario] = process.argv.slice(2);
// kurento-client 7.3.0's TransactionsManager calls Node's domain.Domain as a function
// (Transaction.super_.call(this)); Domain is a class since Node 16, so every transaction throws
// "Class constructor Domain cannot be invoked without 'new'" before any request is sent. Without
// Node's Domain the client takes its own fallback (FakeDomain, what browsers run): an
// application on current Node needs the same two lines before it loads the client.
if (scenario === 'transactions') require('domain').Domain = undefined;
const kurento = require('kurento-client');

const lines = readline.createInterface({ input: process.stdin });
const commands = [];
const commandWaiters = [];
lines.on('line', (line) => {
  const waiter = commandWaiters.shift();
  if (waiter) waiter(line.trim()); else commands.push(line.trim());
});

function report(step, data) {
  process.stdout.write('@@ ' + JSON.stringify(Object.assign({ step }, data || {})) + '\n');
}

function nextCommand() {
  if (commands.length) return Promise.resolve(commands.shift());
  return new Promise((resolve) => commandWaiters.push(resolve));
}

// Callback style, so that server errors are seen (the promise style resolves undefined on errors).
function call(target, method, ...args) {
  return new Promise((resolve, reject) => {
    target[method](...args, (error, value) => (error ? reject(error) : resolve(value)));
  });
}

// A new HubPort, in a one-element array. Not resolved alone: a promise resolved with the port
// would adopt it (the client makes its objects thenable) and hand back something that is no
// MediaObject, which the client then sends as an object instead of its id wherever the operation
// has no 'sink' parameter (AlphaBlending.setMaster).
function hubPort(hub) {
  return new Promise((resolve, reject) => {
    hub.createHubPort((error, port) => (error ? reject(error) : resolve([port])));
  });
}

function once(emitter, event, timeoutMs) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no ${event} within ${timeoutMs} ms`)), timeoutMs);
    emitter.once(event, (...values) => { clearTimeout(timer); resolve(values); });
  });
}

function connectClient() {
  return new Promise((resolve, reject) => {
    const client = kurento(url, { failAfter: 50 }, (error, connected) => (error ? reject(error) : resolve(connected)));
    // A refused connection is raised on the reconnect emitter: fail instead of crashing Node.
    client._re.on('error', (error) => report('transport-error', { message: String(error && error.message) }));
  });
}

function describeError(error) {
  return { code: error.code, message: error.message, type: error.data && error.data.type };
}

async function webrtc(serverOffers) {
  const client = await connectClient();
  const pipeline = await call(client, 'create', 'MediaPipeline');
  const endpoint = await call(pipeline, 'create', 'WebRtcEndpoint');
  endpoint.on('IceCandidateFound', (event) => report('candidate', { candidate: event.candidate }));
  endpoint.on('IceGatheringDone', () => report('gathering-done'));
  endpoint.on('MediaFlowInStateChanged', (event) => report('flow-in', { mediaType: event.mediaType, state: event.state }));
  await call(endpoint, 'connect', endpoint);
  if (serverOffers) {
    const offer = await call(endpoint, 'generateOffer');
    report('offer', { sdp: offer });
  } else {
    report('ready');
  }
  for (;;) {
    const line = await nextCommand();
    const space = line.indexOf(' ');
    const verb = space < 0 ? line : line.slice(0, space);
    const argument = space < 0 ? null : JSON.parse(line.slice(space + 1));
    if (verb === 'offer') {
      const answer = await call(endpoint, 'processOffer', argument.sdp);
      report('answer', { sdp: answer });
      await call(endpoint, 'gatherCandidates');
    } else if (verb === 'answer') {
      await call(endpoint, 'processAnswer', argument.sdp);
      // before gatherCandidates, as 'answer' above: the candidates it brings may arrive ahead of
      // its reply, and a test waiting for 'answered' would pass over them
      report('answered');
      await call(endpoint, 'gatherCandidates');
    } else if (verb === 'candidate') {
      const candidate = kurento.getComplexType('IceCandidate')(argument);
      await call(endpoint, 'addIceCandidate', candidate);
    } else if (verb === 'stats') {
      const stats = await call(endpoint, 'getStats');
      report('stats', { stats });
    } else {
      break;
    }
  }
  await call(pipeline, 'release');
  client.close();
  report('done');
}

const scenarios = {
  webrtc: () => webrtc(false),
  'webrtc-server-offer': () => webrtc(true),

  async basic() {
    const client = await connectClient();
    report('connected');
    const manager = await call(client, 'getServerManager');
    const info = await call(manager, 'getInfo');
    report('info', { modules: info.modules.map((m) => m.name), version: info.version });
    const pipeline = await call(client, 'create', 'MediaPipeline');
    const source = await call(pipeline, 'create', 'PassThrough');
    const sink = await call(pipeline, 'create', 'PassThrough');
    report('created', { pipeline: pipeline.id, source: source.id, sink: sink.id });
    const connected = once(source, 'ElementConnected', 5000);
    await call(source, 'connect', sink, 'VIDEO');
    const [event] = await connected;
    report('element-connected', { source: event.source, sink: event.sink, mediaType: event.mediaType,
      timestampMillis: event.timestampMillis });
    await call(source, 'addTag', 'room', '7');
    const tags = await call(source, 'getTags');
    const value = await call(source, 'getTag', 'room');
    report('tags', { tags, value });
    const sinks = await call(source, 'getSinkConnections');
    report('sink-connections', { sinks: sinks.map((c) => ({ sink: (c.sink && c.sink.id) || c.sink, type: c.type })) });
    try {
      await call(source, 'getTag', 'missing');
      report('missing-tag', { error: null });
    } catch (error) {
      report('missing-tag', { error: describeError(error) });
    }
    const pipelines = await call(manager, 'getPipelines');
    report('pipelines', { ids: pipelines.map((p) => p.id) });
    await call(pipeline, 'release');
    report('released');
    try {
      await call(client, 'getMediaobjectById', pipeline.id);
      report('after-release', { error: null });
    } catch (error) {
      report('after-release', { error: describeError(error) });
    }
    client.close();
    report('done');
  },

  async reconnect() {
    const client = await connectClient();
    const pipeline = await call(client, 'create', 'MediaPipeline');
    report('ready', { pipeline: pipeline.id, sessionId: client.sessionId });
    const reconnected = once(client, 'reconnected', 20000);
    await nextCommand(); // the test restarts the server, then says so
    const [sameSession] = await reconnected;
    report('reconnected', { sameSession });
    try {
      await call(client, 'getMediaobjectById', pipeline.id);
      report('old-pipeline', { error: null });
    } catch (error) {
      report('old-pipeline', { error: describeError(error) });
    }
    const fresh = await call(client, 'create', 'MediaPipeline');
    report('rebuilt', { pipeline: fresh.id });
    client.close();
    report('done');
  },

  // The PBX leg as a UC controller builds it: an SDES-SRTP RtpEndpoint offering, a plain one
  // answering the PBX's SDP (sent by the test), bridged both ways to a WebRtcEndpoint.
  async pbx() {
    const client = await connectClient();
    const pipeline = await call(client, 'create', 'MediaPipeline');
    const SDES = kurento.getComplexType('SDES');
    const secure = await call(pipeline, 'create', 'RtpEndpoint',
      { crypto: new SDES({ crypto: 'AES_128_CM_HMAC_SHA1_80' }) });
    report('secure-offer', { sdp: await call(secure, 'generateOffer') });
    const plain = await call(pipeline, 'create', 'RtpEndpoint');
    const webrtc = await call(pipeline, 'create', 'WebRtcEndpoint');
    await call(webrtc, 'connect', plain);
    await call(plain, 'connect', webrtc);
    const offer = JSON.parse(await nextCommand());
    report('answer', { sdp: await call(plain, 'processOffer', offer.sdp) });
    report('state', {
      connectionState: await call(plain, 'getConnectionState'),
      transcoding: await call(plain, 'isMediaTranscoding', 'AUDIO'),
      stats: await call(plain, 'getStats'),
    });
    await call(pipeline, 'release');
    client.close();
    report('done');
  },

  // A PlayerEndpoint as an application drives it: the file's URI comes from the test.
  async player() {
    const client = await connectClient();
    const pipeline = await call(client, 'create', 'MediaPipeline');
    const uri = await nextCommand();
    const player = await call(pipeline, 'create', 'PlayerEndpoint', { uri });
    const states = [];
    player.on('UriEndpointStateChanged', (event) => states.push(event.state));
    const ended = once(player, 'EndOfStream', 15000);
    const info = await call(player, 'getVideoInfo');
    await call(player, 'play');
    const [event] = await ended;
    report('ended', {
      info, type: event.type, position: await call(player, 'getPosition'),
      state: await call(player, 'getState'), states,
    });
    try {
      await call(pipeline, 'create', 'PlayerEndpoint', { uri: 'ftp://host/x.webm' });
      report('bad-uri', { error: null });
    } catch (error) {
      report('bad-uri', { error: describeError(error) });
    }
    await call(pipeline, 'release');
    client.close();
    report('done');
  },

  // The client's transactions, as upstream's own Transaction tests use them: creation in one
  // commit (ids known once committed), record and play in another, an operation on a
  // released object failing the commit with 40101, and a rollback.
  async transactions() {
    const client = await connectClient();
    const { clip, target } = JSON.parse(await nextCommand());
    const built = client.beginTransaction();
    const pipeline = client.create(built, 'MediaPipeline');
    const player = pipeline.create(built, 'PlayerEndpoint', { uri: clip });
    const recorder = pipeline.create(built, 'RecorderEndpoint', { uri: target, mediaProfile: 'WEBM' });
    const before = player.id;
    await call(built, 'commit');
    // Not in the transaction: kurento-client-core 7.3.0's MediaElement.connect takes the
    // transaction off its arguments twice, and the second look clears it again, so a connect
    // given a transaction never reaches any server (KMS included).
    await call(player, 'connect', recorder);
    report('built', { before: before === undefined ? null : before, pipeline: pipeline.id, player: player.id, recorder: recorder.id, commited: built.commited });
    const recording = once(recorder, 'Recording', 15000);
    // The client subscribes once the recorder's id has resolved, in a later microtask: one round
    // trip lets the subscribe reach the server before the commit that makes Recording happen.
    await call(recorder, 'getUri');
    const started = pipeline.beginTransaction();
    recorder.record(started);
    player.play(started);
    await call(started, 'commit');
    await recording;
    report('recording', { state: await call(player, 'getState') });
    await call(player, 'release');
    const failing = pipeline.beginTransaction();
    const filter = pipeline.create(failing, 'ZBarFilter');
    const playing = new Promise((resolve) => {
      player.play(failing, (error) => resolve(error ? describeError(error) : null));
    });
    await call(failing, 'commit'); // the transaction itself succeeds; its operation fails
    const playError = await playing;
    let connectError = null;
    try {
      await call(filter, 'connect', player);
    } catch (error) {
      connectError = describeError(error);
    }
    report('refused', { playError, connectError });
    const rolled = client.beginTransaction();
    const ghost = client.create(rolled, 'MediaPipeline');
    rolled.rollback();
    let rollbackError = null;
    try {
      await call(ghost, 'release');
    } catch (error) {
      rollbackError = error.constructor.name;
    }
    report('rolled-back', { rollbackError });
    await call(recorder, 'stopAndWait');
    await call(pipeline, 'release');
    client.close();
    report('done');
  },

  // Player -> recorder as an application records a file: the clip's and the target's URIs come
  // from the test; EndOfStream, then stopAndWait returns once the file is complete.
  async 'player-recorder'() {
    const client = await connectClient();
    const { clip, target } = JSON.parse(await nextCommand());
    const pipeline = await call(client, 'create', 'MediaPipeline');
    const player = await call(pipeline, 'create', 'PlayerEndpoint', { uri: clip });
    const recorder = await call(pipeline, 'create', 'RecorderEndpoint', { uri: target, mediaProfile: 'WEBM' });
    await call(player, 'connect', recorder);
    const events = [];
    for (const name of ['Recording', 'Stopped']) recorder.on(name, (event) => events.push(event.type));
    const recording = once(recorder, 'Recording', 15000);
    const ended = once(player, 'EndOfStream', 20000);
    await call(recorder, 'record');
    await call(player, 'play');
    await recording;
    await ended;
    report('ended', { state: await call(recorder, 'getState') });
    await call(recorder, 'stopAndWait');
    report('stopped', { state: await call(recorder, 'getState'), events });
    await call(pipeline, 'release');
    client.close();
    report('done');
  },

  // The filters as the tutorials use them (magic mirror's setOverlayedImage offsets), chained
  // after a player: the QR clip's and the overlay image's URIs come from the test.
  // ImageOverlayFilter.addImage/removeImage are not called: kurento-client 7.3.0's
  // serializeParams replaces an operationParams object that has an `id` field by that id, so
  // this client sends `"operationParams": "logo"` to any server (the Python tests cover them).
  async filters() {
    const client = await connectClient();
    const { clip, image } = JSON.parse(await nextCommand());
    const pipeline = await call(client, 'create', 'MediaPipeline');
    const player = await call(pipeline, 'create', 'PlayerEndpoint', { uri: clip });
    const zbar = await call(pipeline, 'create', 'ZBarFilter');
    const mirror = await call(pipeline, 'create', 'GStreamerFilter',
      { command: 'videoflip method=horizontal-flip' });
    const faces = await call(pipeline, 'create', 'FaceOverlayFilter');
    const overlay = await call(pipeline, 'create', 'ImageOverlayFilter');
    const recorder = await call(pipeline, 'create', 'RecorderEndpoint',
      { uri: clip + '.out.webm', mediaProfile: 'WEBM_VIDEO_ONLY' });
    await call(player, 'connect', zbar);
    await call(zbar, 'connect', mirror);
    await call(mirror, 'connect', faces);
    await call(faces, 'connect', overlay);
    await call(overlay, 'connect', recorder);
    const found = once(zbar, 'CodeFound', 20000);
    const flowing = once(mirror, 'MediaFlowOutStateChanged', 20000);
    await call(faces, 'setOverlayedImage', image, -0.35, -1.2, 1.6, 1.6);
    await call(recorder, 'record');
    await call(player, 'play');
    const [event] = await found;
    report('code', { type: event.type, codeType: event.codeType, value: event.value });
    await flowing;
    await call(mirror, 'setElementProperty', 'method', 'vertical-flip');
    report('mirror', {
      command: await call(mirror, 'getCommand'),
      flowing: await call(mirror, 'isMediaFlowingOut', 'VIDEO'),
    });
    await call(faces, 'unsetOverlayedImage');
    try {
      await call(pipeline, 'create', 'GStreamerFilter', { command: 'facedetect' });
      report('refused', { error: null });
    } catch (error) {
      report('refused', { error: describeError(error) });
    }
    await call(pipeline, 'release');
    client.close();
    report('done');
  },

  // A two-party call recorded through a Composite, as a UC application builds it (players stand
  // in for the parties; their URIs and the target come from the test); then the Mixer's and
  // AlphaBlending's operations as the client marshals them.
  async hubs() {
    const client = await connectClient();
    const { clips, target } = JSON.parse(await nextCommand());
    const pipeline = await call(client, 'create', 'MediaPipeline');
    const composite = await call(pipeline, 'create', 'Composite');
    const players = [];
    for (const uri of clips) {
      const player = await call(pipeline, 'create', 'PlayerEndpoint', { uri });
      const [port] = await hubPort(composite);
      await call(player, 'connect', port);
      players.push(player);
    }
    const recorder = await call(pipeline, 'create', 'RecorderEndpoint',
      { uri: target, mediaProfile: 'WEBM_AUDIO_ONLY' });
    const [output] = await hubPort(composite);
    await call(output, 'connect', recorder);
    const recording = once(recorder, 'Recording', 15000);
    const ended = players.map((player) => once(player, 'EndOfStream', 20000));
    await call(recorder, 'record');
    for (const player of players) await call(player, 'play');
    await recording;
    await Promise.all(ended);
    await call(recorder, 'stopAndWait');
    report('recorded');
    const mixer = await call(pipeline, 'create', 'Mixer');
    const [first] = await hubPort(mixer);
    const [second] = await hubPort(mixer);
    await call(mixer, 'connect', 'AUDIO', first, second);
    await call(mixer, 'connect', 'VIDEO', first, second);
    let videoDisconnect = null;
    try {
      await call(mixer, 'disconnect', 'VIDEO', first, second);
    } catch (error) {
      videoDisconnect = describeError(error);
    }
    const blending = await call(pipeline, 'create', 'AlphaBlending');
    const [master] = await hubPort(blending);
    const [placed] = await hubPort(blending);
    await call(blending, 'setMaster', master, 2);
    await call(blending, 'setPortProperties', 0.5, 0.5, 3, 0.5, 0.5, placed);
    report('hubs', { videoDisconnect });
    await call(pipeline, 'release');
    client.close();
    report('done');
  },
};

scenarios[scenario]().then(
  () => process.exit(0),
  (error) => { report('failed', { error: String(error && (error.stack || error)) }); process.exit(1); },
);
