// The page's main thread: the WebSocket session (docs/protocol.md), the audio graph, and the display.
//
// Microphone -> capture worklet (resample to the wire rate, 20 ms PCM chunks) -> socket.
// Socket -> one agent frame per tick -> playback worklet (jitter buffer, resample) -> speaker.

const ACCEPTED_RATES = [8000, 16000, 24000, 48000];
const CHUNK_MS = 20;
const PRIME_MS = 120;
const MAX_BUFFER_MS = 400;
const MAX_EVENT_LINES = 60;

const query = location.search; // carries ?token= when the server has one
const socketUrl = `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/v1/duplex${query}`;
const $ = (id) => document.getElementById(id);

// Everything the page knows, in one place (read by the end-to-end test through duplexStatus()).
const state = {
  status: "idle",
  session: null,
  wireRate: 16000,
  contextRate: null,
  framesReceived: 0,
  bytesSent: 0,
  playedMs: 0,
  bufferedMs: 0,
  agentPeakDb: -100,
  userPeakDb: -100,
  eventCounts: {},
  transcript: [],
  stats: null,
  errors: [],
  rttMs: null,
  closeCode: null,
};
window.duplexStatus = () => JSON.parse(JSON.stringify(state));

let context = null;
let socket = null;
let micStream = null;
let capture = null;
let playback = null;
let sentLog = []; // [samples sent so far, time], to time the round trip of each tick
let newAgentLine = true;

function setStatus(text) {
  state.status = text;
  $("status").textContent = text;
}

async function start() {
  $("start").disabled = true;
  try {
    context = new AudioContext();
    state.contextRate = context.sampleRate;
    state.wireRate = ACCEPTED_RATES.includes(context.sampleRate) ? context.sampleRate : 16000;
    await context.audioWorklet.addModule(`./worklet.js${query}`);
    micStream = await navigator.mediaDevices.getUserMedia({
      audio: { channelCount: 1, echoCancellation: true, noiseSuppression: false, autoGainControl: false },
    });
  } catch (err) {
    fail(`cannot open the microphone: ${err.message || err}`);
    return;
  }
  setStatus("connecting");
  socket = new WebSocket(socketUrl);
  socket.binaryType = "arraybuffer";
  socket.onmessage = (e) => (typeof e.data === "string" ? onEvent(JSON.parse(e.data)) : onFrame(e.data));
  socket.onclose = (e) => onClosed(e.code, e.reason);
  socket.onerror = () => setStatus("connection failed");
}

function startAudio() {
  // Called once the server has accepted our rates: from here on, audio flows both ways.
  const source = context.createMediaStreamSource(micStream);
  capture = new AudioWorkletNode(context, "duplex-capture", {
    numberOfOutputs: 1,
    processorOptions: { wireRate: state.wireRate, chunkMs: CHUNK_MS },
  });
  capture.port.onmessage = (e) => sendChunk(e.data.pcm, e.data.level);
  source.connect(capture);
  capture.connect(context.destination); // outputs silence; keeps the node pulled by the graph
  playback = new AudioWorkletNode(context, "duplex-playback", {
    outputChannelCount: [1],
    processorOptions: { wireRate: state.wireRate, primeMs: PRIME_MS, maxMs: MAX_BUFFER_MS },
  });
  playback.port.onmessage = (e) => onPlayback(e.data);
  playback.connect(context.destination);
  context.resume();
  setStatus("listening and talking");
  $("stop").disabled = false;
  $("say").disabled = false;
}

function sendChunk(pcm, level) {
  if (!socket || socket.readyState !== WebSocket.OPEN) return;
  socket.send(pcm);
  state.bytesSent += pcm.byteLength;
  sentLog.push([state.bytesSent / 2, performance.now()]);
  state.userPeakDb = Math.max(state.userPeakDb, level);
  showLevel("you", level);
}

function onFrame(data) {
  state.framesReceived += 1;
  playback && playback.port.postMessage(data, [data]);
  measureRoundTrip();
}

function measureRoundTrip() {
  // Frame k answers tick k, which consumed our input up to (k + 1 - underruns) ticks: the time
  // since we sent that input is the round trip through the network, the server's clock and the model.
  if (!state.session) return;
  const tickSamples = (state.session.tick_ms * state.wireRate) / 1000;
  const underruns = state.stats ? state.stats.input_underruns : 0;
  const consumed = (state.framesReceived - underruns) * tickSamples;
  while (sentLog.length > 1 && sentLog[0][0] < consumed) sentLog.shift();
  if (sentLog.length && sentLog[0][0] >= consumed) state.rttMs = performance.now() - sentLog[0][1];
}

function onPlayback(report) {
  state.playedMs = report.playedMs;
  state.bufferedMs = report.bufferedMs;
  state.agentPeakDb = Math.max(state.agentPeakDb, report.level);
  showLevel("agent", report.level);
  $("s-buffer").textContent = `${report.bufferedMs.toFixed(0)} ms (ran dry ${report.dry}×)`;
  if (state.rttMs !== null) $("s-rtt").textContent = `${state.rttMs.toFixed(0)} ms + ${report.bufferedMs.toFixed(0)} ms playback`;
}

function onEvent(event) {
  state.eventCounts[event.type] = (state.eventCounts[event.type] || 0) + 1;
  switch (event.type) {
    case "session.created":
      state.session = event;
      socket.send(JSON.stringify({ type: "session.update", input_sample_rate: state.wireRate, output_sample_rate: state.wireRate }));
      break;
    case "session.updated":
      state.session = event;
      $("s-model").textContent = event.model;
      $("s-rates").textContent = `${event.input_sample_rate / 1000} kHz in, ${event.output_sample_rate / 1000} kHz out, ${event.tick_ms} ms ticks (browser ${state.contextRate / 1000} kHz)`;
      if (!capture) startAudio();
      break;
    case "session.stats":
      showStats(event);
      return; // every second: not worth a line in the log
    case "session.closed":
      showStats(event.stats);
      break;
    case "user.speech.started":
    case "user.speech.stopped":
      $("you-label").classList.toggle("speaking", event.type === "user.speech.started");
      break;
    case "agent.speech.started":
    case "agent.speech.stopped":
      $("agent-label").classList.toggle("speaking", event.type === "agent.speech.started");
      newAgentLine = event.type === "agent.speech.started";
      break;
    case "user.transcript":
      addTranscript("you", event.text);
      break;
    case "agent.transcript.delta":
      addTranscript("agent", event.text);
      break;
    case "error":
      state.errors.push(event);
      break;
  }
  logEvent(event);
}

function showStats(stats) {
  state.stats = stats;
  $("s-ticks").textContent = `${stats.ticks} (${stats.late_ticks} late)`;
  $("s-compute").textContent = `${stats.compute_ms_p50.toFixed(1)} / ${stats.compute_ms_p99.toFixed(1)} ms`;
  $("s-underruns").textContent = stats.input_underruns;
}

function showLevel(who, db) {
  const width = Math.max(0, Math.min(100, ((db + 60) / 60) * 100));
  $(`${who}-bar`).style.width = `${width}%`;
  $(`${who}-db`).textContent = db <= -100 ? "-∞ dB" : `${db.toFixed(0)} dB`;
}

function addTranscript(who, text) {
  // Deltas of one agent turn join one line; a new turn (agent.speech.started) starts a new one.
  const last = state.transcript[state.transcript.length - 1];
  if (who === "agent" && last && last.who === "agent" && !newAgentLine) last.text += text;
  else state.transcript.push({ who, text });
  if (who === "agent") newAgentLine = false;
  const box = $("transcript");
  box.replaceChildren(
    ...state.transcript.map((line) => {
      const p = document.createElement("p");
      const name = document.createElement("span");
      name.className = `who-${line.who}`;
      name.textContent = line.who === "you" ? "you: " : "agent: ";
      p.append(name, line.text);
      return p;
    }),
  );
  box.scrollTop = box.scrollHeight;
}

function logEvent(event) {
  const { type, ...fields } = event;
  const li = document.createElement("li");
  if (type === "error") li.className = "error";
  li.textContent = `${type} ${JSON.stringify(fields)}`;
  const list = $("events");
  list.prepend(li);
  while (list.children.length > MAX_EVENT_LINES) list.lastChild.remove();
}

function stop() {
  $("stop").disabled = true;
  if (socket && socket.readyState === WebSocket.OPEN) socket.send(JSON.stringify({ type: "session.close" }));
}

function onClosed(code, reason) {
  state.closeCode = code;
  setStatus(`closed (${code}${reason ? `: ${reason}` : ""})`);
  if (micStream) micStream.getTracks().forEach((t) => t.stop());
  if (context) context.close();
  capture = playback = null;
  sentLog = [];
  $("start").disabled = false;
  $("stop").disabled = true;
  $("say").disabled = true;
}

function fail(message) {
  setStatus(message);
  state.errors.push({ code: "page", message });
  $("start").disabled = false;
}

$("start").addEventListener("click", start);
$("stop").addEventListener("click", stop);
$("say-form").addEventListener("submit", (e) => {
  e.preventDefault();
  const text = $("say-text").value.trim();
  if (text && socket && socket.readyState === WebSocket.OPEN) {
    socket.send(JSON.stringify({ type: "agent.say", text }));
    $("say-text").value = "";
  }
});
